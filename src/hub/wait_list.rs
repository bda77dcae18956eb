//! Who waits for one thing (a greenlet to finish, an event to be set): a FIFO list of parked
//! greenlets' wakers and of watchers (`wait_any`/`iwait`), woken all at once or one at a time.
//!
//! # Rules
//!
//! * Entries are kept in the order they were added; `wake_all` and `wake_one` serve them in
//!   that order (FIFO), so greenlets that wait for the same thing resume in the order they
//!   began waiting.
//! * `wake_one` is a hand-off: it wakes exactly one parked greenlet that is still waiting,
//!   which then owns what was handed over (a permit, an item). Watchers never take anything:
//!   they are notified as they are met.
//! * An entry is *spent* once its greenlet has left that wait (woken by something else, timed
//!   out, killed) or its watcher has been dropped. Spent entries are skipped by `wake_one`
//!   and pruned when the list grows, so a loop of timed-out waits on a thing that never
//!   happens does not grow the list without bound.

use super::event_loop::{Wake, Waker};
use crate::wait::Watcher;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

enum Entry {
    Park(Waker),
    Watch(Watcher),
}

impl Entry {
    fn is_spent(&self) -> bool {
        match self {
            Entry::Park(w) => w.is_stale(),
            Entry::Watch(w) => w.is_dropped(),
        }
    }

    fn fire(self) {
        match self {
            Entry::Park(w) => {
                w.wake(Wake::Ready);
            }
            Entry::Watch(w) => {
                w.notify();
            }
        }
    }
}

/// A FIFO list of waiters. See the module docs for its rules.
#[derive(Default)]
pub(crate) struct WaitList {
    entries: RefCell<VecDeque<Entry>>,
    /// Prune spent entries when the list reaches this length (doubles after each prune).
    prune_at: Cell<usize>,
}

impl WaitList {
    /// An empty list.
    pub(crate) const fn new() -> WaitList {
        WaitList {
            entries: RefCell::new(VecDeque::new()),
            prune_at: Cell::new(0),
        }
    }

    /// Adds a parked greenlet's waker.
    pub(crate) fn push(&self, w: &Waker) {
        self.add(Entry::Park(w.clone()));
    }

    /// Adds a watcher, notified when the thing is ready.
    pub(crate) fn watch(&self, w: &Watcher) {
        self.add(Entry::Watch(w.clone()));
    }

    fn add(&self, e: Entry) {
        let mut v = self.entries.borrow_mut();
        if v.len() >= self.prune_at.get().max(16) {
            v.retain(|e| !e.is_spent());
            self.prune_at.set(v.len() * 2);
        }
        v.push_back(e);
    }

    /// Wakes every waiter, in order. Waiters added while this runs are not woken.
    pub(crate) fn wake_all(&self) {
        let v = std::mem::take(&mut *self.entries.borrow_mut());
        self.prune_at.set(0);
        for e in v {
            e.fire();
        }
    }

    /// Wakes the first *parked* greenlet still waiting, and returns whether there was one:
    /// the hand-off a semaphore's permit or a queue's item travels by. The woken greenlet owns
    /// what is handed over; a greenlet that left its wait (timed out, killed) is skipped, so
    /// nothing is handed to someone who will not take it. Watchers met on the way are
    /// notified and dropped (they only look, they take nothing); if nobody is parked, every
    /// watcher is notified.
    pub(crate) fn wake_one(&self) -> bool {
        loop {
            let e = self.entries.borrow_mut().pop_front();
            match e {
                None => return false,
                Some(Entry::Watch(w)) => {
                    w.notify();
                }
                Some(Entry::Park(w)) => {
                    if w.wake(Wake::Ready) {
                        return true;
                    }
                }
            }
        }
    }
}
