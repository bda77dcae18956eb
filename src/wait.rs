//! Waiting on several things at once: [`wait_any`], [`iwait`] and [`wait_all`] over anything
//! [`Waitable`] (greenlets, events, and your own types), gevent's `wait`/`iwait`.
//!
//! ```
//! use grove::wait::{iwait, Waitable};
//! use std::time::Duration;
//!
//! let slow = grove::spawn(|| grove::sleep(Duration::from_millis(30)));
//! let fast = grove::spawn(|| grove::sleep(Duration::from_millis(10)));
//! let order: Vec<usize> = iwait(&[&slow as &dyn Waitable, &fast], None).collect();
//! assert_eq!(order, [1, 0]); // in the order they finished
//! ```

use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake, Waker};
use crate::sync::WaitError;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Something a greenlet can wait for alongside others.
///
/// Implement it for your own types: keep the [`Watcher`]s handed to [`watch`](Self::watch)
/// and call [`Watcher::notify`] on each when the thing becomes ready.
pub trait Waitable {
    /// Whether it is ready now (a greenlet finished, an event set...).
    fn is_ready(&self) -> bool;
    /// Asks to be told, through `watcher`, when it becomes ready. Called only while
    /// [`is_ready`](Self::is_ready) is false.
    fn watch(&self, watcher: &Watcher);
}

/// The waiting side of one [`Waitable`] in one `iwait`: notify it when the thing is ready.
/// Notifying a watcher whose `iwait` has ended does nothing.
#[derive(Clone)]
pub struct Watcher {
    state: Weak<WatchState>,
    index: usize,
}

struct WatchState {
    ready: RefCell<VecDeque<usize>>,
    seen: RefCell<Vec<bool>>,
    waker: RefCell<Option<Waker>>,
}

impl Watcher {
    /// Reports the thing ready (the first time counts; repeats are ignored). Returns false if
    /// nobody is watching any more.
    pub fn notify(&self) -> bool {
        let Some(s) = self.state.upgrade() else {
            return false;
        };
        let fresh = !std::mem::replace(&mut s.seen.borrow_mut()[self.index], true);
        if fresh {
            s.ready.borrow_mut().push_back(self.index);
            let w = s.waker.borrow_mut().take();
            if let Some(w) = w {
                w.wake(Wake::Ready);
            }
        }
        true
    }

    /// Whether the `iwait` this watcher belongs to has ended.
    pub(crate) fn is_dropped(&self) -> bool {
        self.state.strong_count() == 0
    }
}

/// An iterator over the indices of `objects` in the order they become ready. See [`iwait`].
pub struct IWait {
    state: Rc<WatchState>,
    left: usize,
    deadline: Option<crate::hub::timers::Deadline>,
    /// Why the iteration ended before every object was yielded (see [`IWait::ended_by`]).
    ended: Option<WaitError>,
}

/// Yields the indices of `objects` in the order they become ready (those ready already come
/// first, in list order), waiting cooperatively in between. Ends when all have been yielded,
/// or when `timeout` (for the whole iteration) passes, or when nothing could ever make the
/// rest ready (LoopExit); [`IWait::ended_by`] then says which.
pub fn iwait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> IWait {
    let state = Rc::new(WatchState {
        ready: RefCell::new(VecDeque::new()),
        seen: RefCell::new(vec![false; objects.len()]),
        waker: RefCell::new(None),
    });
    for (i, o) in objects.iter().enumerate() {
        if o.is_ready() {
            state.seen.borrow_mut()[i] = true;
            state.ready.borrow_mut().push_back(i);
        } else {
            o.watch(&Watcher {
                state: Rc::downgrade(&state),
                index: i,
            });
        }
    }
    IWait {
        state,
        left: objects.len(),
        deadline: timeout.map(hub::deadline_after),
        ended: None,
    }
}

impl IWait {
    /// Why the iteration ended before it yielded every object: [`WaitError::TimedOut`],
    /// [`WaitError::WouldBlockForever`] (nothing could ever make the rest ready: gevent's
    /// LoopExit) or [`WaitError::Interrupted`]. `None` while it runs, and once all were yielded.
    pub fn ended_by(&self) -> Option<WaitError> {
        self.ended
    }
}

impl Iterator for IWait {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(i) = self.state.ready.borrow_mut().pop_front() {
                self.left -= 1;
                return Some(i);
            }
            let remaining = match self.deadline {
                Some(d) => {
                    let r = d.saturating_duration_since(hub::now());
                    if r.is_zero() {
                        self.ended = Some(WaitError::TimedOut);
                        return None;
                    }
                    Some(r)
                }
                None => None,
            };
            let (why, _timer) = hub::park(Waiting::On(WaitOn::Any), |w| {
                *self.state.waker.borrow_mut() = Some(w.clone());
                hub::timeout_guard(w, remaining)
            });
            self.state.waker.borrow_mut().take();
            match why {
                Wake::Ready => continue,
                Wake::Timeout | Wake::LoopExit | Wake::Interrupted => {
                    // Something may have become ready at the same moment.
                    let i = self.state.ready.borrow_mut().pop_front();
                    match i {
                        Some(_) => self.left -= 1,
                        None => self.ended = Some(WaitError::from_wake(why)),
                    }
                    return i;
                }
            }
        }
    }
}

/// Waits until one of `objects` is ready and returns its index. Errors with
/// [`WaitError::TimedOut`] when `timeout` passes first, [`WaitError::WouldBlockForever`] if
/// nothing could ever make one ready (gevent's LoopExit), [`WaitError::Interrupted`] if the
/// wait was abandoned while unwinding. (With no objects, that is `WouldBlockForever` at once.)
pub fn wait_any(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<usize, WaitError> {
    let mut it = iwait(objects, timeout);
    it.next()
        .ok_or_else(|| it.ended_by().unwrap_or(WaitError::WouldBlockForever))
}

/// Waits until all of `objects` are ready; errors as [`wait_any`] does if they are not all
/// ready before `timeout`, or never could be.
pub fn wait_all(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<(), WaitError> {
    let mut it = iwait(objects, timeout);
    for _ in it.by_ref() {}
    match it.ended_by() {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
