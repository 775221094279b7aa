//! Saying each cause once: an upstream that refuses us refuses every request, and a log
//! with the same sentence per request hides everything else. A cause is logged when it is
//! new, when its words change, or when it has been quiet in the log for [`REMIND_AFTER`];
//! the metrics count every occurrence.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a cause that keeps happening stays out of the log before it is said again.
pub const REMIND_AFTER: Duration = Duration::from_secs(300);

/// The causes said so far: by reason code, the words last logged and when.
#[derive(Debug, Default)]
pub struct Causes(Mutex<HashMap<&'static str, (String, Instant)>>);

impl Causes {
    /// Whether to log `words` for `code` now (and, if so, remembers that it was).
    pub fn say_now(&self, code: &'static str, words: &str) -> bool {
        let mut said = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fresh = match said.get(code) {
            Some((last, at)) => last != words || now.duration_since(*at) >= REMIND_AFTER,
            None => true,
        };
        if fresh {
            said.insert(code, (words.to_string(), now));
        }
        fresh
    }

    /// Forgets every cause (the upstream answered again): the next failure is news.
    /// Returns whether any was remembered.
    pub fn forget(&self) -> bool {
        let mut said = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let any = !said.is_empty();
        said.clear();
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cause_is_said_once_until_its_words_change_or_it_has_been_quiet_long() {
        let causes = Causes::default();
        assert!(causes.say_now("unknown_ca", "the server refused our certificate"));
        assert!(!causes.say_now("unknown_ca", "the server refused our certificate"));
        assert!(causes.say_now("connect", "cannot connect"));
        assert!(causes.say_now("unknown_ca", "other words"));
        assert!(!causes.say_now("unknown_ca", "other words"));
        tokio::time::advance(REMIND_AFTER).await;
        assert!(causes.say_now("unknown_ca", "other words"));
        assert!(causes.forget());
        assert!(!causes.forget());
        assert!(causes.say_now("unknown_ca", "other words"));
        assert!(!causes.say_now("unknown_ca", "other words"));
    }
}
