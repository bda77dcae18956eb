//! [`Semaphore`]: counted permits, handed to waiters in FIFO order (gevent's `Semaphore` and
//! `BoundedSemaphore`).
//!
//! # Rules
//!
//! * `permits` counts the free permits. A permit is either free, held (by a guard or a
//!   [`SemaphorePermit::forget`]), or in transit to a woken waiter.
//! * `release` hands its permit to the longest-waiting parked greenlet if there is one (it is
//!   woken owning it), and only otherwise makes it free. So while anyone waits, no permit is
//!   free, and `acquire` takes a free permit only when nobody is waiting: service is FIFO.
//! * A waiter that timed out or was killed has left the list's live entries before a release
//!   can pick it, so a permit is never handed to a greenlet that will not take it. A waiter
//!   woken with a permit keeps it even if an interrupt arrives before it runs.
//! * A bounded semaphore counts the permits it was made with; a `release` that would make
//!   more free than that is refused with [`OverRelease`] (nothing changes).

use super::WaitError;
use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake};
use crate::hub::wait_list::WaitList;
use crate::wait::{Waitable, Watcher};
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// Counted permits for greenlets; waiters are served in the order they began waiting.
///
/// ```
/// use grove::sync::Semaphore;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let sem = Rc::new(Semaphore::new(2));
/// let gs: Vec<_> = (0..4)
///     .map(|i| {
///         let sem = sem.clone();
///         grove::spawn(move || {
///             let _permit = sem.acquire().unwrap(); // at most two hold one at a time
///             grove::sleep(Duration::from_millis(5));
///             i
///         })
///     })
///     .collect();
/// let done: Vec<i32> = gs.into_iter().map(|g| g.get().unwrap()).collect();
/// assert_eq!(done, [0, 1, 2, 3]);
/// assert_eq!(sem.available(), 2);
/// ```
pub struct Semaphore {
    permits: Cell<usize>,
    /// For a bounded semaphore, the most permits that may be free.
    bound: Option<usize>,
    waiters: WaitList,
}

/// A [`Semaphore::release`] that would have freed more permits than a bounded semaphore
/// started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRelease {
    /// The semaphore's starting (and largest) number of permits.
    pub bound: usize,
}

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grove: semaphore released more times than acquired (it holds at most {} permits)",
            self.bound
        )
    }
}

impl std::error::Error for OverRelease {}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.permits.get())
            .field("bound", &self.bound)
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits; `release` may add more.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            bound: None,
            waiters: WaitList::new(),
        }
    }

    /// A bounded semaphore (gevent's `BoundedSemaphore`): releasing past the starting count
    /// is an error ([`OverRelease`]).
    pub const fn bounded(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            bound: Some(permits),
            waiters: WaitList::new(),
        }
    }

    /// Free permits now.
    pub fn available(&self) -> usize {
        self.permits.get()
    }

    /// Whether an `acquire` would block (no permit is free).
    pub fn locked(&self) -> bool {
        self.permits.get() == 0
    }

    /// Takes a permit if one is free, without waiting.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.take_free().then(|| SemaphorePermit { sem: self })
    }

    /// Waits for a permit; other greenlets run meanwhile. Errors only if nothing could ever
    /// release one ([`WaitError::WouldBlockForever`]) or the wait was abandoned while
    /// unwinding.
    pub fn acquire(&self) -> Result<SemaphorePermit<'_>, WaitError> {
        self.acquire_raw(None)?;
        Ok(SemaphorePermit { sem: self })
    }

    /// Waits at most `timeout` for a permit; `None` if none came (gevent's `acquire` returning
    /// false).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_raw(Some(timeout)).ok()?;
        Some(SemaphorePermit { sem: self })
    }

    /// Takes a permit and keeps it without a guard (release it with [`release`](Self::release)).
    pub(crate) fn acquire_raw(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        if self.take_free() {
            return Ok(());
        }
        let (why, _timer) = hub::park(Waiting::On(WaitOn::Semaphore), |w| {
            self.waiters.push(w);
            hub::timeout_guard(w, timeout)
        });
        // Woken with `Ready` only by `release`, which handed us its permit.
        match why {
            Wake::Ready => Ok(()),
            other => Err(WaitError::from_wake(other)),
        }
    }

    /// A free permit, if there is one and nobody waits for it.
    fn take_free(&self) -> bool {
        let n = self.permits.get();
        if n > 0 {
            self.permits.set(n - 1);
            true
        } else {
            false
        }
    }

    /// Gives a permit back: to the longest-waiting greenlet if any (it is woken owning it),
    /// else it becomes free. A bounded semaphore refuses to exceed its starting count.
    pub fn release(&self) -> Result<(), OverRelease> {
        if let Some(bound) = self.bound {
            if self.permits.get() >= bound {
                return Err(OverRelease { bound });
            }
        }
        if !self.waiters.wake_one() {
            self.permits.set(self.permits.get() + 1);
        }
        Ok(())
    }
}

impl Waitable for Semaphore {
    fn is_ready(&self) -> bool {
        !self.locked()
    }

    fn watch(&self, watcher: &Watcher) {
        self.waiters.watch(watcher);
    }
}

/// A permit held; given back when dropped.
#[must_use = "the permit is released at once if not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken without giving it back on drop (release it later with
    /// [`Semaphore::release`]).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        // A held permit always fits under the bound, unless someone called `release`
        // without holding one; that release was the mistake, and it took the place of this
        // permit, so losing this one keeps the count right.
        let _ = self.sem.release();
    }
}
