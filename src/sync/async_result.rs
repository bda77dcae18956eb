//! [`AsyncResult`]: a value or an error, set once, that greenlets wait for (gevent's
//! `AsyncResult`). It is `Send + Sync`: any thread may set it, and greenlets on any hub may
//! wait for it; a setter on another thread wakes them through their hubs
//! ([`RemoteWaker`](crate::hub::remote)).
//!
//! # Rules
//!
//! * It is set at most once; a second `set` or `set_error` is refused and hands its value
//!   back.
//! * Setting wakes every waiter, in the order they began waiting, each on its own hub; a
//!   waiter on the setter's own thread is woken without a system call.
//! * The check "is it set?" and the registration of a waiter happen under one lock, so a
//!   set that races with a greenlet starting to wait always wakes it.

use super::WaitError;
use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake};
use crate::hub::remote::{RemoteWaker, Target};
use crate::wait::{Waitable, Watcher};
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Why an [`AsyncResult`] produced no value.
#[derive(Debug, Clone)]
pub enum AsyncError {
    /// It was set to this error ([`AsyncResult::set_error`]).
    Failed(Arc<dyn Error + Send + Sync>),
    /// It was not set in time, or could not be waited for (see [`WaitError`]).
    Wait(WaitError),
}

impl fmt::Display for AsyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsyncError::Failed(e) => write!(f, "grove: the async result failed: {e}"),
            AsyncError::Wait(e) => e.fmt(f),
        }
    }
}

impl Error for AsyncError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AsyncError::Failed(e) => Some(&**e),
            AsyncError::Wait(e) => Some(e),
        }
    }
}

impl From<WaitError> for AsyncError {
    fn from(e: WaitError) -> AsyncError {
        AsyncError::Wait(e)
    }
}

/// A second `set`: an [`AsyncResult`] is set once. Holds what was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadySet<T>(pub T);

impl<T> fmt::Display for AlreadySet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("grove: the async result was set already (it is set once)")
    }
}

impl<T: fmt::Debug> Error for AlreadySet<T> {}

struct State<T> {
    value: Option<Result<T, Arc<dyn Error + Send + Sync>>>,
    waiters: Vec<RemoteWaker>,
}

