//! The hub: one event loop per OS thread, multiplexing the greenlets that live on it.
//!
//! [`event_loop`] is the hub itself: the per-thread loop running in a greenlet of its own,
//! `park`/wakers, timers and fd readiness, and the [`HubHandle`] other threads wake it with.
//! The pure data structures it is built on do no I/O and know nothing about greenlets, so that
//! unit tests, property tests, fuzzing and Miri can reach them directly:
//!
//! | structure | module | what the hub uses it for |
//! |---|---|---|
//! | [`TimerQueue`](timers::TimerQueue), [`Deadline`](timers::Deadline) | [`timers`] | `sleep(t)`, timeouts: the pending timers, earliest first, FIFO among equal deadlines |
//! | [`RunQueue`](run_queue::RunQueue) | [`run_queue`] | the greenlets ready to run, and the fairness rule that keeps `sleep(0)` loops from starving I/O and timers |
//!
//! One turn of the loop: run the greenlets that were ready when the turn began
//! ([`RunQueue::start_turn`](run_queue::RunQueue::start_turn): at most the budget), fire the
//! expired timers ([`TimerQueue::pop_expired`](timers::TimerQueue::pop_expired), in deadline
//! order), then poll I/O: without blocking if anything is ready, else until
//! [`TimerQueue::next_deadline`](timers::TimerQueue::next_deadline).
//!
//! A thread's hub is created on first use with the defaults ([`Builder`] changes them:
//! backend, blocking monitor, a paused clock for deterministic tests).

pub(crate) mod clock;
pub mod event_loop;
pub(crate) mod fds;
pub mod monitor;
pub(crate) mod prefetch;
pub(crate) mod remote;
pub mod run_queue;
pub mod timers;
pub(crate) mod wait_list;

pub use event_loop::{backend, use_backend};
pub use monitor::{BlockingReport, MonitorConfig};
pub use remote::{handle, HubHandle};

use crate::sys::Backend;
use std::io;
use std::time::Duration;

/// Configures the hub of the calling thread, before its first use.
///
/// ```
/// use std::time::Duration;
/// std::thread::spawn(|| {
///     grove::hub::Builder::new()
///         .paused_clock(true) // timers fire in order, at once: virtual time
///         .install()
///         .unwrap();
///     let t = std::time::Instant::now();
///     grove::sleep(Duration::from_secs(3600));
///     assert!(t.elapsed() < Duration::from_secs(60));
/// })
/// .join()
/// .unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub(crate) backend: Option<Backend>,
    pub(crate) monitor: Option<MonitorConfig>,
    pub(crate) paused_clock: bool,
}

impl Builder {
    /// The defaults: the backend from `GROVE_LOOP` (else the platform's best), the monitor
    /// from `GROVE_MAX_BLOCKING_MS` (else off), real time.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The poller backend.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = Some(backend);
        self
    }

    /// Turns the blocking monitor on: a greenlet that keeps the hub busy longer than
    /// `threshold` is reported on stderr, once per incident (see [`monitor`]).
    pub fn monitor(mut self, threshold: Duration) -> Builder {
        self.monitor = Some(MonitorConfig::new(threshold));
        self
    }

    /// The blocking monitor with a custom report function.
    pub fn monitor_with(mut self, config: MonitorConfig) -> Builder {
        self.monitor = Some(config);
        self
    }

    /// A paused clock: time stands still while greenlets run and, when every greenlet waits,
    /// jumps straight to the next timer. Sleeps and timeouts then take no real time and
    /// happen in a deterministic order: for tests and simulations.
    pub fn paused_clock(mut self, paused: bool) -> Builder {
        self.paused_clock = paused;
        self
    }

    /// Makes this the configuration of the calling thread's hub. Errors if the hub already
    /// exists (it is created by the first grove call on the thread).
    pub fn install(self) -> io::Result<()> {
        event_loop::configure(self)
    }
}
