//! Scoped timeouts: [`timeout`] runs a closure and interrupts whatever blocking call is
//! running inside it when the time is up (gevent's `Timeout` as a context manager).
//!
//! ```
//! use std::time::Duration;
//!
//! let r = grove::timeout(Duration::from_millis(10), || {
//!     grove::sleep(Duration::from_secs(60)); // interrupted here
//!     "finished"
//! });
//! assert!(r.is_err());
//! assert_eq!(grove::timeout(Duration::from_secs(1), || 7), Ok(7));
//! ```
//!
//! # How it works
//!
//! The scope arms a timer. When it fires it raises an interrupt in the greenlet (see
//! `Interrupt` in the hub): the blocking call it is parked in unwinds, destructors run, and
//! the scope that armed the timer catches the unwind and returns [`Elapsed`]. Nested scopes
//! each have their own id: an inner scope passes an outer one's unwind on, so the scope whose
//! timer fired is the one that returns `Err`, and an outer timeout is never swallowed by an
//! inner one. A closure that never blocks cannot be interrupted (there is no point at which
//! to raise); it returns normally, as in gevent.

use crate::hub::event_loop::{self as hub, ElapsedSignal, Interrupt, TimerAction};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A [`timeout`] scope's time ran out before its closure finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    /// The scope's duration.
    pub fn duration(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grove: timed out after {:?}", self.after)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

/// Runs `f`; if it is still blocked after `d`, interrupts it and returns `Err(Elapsed)`.
/// A closure that never blocks cannot be interrupted: it returns normally. Nested scopes
/// each report their own expiry; an outer one is never lost to an inner one. (Every scope
/// takes the next id: an enclosing scope, opened earlier, has a smaller one, which is how
/// the hub knows which of two pending timeouts is the outer.)
pub fn timeout<T>(d: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let me = hub::current_task();
    let id = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
    let timer = hub::add_timer(
        hub::deadline_after(d),
        TimerAction::interrupt(me.clone(), Interrupt::Elapsed { id }),
    );
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    hub::cancel_timer(timer);
    // Our timer may have fired while the closure was finishing: that interrupt is void now.
    if me.interrupt() == Some(Interrupt::Elapsed { id }) {
        me.set_interrupt(None);
    }
    match r {
        Ok(v) => Ok(v),
        Err(p) => match p.downcast_ref::<ElapsedSignal>() {
            Some(s) if s.id == id => Err(Elapsed { after: d }),
            _ => panic::resume_unwind(p),
        },
    }
}
