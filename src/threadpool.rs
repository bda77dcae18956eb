//! A pool of OS threads for blocking work (gevent's `threadpool`): [`run`] sends a closure to
//! a pool thread and parks the calling greenlet until the result comes back, so a blocking
//! call (a file read, a name lookup, a C library without non-blocking mode) does not stop the
//! hub. The result travels through an [`AsyncResult`], which wakes the greenlet through its
//! hub's inbox.
//!
//! # Rules
//!
//! * One process-wide pool, created on first use with [`DEFAULT_SIZE`] threads at most
//!   ([`set_size`] changes it). Threads start only when there is more work than idle threads,
//!   are reused for later jobs, and exit after [`IDLE_EXIT`] without work.
//! * Jobs start in the order they were submitted.
//! * A panic in the closure is caught on the pool thread and comes back as
//!   [`BlockingError::Panicked`]; the thread lives on.
//! * A timeout (or a kill) ends the *wait*, not the job: the closure runs to its end on its
//!   thread and its result is dropped.
//!
//! ```
//! let n = grove::threadpool::run(|| {
//!     std::thread::sleep(std::time::Duration::from_millis(5)); // blocks a pool thread only
//!     6 * 7
//! });
//! assert_eq!(n.unwrap(), 42);
//! ```

use crate::sync::{AsyncResult, WaitError};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The most threads the pool starts unless [`set_size`] says otherwise (gevent's default).
pub const DEFAULT_SIZE: usize = 10;

/// How long a pool thread waits for work before it exits.
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

/// Why [`run`] produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockingError {
    /// The closure panicked on the pool thread; the message.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The wait ended first (its timeout, or see [`WaitError`]); the closure runs on.
    Wait(WaitError),
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockingError::Panicked { message } => {
                write!(f, "grove: the thread pool job panicked: {message}")
            }
            BlockingError::Wait(e) => write!(f, "grove: waiting for the thread pool job: {e}"),
        }
    }
}

impl std::error::Error for BlockingError {}

impl From<BlockingError> for std::io::Error {
    fn from(e: BlockingError) -> std::io::Error {
        let kind = match &e {
            BlockingError::Panicked { .. } => std::io::ErrorKind::Other,
            BlockingError::Wait(WaitError::TimedOut) => std::io::ErrorKind::TimedOut,
            BlockingError::Wait(_) => std::io::ErrorKind::Interrupted,
        };
        std::io::Error::new(kind, e)
    }
}

/// A job runs the closure and returns how to deliver its result: the worker counts itself
/// free *before* delivering, so the greenlet that wakes with the result and submits again at
/// once finds a thread ready for it (threads are reused, not added).
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    /// Threads running a closure now.
    busy: usize,
    max: usize,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

static POOL: OnceLock<Pool> = OnceLock::new();
static JOBS_RUN: AtomicU64 = AtomicU64::new(0);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            jobs: VecDeque::new(),
            threads: 0,
            busy: 0,
            max: DEFAULT_SIZE,
        }),
        work: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so no panic can poison it with broken data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(&'static self, job: Job) -> std::io::Result<()> {
        let mut st = self.lock();
        st.jobs.push_back(job);
        // Threads not running a closure will take the queued jobs; start one only if they
        // are too few.
        if st.busy + st.jobs.len() <= st.threads || st.threads >= st.max {
            drop(st);
            self.work.notify_one();
            return Ok(());
        }
        st.threads += 1;
        drop(st);
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("grove-pool-{n}"))
            .spawn(move || self.worker());
        if let Err(e) = spawned {
            let mut st = self.lock();
            st.threads -= 1;
            if st.threads == 0 {
                // Nobody will run it: take it back and report.
                st.jobs.pop_back();
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("grove: cannot start a thread pool thread: {e}"),
                ));
            }
            // Existing threads will get to it.
        }
        Ok(())
    }

    fn worker(&'static self) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                st.busy += 1;
                drop(st);
                let deliver = job();
                JOBS_RUN.fetch_add(1, Ordering::Relaxed);
                self.lock().busy -= 1;
                deliver();
                st = self.lock();
                continue;
            }
            if st.threads > st.max {
                break; // the pool was shrunk
            }
            let (guard, timeout) = self
                .work
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if timeout.timed_out() && st.jobs.is_empty() {
                break;
            }
        }
        st.threads -= 1;
    }
}

/// Sets the most threads the pool runs at once (at least 1). Threads beyond a lowered size
/// exit once their current job is done.
pub fn set_size(n: usize) {
    let p = pool();
    p.lock().max = n.max(1);
    p.work.notify_all();
}

/// The most threads the pool runs at once.
pub fn size() -> usize {
    pool().lock().max
}

/// How many pool threads exist now (busy or idle).
pub fn threads() -> usize {
    pool().lock().threads
}

/// How many jobs the pool has run since the process started.
pub fn jobs_run() -> u64 {
    JOBS_RUN.load(Ordering::Relaxed)
}

/// Runs `f` on a pool thread; the calling greenlet waits cooperatively for its result.
pub fn run<T, F>(f: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_inner(f, None)
}

/// [`run`], waiting at most `timeout` (then [`BlockingError::Wait`] with
/// [`WaitError::TimedOut`]; the job runs on and its result is dropped).
pub fn run_timeout<T, F>(timeout: Duration, f: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_inner(f, Some(timeout))
}

fn run_inner<T, F>(f: F, timeout: Option<Duration>) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let result: AsyncResult<Result<T, String>> = AsyncResult::new();
    let r = result.clone();
    let job: Job = Box::new(move || {
        let out = panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|p| crate::greenlet::panic_message(&*p));
        Box::new(move || {
            let _ = r.set(out);
        })
    });
    pool().submit(job).map_err(|e| BlockingError::Panicked {
        message: e.to_string(),
    })?;
    let waited = match timeout {
        None => result.wait(),
        Some(t) => {
            if result.wait_timeout(t) {
                Ok(())
            } else {
                Err(WaitError::TimedOut)
            }
        }
    };
    if let Err(why) = waited {
        return Err(BlockingError::Wait(why));
    }
    match result.take() {
        Some(Ok(Ok(v))) => Ok(v),
        Some(Ok(Err(message))) => Err(BlockingError::Panicked { message }),
        Some(Err(_)) | None => Err(BlockingError::Wait(WaitError::Interrupted)),
    }
}
