//! The run itself: workers that claim operations from one budget until it is spent or its
//! time is up, each operation bounded by its phase limits, and a hard stop behind them.
//!
//! Every worker counts into a tally of its own, kept outside the task, so the hard stop
//! loses nothing that finished: operations still running then are reported as unfinished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::operation::Worker;
use super::tally::Tally;
use super::{BenchSettings, Bound, MAX_DURATION, Mode, Progress, Run, cpu};
use crate::client::Prepared;
use crate::error::{Error, Result};

/// How often the progress bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// What all workers share: the operations left, the time the run ends, and the counts the
/// progress bar shows.
struct Budget {
    /// Operations left to claim (`None`: as many as fit before `deadline`).
    left: Option<AtomicU64>,
    /// No operation starts after this.
    deadline: Instant,
    claimed: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
}

impl Budget {
    fn new(bound: Bound, start: Instant) -> Self {
        let (left, length) = match bound {
            Bound::Requests(n) => (Some(AtomicU64::new(n)), MAX_DURATION),
            Bound::Duration(d) => (None, d.min(MAX_DURATION)),
        };
        Self {
            left,
            deadline: start + length,
            claimed: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Takes one operation, if any is left and there is still time.
    fn claim(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        if let Some(left) = &self.left
            && left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_err()
        {
            return false;
        }
        self.claimed.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn done(&self, ok: bool) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        if !ok {
            self.failed.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Measures `settings` under `label`.
pub(super) async fn measure(
    settings: &BenchSettings,
    label: String,
    progress: &Progress,
) -> Result<Run> {
    let prepared = Prepared::new(&settings.client, None)?;
    let client = Arc::new(settings.client.clone());
    // The backstop: past the deadline, every operation still running has had the time its
    // phase limits allow, and more.
    let c = &settings.client;
    let grace =
        c.connect_timeout + c.handshake_timeout + 2 * c.response_timeout + Duration::from_secs(2);

    let cpu_before = cpu::used();
    let start = Instant::now();
    let budget = Arc::new(Budget::new(settings.bound, start));
    let hard_stop = budget.deadline + grace;
    progress.start(&label, settings.bound);
    let mut workers = JoinSet::new();
    let mut tallies = Vec::with_capacity(settings.connections);
    for _ in 0..settings.connections {
        let tally = Arc::new(Mutex::new(Tally::new()));
        tallies.push(tally.clone());
        let worker = Worker::new(client.clone(), &prepared, settings.mode);
        workers.spawn(work(worker, budget.clone(), tally));
    }
    let mut stopped_hard = false;
    loop {
        let tick = tokio::time::sleep(TICK);
        tokio::select! {
            joined = workers.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            _ = tick => {
                if Instant::now() >= hard_stop {
                    workers.abort_all();
                    stopped_hard = true;
                }
                progress.update(
                    settings.bound,
                    budget.finished.load(Ordering::Acquire),
                    budget.failed.load(Ordering::Acquire),
                    start.elapsed(),
                );
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu::since(cpu_before);
    progress.finish();

    let mut total = Tally::new();
    for tally in &tallies {
        if let Ok(tally) = tally.lock() {
            total.add(&tally);
        }
    }
    let attempted = budget.claimed.load(Ordering::Acquire);
    let cut_short = match settings.bound {
        _ if stopped_hard => Some(format!(
            "stopped at the hard stop, {} after the last operation could start",
            crate::format::format_duration(grace)
        )),
        Bound::Requests(n) if attempted < n => Some(format!(
            "stopped at the {} limit of a run after {attempted} of {n} operations",
            crate::format::format_duration(MAX_DURATION)
        )),
        _ => None,
    };
    Ok(Run {
        label,
        url: settings.client.url.to_string(),
        mode: settings.mode,
        client_auth: settings.client.identity.is_some(),
        connections: settings.connections,
        bound: settings.bound,
        attempted,
        succeeded: total.succeeded,
        failed: total.failed,
        unfinished: attempted.saturating_sub(total.finished()),
        elapsed,
        latency: total.latency(),
        handshakes: total.handshakes,
        resumed: total.resumed,
        failures: total.failures(),
        tls: total.tls,
        http: total.http,
        cpu,
        cut_short,
    })
}

/// One worker: operations until the budget says stop.
async fn work(mut worker: Worker, budget: Arc<Budget>, tally: Arc<Mutex<Tally>>) {
    while budget.claim() {
        let outcome = worker.operate().await;
        if let Ok(mut tally) = tally.lock() {
            match &outcome {
                Ok(done) => tally.success(done),
                Err(e) => tally.failure(e),
            }
        }
        budget.done(outcome.is_ok());
    }
}

/// One full handshake and request with `settings`, not counted: whether the server allows
/// what a row would measure (`Err` inside: the operation's failure; outside: the setup's).
pub(super) async fn try_one(settings: &BenchSettings) -> Result<std::result::Result<(), Error>> {
    let prepared = Prepared::new(&settings.client, None)?;
    let mut worker = Worker::new(Arc::new(settings.client.clone()), &prepared, Mode::Full);
    Ok(worker.operate().await.map(|_| ()))
}
