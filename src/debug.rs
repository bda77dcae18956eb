//! Introspection: what is every greenlet of this thread doing? (gevent's
//! `format_run_info`.)
//!
//! ```
//! let g = grove::Builder::new()
//!     .name("sleeper")
//!     .spawn(|| grove::sleep(std::time::Duration::from_millis(50)))
//!     .unwrap();
//! grove::yield_now(); // let it start and park
//! let info = grove::debug::run_info();
//! let me = info.greenlets.iter().find(|i| i.id == g.id()).unwrap();
//! assert!(matches!(me.state, grove::debug::GreenletState::Sleeping { .. }));
//! println!("{info}"); // a tree: main, and under it the greenlets it spawned
//! ```
//!
//! The blocking monitor (who keeps the hub busy) is in [`crate::hub::monitor`].

use crate::hub::event_loop::{self as hub, Waiting};
use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// What a greenlet is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreenletState {
    /// Running now (the one that called `run_info`).
    Running,
    /// Spawned, not started yet.
    NotStarted,
    /// Ready to run at the hub's next turn.
    Ready,
    /// In `sleep`, for about this much longer.
    Sleeping {
        /// Time left.
        remaining: Duration,
    },
    /// Joining the greenlet with this id.
    Joining(u64),
    /// Waiting for a file descriptor.
    WaitingFd {
        /// The descriptor.
        fd: i32,
        /// For writability (else readability).
        write: bool,
    },
    /// Waiting on something else, described.
    Waiting(&'static str),
    /// Blocked in a call that did not say what it waits for.
    Blocked,
}

impl fmt::Display for GreenletState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletState::Running => f.write_str("running"),
            GreenletState::NotStarted => f.write_str("not started"),
            GreenletState::Ready => f.write_str("ready"),
            GreenletState::Sleeping { remaining } => {
                write!(f, "sleeping, {} ms left", remaining.as_millis())
            }
            GreenletState::Joining(id) => write!(f, "joining greenlet {id}"),
            GreenletState::WaitingFd { fd, write } => write!(
                f,
                "waiting for fd {fd} to be {}",
                if *write { "writable" } else { "readable" }
            ),
            GreenletState::Waiting(what) => write!(f, "waiting on {what}"),
            GreenletState::Blocked => f.write_str("blocked"),
        }
    }
}

/// One greenlet, as [`run_info`] saw it.
#[derive(Debug, Clone)]
pub struct GreenletInfo {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: Option<String>,
    /// What it is doing.
    pub state: GreenletState,
    /// Where it was spawned (`None` for the main greenlet).
    pub spawned_at: Option<&'static Location<'static>>,
    /// The greenlet that spawned it (`None` for the main greenlet).
    pub spawner: Option<u64>,
}

/// Every live greenlet of this thread's hub (the main one first, then the spawned ones that
/// have not finished). `Display` prints the spawn tree.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The greenlets.
    pub greenlets: Vec<GreenletInfo>,
}

/// A snapshot of what every greenlet on this thread is doing.
pub fn run_info() -> RunInfo {
    let now = hub::now();
    let deadlines = hub::wait_deadlines(now);
    let greenlets = hub::tasks()
        .into_iter()
        .map(|t| {
            let state = if hub::is_current(&t) {
                GreenletState::Running
            } else if !t.started.get() {
                GreenletState::NotStarted
            } else if t.is_parked() {
                match t.waiting() {
                    // A sleeping greenlet's timer is pending as long as it is parked.
                    Waiting::Sleep => GreenletState::Sleeping {
                        remaining: (deadlines.get(&t.id()).copied())
                            .map_or(Duration::ZERO, |d| d.saturating_duration_since(now)),
                    },
                    Waiting::Join(id) => GreenletState::Joining(id),
                    Waiting::Fd { fd, write } => GreenletState::WaitingFd { fd, write },
                    Waiting::On(what) => GreenletState::Waiting(what.describe()),
                    Waiting::Nothing => GreenletState::Blocked,
                }
            } else {
                GreenletState::Ready
            };
            GreenletInfo {
                id: t.id(),
                name: match t.is_spawned() {
                    true => t.name().map(|n| String::from(&**n)),
                    false => Some("main".into()),
                },
                state,
                spawned_at: t.spawned_at(),
                spawner: t.spawner(),
            }
        })
        .collect();
    RunInfo { greenlets }
}

impl fmt::Display for RunInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = |id: u64| self.greenlets.iter().any(|g| g.id == id);
        // Roots: the main greenlet, and greenlets whose spawner has finished.
        let roots: Vec<&GreenletInfo> = self
            .greenlets
            .iter()
            .filter(|g| g.spawner.is_none_or(|s| !known(s)))
            .collect();
        for r in roots {
            self.write_node(f, r, 0)?;
        }
        Ok(())
    }
}

impl RunInfo {
    fn write_node(
        &self,
        f: &mut fmt::Formatter<'_>,
        g: &GreenletInfo,
        depth: usize,
    ) -> fmt::Result {
        let indent = "  ".repeat(depth);
        let branch = if depth == 0 { "" } else { "+- " };
        write!(f, "{indent}{branch}greenlet {}", g.id)?;
        if let Some(n) = &g.name {
            write!(f, " ({n})")?;
        }
        write!(f, ": {}", g.state)?;
        if let Some(l) = g.spawned_at {
            write!(f, "; spawned at {l}")?;
        }
        writeln!(f)?;
        if depth > 64 {
            return Ok(());
        }
        for c in self.greenlets.iter().filter(|c| c.spawner == Some(g.id)) {
            self.write_node(f, c, depth + 1)?;
        }
        Ok(())
    }
}
