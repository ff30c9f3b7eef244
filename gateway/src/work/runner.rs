//! One loop for every background job. A job does one bounded step of work
//! at a time and says how it went ([`Step`]); the runner decides when the
//! next step runs: at once while busy, after the job's idle wait when there
//! was nothing to do, after the job's own pause when it throttles itself,
//! and with doubling back-off (0.5 s to 10 s) after a failure. Shutdown is a
//! `watch` flag: a step in progress finishes, no new one starts. Every job
//! reports into a shared [`Board`] that `cairn status` reads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use crate::error::Error;

/// Back-off after the first failed step.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Back-off never grows past this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Did work; there may be more: step again at once.
    Busy,
    /// Nothing to do: wait the job's idle time.
    Idle,
    /// Did work but paces itself (a bandwidth cap): wait this long.
    Throttled(Duration),
}

/// A background job.
pub trait Job: Send + 'static {
    /// The job's name in logs and `cairn status`.
    fn name(&self) -> &'static str;

    /// One bounded piece of work. It runs to its end even when shutdown is
    /// asked for meanwhile.
    fn step(&mut self) -> impl Future<Output = Result<Step, Error>> + Send;

    /// The wait after a step that found nothing to do.
    fn idle_wait(&self) -> Duration {
        Duration::from_millis(250)
    }
}

/// What a job is doing, as `cairn status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Busy,
    Idle,
    Throttled,
    /// Its last step failed; it is backing off.
    Failing,
    Stopped,
}

impl JobState {
    /// The word `cairn status` prints.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Busy => "busy",
            JobState::Idle => "idle",
            JobState::Throttled => "throttled",
            JobState::Failing => "failing",
            JobState::Stopped => "stopped",
        }
    }
}

/// One job's line in the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub state: JobState,
    /// Steps that ended well and steps that failed, since start.
    pub steps: u64,
    pub failures: u64,
    /// The last failure, while the job is failing.
    pub last_error: Option<String>,
}

/// Every job's status by name.
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<BTreeMap<&'static str, JobStatus>>>);

impl Board {
    pub fn snapshot(&self) -> BTreeMap<String, JobStatus> {
        self.lock()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, JobStatus>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut JobStatus)) {
        let mut board = self.lock();
        let status = board.entry(name).or_insert(JobStatus {
            state: JobState::Idle,
            steps: 0,
            failures: 0,
            last_error: None,
        });
        f(status);
    }
}

/// Asks every runner to stop after its current step.
#[derive(Debug)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(watch::channel(false).0)
    }

    /// A handle for one more runner.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

/// Runs `job` until `stop` says so, reporting into `board`.
pub async fn run<J: Job>(mut job: J, mut stop: watch::Receiver<bool>, board: Board) {
    let name = job.name();
    let mut backoff = FIRST_BACKOFF;
    while !*stop.borrow_and_update() {
        let wait = match job.step().await {
            Ok(step) => {
                backoff = FIRST_BACKOFF;
                let (state, wait) = match step {
                    Step::Busy => (JobState::Busy, Duration::ZERO),
                    Step::Idle => (JobState::Idle, job.idle_wait()),
                    Step::Throttled(pause) => (JobState::Throttled, pause),
                };
                board.update(name, |s| {
                    s.state = state;
                    s.steps += 1;
                    s.last_error = None;
                });
                wait
            }
            Err(e) => {
                warn!(job = name, cause = %e, retry_in = ?backoff, "background step failed");
                board.update(name, |s| {
                    s.state = JobState::Failing;
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                });
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    board.update(name, |s| s.state = JobState::Stopped);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Fails its first `fail` steps, then is busy `busy` times, then idle.
    struct Script {
        fail: u64,
        busy: u64,
        steps: Arc<AtomicU64>,
    }

    impl Job for Script {
        fn name(&self) -> &'static str {
            "script"
        }

        async fn step(&mut self) -> Result<Step, Error> {
            self.steps.fetch_add(1, Ordering::SeqCst);
            if self.fail > 0 {
                self.fail -= 1;
                return Err(Error::Unreadable {
                    chunk: cairn_metadata::ChunkId(1),
                    why: "scripted failure".into(),
                });
            }
            if self.busy > 0 {
                self.busy -= 1;
                return Ok(Step::Busy);
            }
            Ok(Step::Idle)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_then_busy_steps_run_back_to_back_and_stop_is_prompt() {
        let steps = Arc::new(AtomicU64::new(0));
        let board = Board::default();
        let shutdown = Shutdown::new();
        let job = Script {
            fail: 2,
            busy: 5,
            steps: steps.clone(),
        };
        let task = tokio::spawn(run(job, shutdown.subscribe(), board.clone()));
        // Two failures: 0.5 s then 1 s of back-off before the third step.
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 2);
        assert_eq!(board.snapshot()["script"].state, JobState::Failing);
        assert_eq!(board.snapshot()["script"].failures, 2);
        // Then five busy steps at once and an idle one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 8);
        let status = &board.snapshot()["script"];
        assert_eq!(
            (status.state, status.steps, status.last_error.as_deref()),
            (JobState::Idle, 6, None)
        );
        shutdown.stop();
        tokio::time::timeout(Duration::from_millis(1), task)
            .await
            .expect("the runner stops without waiting out its idle time")
            .unwrap();
        assert_eq!(board.snapshot()["script"].state, JobState::Stopped);
    }
}
