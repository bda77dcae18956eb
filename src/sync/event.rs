//! [`Event`]: a flag greenlets wait on (gevent's `Event`).

use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake};
use crate::hub::wait_list::WaitList;
use crate::sync::WaitError;
use crate::wait::{Waitable, Watcher};
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// A flag that greenlets wait on: [`set`](Event::set) wakes every waiter, in the order they
/// began waiting. `set` followed at once by [`clear`](Event::clear) still wakes everyone who
/// was waiting when it was set.
///
/// ```
/// use grove::Event;
/// use std::rc::Rc;
///
/// let ev = Rc::new(Event::new());
/// let e = ev.clone();
/// let waiter = grove::spawn(move || e.wait());
/// grove::sleep(std::time::Duration::from_millis(1)); // the waiter blocks
/// ev.set();
/// assert_eq!(waiter.get(), Ok(Ok(())));
/// ```
#[derive(Default)]
pub struct Event {
    flag: Cell<bool>,
    waiters: WaitList,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.flag.get())
            .finish()
    }
}

impl Event {
    /// A new, clear event.
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag.set(true);
        self.waiters.wake_all();
    }

    /// Clears the flag (waiters already woken stay woken).
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Waits until the flag is set (returns at once if it is). Errors with
    /// [`WaitError::WouldBlockForever`] if nothing could ever set it (gevent's LoopExit), or
    /// [`WaitError::Interrupted`] if the wait was abandoned while unwinding.
    pub fn wait(&self) -> Result<(), WaitError> {
        match self.wait_inner(None) {
            Wake::Ready => Ok(()),
            why => Err(WaitError::from_wake(why)),
        }
    }

    /// Waits at most `timeout`; returns whether the event was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_inner(Some(timeout)) == Wake::Ready
    }

    /// How the wait ended: `Ready` if the flag is set, whatever woke it.
    fn wait_inner(&self, timeout: Option<Duration>) -> Wake {
        if self.flag.get() {
            return Wake::Ready;
        }
        let (why, _timer) = hub::park(Waiting::On(WaitOn::Event), |w| {
            self.waiters.push(w);
            hub::timeout_guard(w, timeout)
        });
        if self.flag.get() {
            Wake::Ready
        } else {
            why
        }
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }

    fn watch(&self, watcher: &Watcher) {
        self.waiters.watch(watcher);
    }
}
