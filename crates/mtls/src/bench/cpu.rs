//! This process's CPU time, all threads, user and system: the clock the kernel keeps for
//! the process (`CLOCK_PROCESS_CPUTIME_ID`), read without unsafe code and without parsing.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// The CPU time this process has used so far (`None` if the clock says something
/// impossible).
pub fn used() -> Option<Duration> {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

/// The CPU time used between `before` and now.
pub fn since(before: Option<Duration>) -> Option<Duration> {
    used()?.checked_sub(before?)
}
