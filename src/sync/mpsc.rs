//! A channel across threads: the [`Receiver`] is used by greenlets of one hub, the
//! [`Sender`]s by any thread, hub or not. A receiver blocked on an empty channel parks
//! cooperatively; a send from another thread wakes it through its hub's inbox (the poller's
//! wake-up object), a send from its own thread without a system call. Multi-hub programs and
//! the thread pool stand on it.
//!
//! ```
//! let (tx, rx) = grove::sync::mpsc::channel();
//! for t in 0..4 {
//!     let tx = tx.clone();
//!     std::thread::spawn(move || {
//!         for i in 0..1000 {
//!             tx.send(t * 1000 + i).unwrap();
//!         }
//!     });
//! }
//! drop(tx);
//! let sum: u64 = rx.iter().sum(); // ends when every sender is gone
//! assert_eq!(sum, (0..4000).sum());
//! ```
//!
//! # Rules
//!
//! * Unbounded: a send never waits. Items from one sender arrive in the order sent.
//! * The receiver takes the whole backlog in one lock and hands it out from a local buffer,
//!   so a busy channel costs one lock per batch on the receiving side.
//! * The check "anything queued? any sender left?" and the registration of the waiting
//!   receiver happen under one lock; a sender takes the registration under the same lock
//!   before it wakes it. So no wake-up is lost, and a receiver is woken at most once per wait.
//! * When the last sender goes, a waiting receiver wakes and, once the backlog is drained,
//!   gets [`RecvError::Disconnected`]. When the receiver goes, sends fail and hand the value
//!   back ([`SendError`]).

use super::WaitError;
use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake};
use crate::hub::remote::{RemoteWaker, Target};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use std::sync::mpsc::{SendError, TryRecvError};

/// Why a receive produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and nothing is left.
    Disconnected,
    /// The wait ended first (timed out, or see [`WaitError`]).
    Wait(WaitError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => {
                f.write_str("grove: the channel is empty and every sender is gone")
            }
            RecvError::Wait(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}

struct State<T> {
    queue: VecDeque<T>,
    /// The receiver, while it waits.
    waiter: Option<RemoteWaker>,
    senders: usize,
    receiver: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock (it only moves values), so a poisoned lock
        // still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a channel: any number of [`Sender`]s (`Send + Clone`), one [`Receiver`].
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waiter: None,
            senders: 1,
            receiver: true,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            buf: RefCell::new(VecDeque::new()),
            _not_sync: PhantomData,
        },
    )
}

/// The sending half: usable from any thread.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender")
    }
}

impl<T> Sender<T> {
    /// Sends `value`; never waits. Fails, handing it back, if the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let waiter = {
            let mut st = self.shared.lock();
            if !st.receiver {
                return Err(SendError(value));
            }
            st.queue.push_back(value);
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waiter = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            if st.senders == 0 {
                st.waiter.take()
            } else {
                None
            }
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// The receiving half: used by the greenlets of one thread at a time (it may be moved to
/// another thread, but not shared).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The batch taken from the shared queue, handed out without locking.
    buf: RefCell<VecDeque<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}

/// What the shared side had for a receiver that found its buffer empty.
enum Refill {
    Got,
    Disconnected,
    Empty,
}

impl<T> Receiver<T> {
    fn pop(&self) -> Option<T> {
        self.buf.borrow_mut().pop_front()
    }

    /// Moves the shared backlog into the local buffer (which is empty).
    fn refill(&self, st: &mut State<T>) -> Refill {
        if !st.queue.is_empty() {
            std::mem::swap(&mut *self.buf.borrow_mut(), &mut st.queue);
            Refill::Got
        } else if st.senders == 0 {
            Refill::Disconnected
        } else {
            Refill::Empty
        }
    }

    /// Takes a value if one is queued, without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if let Some(v) = self.pop() {
            return Ok(v);
        }
        let r = self.refill(&mut self.shared.lock());
        match r {
            Refill::Got => Ok(self.pop().expect("refilled")),
            Refill::Disconnected => Err(TryRecvError::Disconnected),
            Refill::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Waits for a value; other greenlets of this hub run meanwhile.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_inner(None)
    }

    /// Waits at most `timeout` for a value.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_inner(Some(timeout))
    }

    fn recv_inner(&self, timeout: Option<Duration>) -> Result<T, RecvError> {
        let deadline = timeout.map(hub::deadline_after);
        loop {
            if let Some(v) = self.pop() {
                return Ok(v);
            }
            let left = deadline.map(|d| d.saturating_duration_since(hub::now()));
            let mut outcome = Refill::Empty;
            let (why, _guards) = hub::park(Waiting::On(WaitOn::Mpsc), |w| {
                let mut st = self.shared.lock();
                outcome = self.refill(&mut st);
                if let Refill::Empty = outcome {
                    if left != Some(Duration::ZERO) {
                        let (remote, guard) = RemoteWaker::register(Target::Park(w.clone()));
                        st.waiter = Some(remote);
                        return Some((guard, hub::timeout_guard(w, left)));
                    }
                }
                drop(st);
                w.abort(Wake::Ready); // nothing to wait for
                None
            });
            match outcome {
                Refill::Got => continue,
                Refill::Disconnected => return Err(RecvError::Disconnected),
                Refill::Empty => {}
            }
            // We waited: withdraw the registration (a sender may have taken it already).
            self.shared.lock().waiter = None;
            match why {
                Wake::Ready if left != Some(Duration::ZERO) => continue,
                Wake::Ready => return Err(RecvError::Wait(WaitError::TimedOut)),
                other => {
                    // Something may have arrived at the same moment.
                    if let Ok(v) = self.try_recv() {
                        return Ok(v);
                    }
                    return Err(RecvError::Wait(WaitError::from_wake(other)));
                }
            }
        }
    }

    /// Iterates over values as they arrive; ends when every sender is gone (and the backlog
    /// is drained).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queue, waiter) = {
            let mut st = self.shared.lock();
            st.receiver = false;
            (std::mem::take(&mut st.queue), st.waiter.take())
        };
        drop(waiter);
        drop(queue);
    }
}