/// A value or an error, set once (from any thread), that greenlets wait for. Clones share
/// the same result.
///
/// ```
/// use grove::AsyncResult;
///
/// let r = AsyncResult::new();
/// let setter = r.clone();
/// std::thread::spawn(move || setter.set(42).unwrap()); // another thread
/// assert_eq!(r.get().unwrap(), 42); // this greenlet waits cooperatively
/// assert!(r.set(7).is_err()); // set once
/// ```
pub struct AsyncResult<T> {
    inner: Arc<Mutex<State<T>>>,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for AsyncResult<T> {
    fn default() -> Self {
        AsyncResult::new()
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        let s = match &st.value {
            None => "pending",
            Some(Ok(_)) => "value",
            Some(Err(_)) => "error",
        };
        f.debug_struct("AsyncResult").field("state", &s).finish()
    }
}

impl<T> AsyncResult<T> {
    /// A result not set yet.
    pub fn new() -> AsyncResult<T> {
        AsyncResult {
            inner: Arc::new(Mutex::new(State {
                value: None,
                waiters: Vec::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding this lock (it only moves values in and out).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the value and wakes every waiter. Refused (the value handed back) if it was set
    /// already.
    pub fn set(&self, value: T) -> Result<(), AlreadySet<T>> {
        self.complete(Ok(value)).map_err(|r| match r {
            Ok(v) => AlreadySet(v),
            Err(_) => unreachable!("complete hands back what it was given"),
        })
    }

    /// Sets an error and wakes every waiter. Refused if it was set already.
    pub fn set_error(
        &self,
        error: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Result<(), AlreadySet<Arc<dyn Error + Send + Sync>>> {
        let e: Arc<dyn Error + Send + Sync> = Arc::from(error.into());
        self.complete(Err(e)).map_err(|r| match r {
            Err(e) => AlreadySet(e),
            Ok(_) => unreachable!("complete hands back what it was given"),
        })
    }

    fn complete(
        &self,
        r: Result<T, Arc<dyn Error + Send + Sync>>,
    ) -> Result<(), Result<T, Arc<dyn Error + Send + Sync>>> {
        let waiters = {
            let mut st = self.state();
            if st.value.is_some() {
                return Err(r);
            }
            st.value = Some(r);
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
        Ok(())
    }

    /// Whether it has been set (to a value or an error).
    pub fn ready(&self) -> bool {
        self.state().value.is_some()
    }

    /// Whether it has been set to a value.
    pub fn successful(&self) -> bool {
        matches!(self.state().value, Some(Ok(_)))
    }

    /// Waits until it is set. Errors with [`WaitError::WouldBlockForever`] if nothing could
    /// ever set it (gevent's LoopExit), or [`WaitError::Interrupted`] if the wait was
    /// abandoned while unwinding. A result that no other handle refers to can never be set:
    /// waiting for it fails at once. One that other handles refer to is waited for, since
    /// another thread may set it; its wait counts as a source of work for the hub, which then
    /// never reports LoopExit to it.
    pub fn wait(&self) -> Result<(), WaitError> {
        self.wait_inner(None)
    }

    /// Waits at most `timeout`; returns whether it was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_inner(Some(timeout)).is_ok()
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        if self.ready() {
            return Ok(());
        }
        if Arc::strong_count(&self.inner) == 1 && timeout.is_none() {
            // Nobody else holds it, so nobody can set it from now on. But the last other
            // holder may have set it and let go just after the look above: look again. (The
            // fence pairs with the release of that holder's drop, so its set is visible.)
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            return if self.ready() {
                Ok(())
            } else {
                Err(WaitError::WouldBlockForever)
            };
        }
        let (why, _guards) = hub::park(Waiting::On(WaitOn::AsyncResult), |w| {
            let (remote, guard) = RemoteWaker::register(Target::Park(w.clone()));
            let mut st = self.state();
            if st.value.is_some() {
                drop(st);
                w.abort(Wake::Ready); // set meanwhile: do not park
            } else {
                st.waiters.push(remote);
            }
            (guard, hub::timeout_guard(w, timeout))
        });
        match why {
            _ if self.ready() => Ok(()),
            Wake::Ready => Ok(()),
            other => Err(WaitError::from_wake(other)),
        }
    }

    /// Waits until it is set and returns a copy of the value, or the error.
    pub fn get(&self) -> Result<T, AsyncError>
    where
        T: Clone,
    {
        self.wait_inner(None)?;
        self.peek().expect("set, since the wait ended")
    }

    /// [`get`](Self::get), waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, AsyncError>
    where
        T: Clone,
    {
        self.wait_inner(Some(timeout))?;
        self.peek().expect("set, since the wait ended")
    }

    /// The outcome if it is set, without waiting.
    pub fn peek(&self) -> Option<Result<T, AsyncError>>
    where
        T: Clone,
    {
        match &self.state().value {
            None => None,
            Some(Ok(v)) => Some(Ok(v.clone())),
            Some(Err(e)) => Some(Err(AsyncError::Failed(e.clone()))),
        }
    }

    /// Takes the value out, waiting for it (for a value that is not `Clone`): the first
    /// caller gets it; later ones, and getters, see it as taken (`None`).
    pub fn take(&self) -> Option<Result<T, AsyncError>> {
        self.wait_inner(None).ok()?;
        let mut st = self.state();
        match st.value.take() {
            Some(Ok(v)) => {
                // Stay "set": put back an error that says the value was taken.
                st.value = Some(Err(Arc::from(Box::<dyn Error + Send + Sync>::from(
                    "the value was taken by AsyncResult::take",
                ))));
                Some(Ok(v))
            }
            Some(Err(e)) => {
                st.value = Some(Err(e.clone()));
                Some(Err(AsyncError::Failed(e)))
            }
            None => None,
        }
    }
}

impl<T> Waitable for AsyncResult<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn watch(&self, watcher: &Watcher) {
        let remote = RemoteWaker::register_watch(watcher.clone());
        let mut st = self.state();
        if st.value.is_some() {
            drop(st);
            remote.wake();
        } else {
            st.waiters.push(remote);
        }
    }
}
