//! [`Lock`] and [`RLock`]: mutual exclusion between greenlets, owned by the greenlet that
//! took it (gevent's `Lock`/`RLock`).
//!
//! # Rules
//!
//! * A lock is a bounded [`Semaphore`] of one permit plus its owner, the id of the greenlet
//!   holding it; waiting is the semaphore's (FIFO hand-off, timeouts, kills).
//! * Only the owner may unlock. [`Lock::release`] from another greenlet (or of a lock nobody
//!   holds) is refused with a [`LockError`] and changes nothing. Guards unlock when dropped;
//!   a guard dropped by a greenlet that does not own the lock (it was moved there) panics
//!   with that error rather than unlock silently, unless that greenlet is already unwinding,
//!   in which case the error is printed and the lock stays held.
//! * An [`RLock`] may be taken again by its owner; it is unlocked when every acquisition has
//!   been released. A plain [`Lock`] taken twice by its owner would wait for itself forever:
//!   that is reported as [`LockError::WouldDeadlock`] instead.

use super::{Semaphore, WaitError};
use crate::hub::event_loop as hub;
use crate::wait::{Waitable, Watcher};
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// Why a lock operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The calling greenlet does not hold the lock (`owner` does, or nobody).
    NotOwner {
        /// The greenlet holding it, if any.
        owner: Option<u64>,
        /// The greenlet that tried to unlock it.
        caller: u64,
    },
    /// The owner of a non-reentrant [`Lock`] tried to take it again.
    WouldDeadlock {
        /// The greenlet, owner and caller.
        owner: u64,
    },
    /// The wait for the lock ended without it (see [`WaitError`]).
    Wait(WaitError),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::NotOwner {
                owner: Some(o),
                caller,
            } => write!(
                f,
                "grove: greenlet {caller} cannot release a lock held by greenlet {o}"
            ),
            LockError::NotOwner {
                owner: None,
                caller,
            } => write!(
                f,
                "grove: greenlet {caller} cannot release a lock that nobody holds"
            ),
            LockError::WouldDeadlock { owner } => write!(
                f,
                "grove: greenlet {owner} already holds this lock; taking it again would wait forever (use RLock)"
            ),
            LockError::Wait(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LockError {}

impl From<WaitError> for LockError {
    fn from(e: WaitError) -> LockError {
        LockError::Wait(e)
    }
}

/// The id of the running greenlet (the thread's main greenlet outside any other).
fn me() -> u64 {
    hub::current_task().id()
}

/// A guard's unlock failed: see the module rules.
fn guard_misuse(e: LockError) {
    if std::thread::panicking() {
        eprintln!("{e} (from a lock guard dropped while unwinding; the lock stays held)");
    } else {
        panic!("{e} (a lock guard was dropped by a greenlet that does not own the lock)");
    }
}

/// What both locks are: a one-permit semaphore, its owner, and how many times the owner holds
/// it (always 1 for a [`Lock`]).
struct Owned {
    sem: Semaphore,
    owner: Cell<Option<u64>>,
    depth: Cell<usize>,
}

impl Owned {
    const fn new() -> Owned {
        Owned {
            sem: Semaphore::bounded(1),
            owner: Cell::new(None),
            depth: Cell::new(0),
        }
    }

    /// Takes it, waiting at most `timeout`. Its owner taking it again: one level more if
    /// `reentrant`, else [`LockError::WouldDeadlock`].
    fn acquire(&self, reentrant: bool, timeout: Option<Duration>) -> Result<(), LockError> {
        let me = me();
        if self.owner.get() == Some(me) {
            if !reentrant {
                return Err(LockError::WouldDeadlock { owner: me });
            }
        } else {
            self.sem.acquire_raw(timeout)?;
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        Ok(())
    }

    /// Takes it if that needs no wait.
    fn try_acquire(&self, reentrant: bool) -> bool {
        let me = me();
        if self.owner.get() == Some(me) {
            if !reentrant {
                return false;
            }
        } else {
            match self.sem.try_acquire() {
                Some(p) => p.forget(),
                None => return false,
            }
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        true
    }

    /// Releases one level; the last unlocks. Only the owner may.
    fn release(&self) -> Result<(), LockError> {
        let caller = me();
        match self.owner.get() {
            Some(o) if o == caller => {
                let d = self.depth.get() - 1;
                self.depth.set(d);
                if d == 0 {
                    self.owner.set(None);
                    self.sem
                        .release()
                        .expect("a held lock's permit fits under its bound");
                }
                Ok(())
            }
            owner => Err(LockError::NotOwner { owner, caller }),
        }
    }

    /// Held (or being handed to a waiter).
    fn is_locked(&self) -> bool {
        self.sem.locked()
    }
}

macro_rules! lock_type {
    ($(#[$doc:meta])* $name:ident, $guard:ident, $reentrant:expr) => {
        $(#[$doc])*
        pub struct $name {
            core: Owned,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("owner", &self.core.owner.get())
                    .field("depth", &self.core.depth.get())
                    .finish()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        impl $name {
            /// An unlocked lock.
            pub const fn new() -> $name {
                $name { core: Owned::new() }
            }

            /// Whether some greenlet holds it (or it is being handed to a waiter).
            pub fn is_locked(&self) -> bool {
                self.core.is_locked()
            }

            /// The id of the greenlet holding it (`None` while it is unlocked, or being
            /// handed to the next waiter, which has not run yet).
            pub fn owner(&self) -> Option<u64> {
                self.core.owner.get()
            }

            /// Waits for it and takes it; the guard releases it.
            pub fn lock(&self) -> Result<$guard<'_>, LockError> {
                self.core.acquire($reentrant, None)?;
                Ok($guard { lock: self })
            }

            /// Takes it if that needs no wait.
            pub fn try_lock(&self) -> Option<$guard<'_>> {
                self.core.try_acquire($reentrant).then(|| $guard { lock: self })
            }

            /// Waits at most `timeout`; `None` if it did not come.
            pub fn lock_timeout(&self, timeout: Duration) -> Option<$guard<'_>> {
                self.core.acquire($reentrant, Some(timeout)).ok()?;
                Some($guard { lock: self })
            }

            /// Takes it without a guard (gevent's `acquire`); release with
            /// [`release`](Self::release).
            pub fn acquire(&self) -> Result<(), LockError> {
                self.core.acquire($reentrant, None)
            }

            /// Releases it (one level, for a reentrant lock). Only the greenlet holding it
            /// may: anyone else gets [`LockError::NotOwner`] and nothing changes.
            pub fn release(&self) -> Result<(), LockError> {
                self.core.release()
            }
        }

        impl Waitable for $name {
            fn is_ready(&self) -> bool {
                !self.core.is_locked() || ($reentrant && self.core.owner.get() == Some(me()))
            }

            fn watch(&self, watcher: &Watcher) {
                self.core.sem.watch(watcher);
            }
        }

        /// A held acquisition; released when dropped (by its owner: see the module rules).
        #[must_use = "the lock is released at once if the guard is not kept"]
        pub struct $guard<'a> {
            lock: &'a $name,
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("owner", &self.lock.owner())
                    .finish()
            }
        }

        impl $guard<'_> {
            /// Releases now, reporting a guard dropped by a greenlet that does not own the
            /// lock as an error instead of a panic.
            pub fn unlock(self) -> Result<(), LockError> {
                let lock = self.lock;
                std::mem::forget(self);
                lock.release()
            }
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                if let Err(e) = self.lock.release() {
                    guard_misuse(e);
                }
            }
        }
    };
}

