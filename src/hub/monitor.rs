//! The blocking monitor: a watchdog thread that notices a greenlet keeping its hub busy (not
//! yielding) for longer than a threshold, and reports it once per incident. gevent's monitor
//! thread, in Rust; tokio has none.
//!
//! Opt in with [`Builder::monitor`](super::Builder::monitor) or the environment variable
//! `GROVE_MAX_BLOCKING_MS`.
//!
//! # How it works
//!
//! The hub publishes, around every switch into a greenlet, an *entry number* (odd while a
//! greenlet runs, even while the hub itself runs) and when the entry began, plus who runs
//! (id, name, spawn location). The watchdog wakes every quarter threshold; if the same odd
//! entry number has been running for longer than the threshold it reports it, and remembers
//! the number, so one incident gives one report however long it lasts. The hub pays two
//! relaxed atomic stores, a clock read and an uncontended lock per switch, and only when the
//! monitor is on.

use super::event_loop::Task;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One incident: a greenlet ran without yielding to its hub for longer than the threshold.
#[derive(Debug, Clone)]
pub struct BlockingReport {
    /// The greenlet's id.
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned (`None` for the thread's main greenlet).
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long it had been running when the monitor noticed.
    pub running_for: Duration,
    /// The threshold.
    pub threshold: Duration,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grove monitor: greenlet {}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " ({n})")?;
        }
        if let Some(l) = self.spawned_at {
            write!(f, " spawned at {l}")?;
        }
        write!(
            f,
            " has kept its hub busy for {} ms without yielding (threshold {} ms)",
            self.running_for.as_millis(),
            self.threshold.as_millis()
        )
    }
}

/// What the monitor does with a report.
pub type ReportFn = Arc<dyn Fn(&BlockingReport) + Send + Sync>;

/// The monitor's settings: the threshold and where reports go.
#[derive(Clone)]
pub struct MonitorConfig {
    pub(crate) threshold: Duration,
    pub(crate) report: ReportFn,
}

impl fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl MonitorConfig {
    /// Reports to stderr, one line per incident.
    pub fn new(threshold: Duration) -> MonitorConfig {
        MonitorConfig {
            threshold: threshold.max(Duration::from_millis(1)),
            report: Arc::new(|r| eprintln!("{r}")),
        }
    }

    /// Sends reports to `f` instead of stderr (it runs on the watchdog thread).
    pub fn report_with(mut self, f: impl Fn(&BlockingReport) + Send + Sync + 'static) -> Self {
        self.report = Arc::new(f);
        self
    }
}

/// The monitor configuration from `GROVE_MAX_BLOCKING_MS`, if set to a positive number.
pub(crate) fn from_env() -> Option<MonitorConfig> {
    let v = std::env::var("GROVE_MAX_BLOCKING_MS").ok()?;
    match v.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(MonitorConfig::new(Duration::from_millis(ms))),
        _ => {
            eprintln!("grove: ignoring GROVE_MAX_BLOCKING_MS={v:?}: expected a positive number of milliseconds");
            None
        }
    }
}

/// Who is running, as published for the watchdog.
#[derive(Clone)]
struct Running {
    id: u64,
    name: Option<Arc<str>>,
    spawned_at: Option<&'static Location<'static>>,
}

/// The hub's side of the monitor: what it publishes at each switch.
pub(crate) struct Probe {
    base: Instant,
    /// Odd while a greenlet runs.
    entry: AtomicU64,
    /// Nanoseconds since `base` when the current entry began.
    since: AtomicU64,
    who: Mutex<Option<Running>>,
    stopped: AtomicBool,
}

impl Probe {
    /// The hub is about to switch into `task`.
    pub(crate) fn enter(&self, task: &Task) {
        let who = Running {
            id: task.id(),
            name: task.name().cloned(),
            spawned_at: task.spawned_at(),
        };
        *self.who.lock().unwrap_or_else(|e| e.into_inner()) = Some(who);
        self.since
            .store(self.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.entry.fetch_add(1, Ordering::Release);
    }

    /// The greenlet gave control back to the hub.
    pub(crate) fn leave(&self) {
        self.entry.fetch_add(1, Ordering::Release);
    }

    /// The hub's thread is ending: the watchdog exits.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}

/// Starts the watchdog thread for a new hub whose main greenlet has id `main_id`.
pub(crate) fn start(config: MonitorConfig, main_id: u64) -> Arc<Probe> {
    let probe = Arc::new(Probe {
        base: Instant::now(),
        // The main greenlet runs when the hub is created: entry 1.
        entry: AtomicU64::new(1),
        since: AtomicU64::new(0),
        who: Mutex::new(Some(Running {
            id: main_id,
            name: Some("main".into()),
            spawned_at: None,
        })),
        stopped: AtomicBool::new(false),
    });
    let p = probe.clone();
    let spawned = std::thread::Builder::new()
        .name("grove-monitor".into())
        .spawn(move || watchdog(p, config));
    if let Err(e) = spawned {
        eprintln!("grove: cannot start the blocking monitor thread: {e}");
    }
    probe
}

fn watchdog(p: Arc<Probe>, config: MonitorConfig) {
    let tick = (config.threshold / 4).max(Duration::from_micros(500));
    let mut reported = 0u64;
    while !p.stopped.load(Ordering::Acquire) && Arc::strong_count(&p) > 1 {
        std::thread::sleep(tick);
        let entry = p.entry.load(Ordering::Acquire);
        if entry % 2 == 0 || entry == reported {
            continue;
        }
        let since = Duration::from_nanos(p.since.load(Ordering::Relaxed));
        let running_for = p.base.elapsed().saturating_sub(since);
        if running_for < config.threshold {
            continue;
        }
        let who = p.who.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Still the same entry? (The greenlet may have yielded while we looked.)
        if p.entry.load(Ordering::Acquire) != entry {
            continue;
        }
        reported = entry;
        if let Some(w) = who {
            let report = BlockingReport {
                id: w.id,
                name: w.name.map(|n| n.to_string()),
                spawned_at: w.spawned_at,
                running_for,
                threshold: config.threshold,
            };
            (config.report)(&report);
        }
    }
}
