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
pub struct Lock {
    sem: Semaphore,
    owner: Cell<Option<u64>>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &self.owner.get())
            .finish()
    }
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            sem: Semaphore::bounded(1),
            owner: Cell::new(None),
        }
    }

    /// Whether some greenlet holds it (or it is being handed to a waiter).
    pub fn is_locked(&self) -> bool {
        self.sem.locked()
    }

    /// The id of the greenlet holding it (`None` while it is unlocked, or being handed to
    /// the next waiter, which has not run yet).
    pub fn owner(&self) -> Option<u64> {
        self.owner.get()
    }

    /// Waits for the lock and takes it; the guard unlocks it.
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError> {
        self.acquire_inner(None)?;
        Ok(LockGuard { lock: self })
    }

    /// Takes the lock if it is free, without waiting.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        let permit = self.sem.try_acquire()?;
        permit.forget();
        self.owner.set(Some(me()));
        Some(LockGuard { lock: self })
    }

    /// Waits at most `timeout` for the lock; `None` if it did not come.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        self.acquire_inner(Some(timeout)).ok()?;
        Some(LockGuard { lock: self })
    }

    /// Takes the lock without a guard (gevent's `acquire`); unlock with
    /// [`release`](Self::release).
    pub fn acquire(&self) -> Result<(), LockError> {
        self.acquire_inner(None)
    }

    fn acquire_inner(&self, timeout: Option<Duration>) -> Result<(), LockError> {
        let me = me();
        if self.owner.get() == Some(me) {
            return Err(LockError::WouldDeadlock { owner: me });
        }
        self.sem.acquire_raw(timeout)?;
        self.owner.set(Some(me));
        Ok(())
    }

    /// Unlocks it. Only the greenlet holding it may: anyone else gets
    /// [`LockError::NotOwner`] and the lock stays as it was.
    pub fn release(&self) -> Result<(), LockError> {
        let caller = me();
        match self.owner.get() {
            Some(o) if o == caller => {
                self.owner.set(None);
                self.sem
                    .release()
                    .expect("a held lock's permit fits under its bound");
                Ok(())
            }
            owner => Err(LockError::NotOwner { owner, caller }),
        }
    }
}

impl Waitable for Lock {
    fn is_ready(&self) -> bool {
        !self.is_locked()
    }

    fn watch(&self, watcher: &Watcher) {
        self.sem.watch(watcher);
    }
}

/// A held [`Lock`]; unlocks it when dropped (by its owner: see the module rules).
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner", &self.lock.owner())
            .finish()
    }
}

impl LockGuard<'_> {
    /// Unlocks now, reporting a guard dropped by a greenlet that does not own the lock as an
    /// error instead of a panic.
    pub fn unlock(self) -> Result<(), LockError> {
        let lock = self.lock;
        std::mem::forget(self);
        lock.release()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.release() {
            guard_misuse(e);
        }
    }
}

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
pub struct RLock {
    sem: Semaphore,
    owner: Cell<Option<u64>>,
    depth: Cell<usize>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner.get())
            .field("depth", &self.depth.get())
            .finish()
    }
}

impl Default for RLock {
    fn default() -> Self {
        RLock::new()
    }
}

impl RLock {
    /// An unlocked reentrant lock.
    pub const fn new() -> RLock {
        RLock {
            sem: Semaphore::bounded(1),
            owner: Cell::new(None),
            depth: Cell::new(0),
        }
    }

    /// Whether some greenlet holds it (or it is being handed to a waiter).
    pub fn is_locked(&self) -> bool {
        self.sem.locked()
    }

    /// The id of the greenlet holding it (`None` while it is unlocked, or being handed to
    /// the next waiter, which has not run yet).
    pub fn owner(&self) -> Option<u64> {
        self.owner.get()
    }

    /// How many times its owner holds it (0 when unlocked).
    pub fn depth(&self) -> usize {
        self.depth.get()
    }

    /// Takes it (at once if the caller owns it already, else waiting); the guard releases
    /// one acquisition.
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError> {
        self.acquire_inner(None)?;
        Ok(RLockGuard { lock: self })
    }

    /// Takes it if that needs no wait.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        let me = me();
        if self.owner.get() != Some(me) {
            self.sem.try_acquire()?.forget();
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        Some(RLockGuard { lock: self })
    }

    /// Waits at most `timeout`; `None` if it did not come.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        self.acquire_inner(Some(timeout)).ok()?;
        Some(RLockGuard { lock: self })
    }

    /// Takes it without a guard; release with [`release`](Self::release).
    pub fn acquire(&self) -> Result<(), LockError> {
        self.acquire_inner(None)
    }

    fn acquire_inner(&self, timeout: Option<Duration>) -> Result<(), LockError> {
        let me = me();
        if self.owner.get() != Some(me) {
            self.sem.acquire_raw(timeout)?;
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        Ok(())
    }

    /// Releases one acquisition; the last one unlocks. Only the owner may.
    pub fn release(&self) -> Result<(), LockError> {
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
}

impl Waitable for RLock {
    fn is_ready(&self) -> bool {
        !self.sem.locked() || self.owner.get() == Some(me())
    }

    fn watch(&self, watcher: &Watcher) {
        self.sem.watch(watcher);
    }
}

/// One held acquisition of an [`RLock`]; released when dropped (by the owner).
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("owner", &self.lock.owner())
            .finish()
    }
}

impl RLockGuard<'_> {
    /// Releases now, reporting misuse as an error instead of a panic.
    pub fn unlock(self) -> Result<(), LockError> {
        let lock = self.lock;
        std::mem::forget(self);
        lock.release()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.release() {
            guard_misuse(e);
        }
    }
}