lock_type!(
    /// A mutual-exclusion lock owned by the greenlet that holds it.
    ///
    /// ```
    /// use grove::sync::Lock;
    /// use std::rc::Rc;
    ///
    /// let lock = Rc::new(Lock::new());
    /// let l = lock.clone();
    /// let g = grove::spawn(move || {
    ///     let _held = l.lock().unwrap();
    ///     grove::sleep(std::time::Duration::from_millis(5)); // main cannot take it meanwhile
    /// });
    /// grove::sleep(std::time::Duration::from_millis(1));
    /// assert!(lock.is_locked());
    /// assert!(lock.release().is_err()); // main does not own it
    /// drop(lock.lock().unwrap()); // waits for g
    /// g.join().unwrap();
    /// ```
    Lock,
    LockGuard,
    false
);

lock_type!(
    /// A reentrant lock: its owner may take it again, and it is unlocked when every acquisition
    /// has been released (gevent's `RLock`).
    ///
    /// ```
    /// use grove::sync::RLock;
    ///
    /// let lock = RLock::new();
    /// let outer = lock.lock().unwrap();
    /// let inner = lock.lock().unwrap(); // the owner again: no wait
    /// assert_eq!(lock.depth(), 2);
    /// drop(inner);
    /// assert!(lock.is_locked());
    /// drop(outer);
    /// assert!(!lock.is_locked());
    /// ```
    RLock,
    RLockGuard,
    true
);

impl RLock {
    /// How many times its owner holds it (0 when unlocked).
    pub fn depth(&self) -> usize {
        self.core.depth.get()
    }
}
