//! Queues between greenlets: [`Queue`] (FIFO), [`LifoQueue`] and [`PriorityQueue`], bounded
//! or not, with gevent's `task_done`/`join` and Python 3.13's `shutdown` (gevent.queue).
//!
//! The three share one implementation, [`BaseQueue`], over a [`Discipline`] that decides
//! which item leaves next.
//!
//! # Rules (where items and slots go)
//!
//! ```text
//!   put ──> a getter is parked? ──yes──> handed (owned by that getter, woken now)
//!              │ no
//!              v
//!           room? ──yes──> items ──> get (newcomers take from here)
//!              │ no
//!              v
//!           park as a putter; a get that frees a slot promises it to the first putter
//!           (reserved_space) and wakes it; the putter then pushes its item
//! ```
//!
//! * A getter parks only when `items` is empty; an item put while getters are parked is
//!   *handed* to the longest-waiting one (pushed to `handed`, which woken getters pop in the
//!   order they were woken). So blocked getters receive items in put order and a newcomer's
//!   `try_get` never takes an item meant for a waiter.
//! * A putter parks only when the queue is full (`items.len() + reserved_space >= maxsize`).
//!   Each slot a get frees is promised to the longest-waiting putter, so newcomers cannot
//!   take it either.
//! * A waiter that timed out or was killed is skipped by the hand-off (it left the wait
//!   first), so nothing is handed to it; a getter woken with an item keeps it whatever
//!   arrives before it runs. A put that fails returns its item in the [`PutError`].
//! * `shutdown` wakes every waiter: putters fail with [`QueueError::ShutDown`] (their item
//!   given back), getters fail once the items left are gone, and iteration ends. Items
//!   already in the queue can still be taken.
//! * `task_done`/`join`: every successful put counts one unfinished task; `task_done` marks
//!   one done; `join` waits until none is unfinished.

use super::WaitError;
use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake};
use crate::hub::wait_list::WaitList;
use crate::wait::{Waitable, Watcher};
use std::cell::{Cell, RefCell};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// Which item a queue hands out next.
pub trait Discipline<T>: Default {
    /// Adds an item.
    fn push(&mut self, item: T);
    /// Takes the next item.
    fn pop(&mut self) -> Option<T>;
    /// The next item, not taken.
    fn peek(&self) -> Option<&T>;
    /// How many items it holds.
    fn len(&self) -> usize;
    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First in, first out.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Discipline<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn peek(&self) -> Option<&T> {
        self.0.front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
#[derive(Debug)]
pub struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Discipline<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The greatest item first (wrap items in [`std::cmp::Reverse`] for the least).
#[derive(Debug)]
pub struct Priority<T: Ord>(BinaryHeap<T>);

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T: Ord> Discipline<T> for Priority<T> {
    fn push(&mut self, item: T) {
        self.0.push(item)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn peek(&self) -> Option<&T> {
        self.0.peek()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A FIFO queue (gevent's `Queue`).
///
/// ```
/// use grove::sync::Queue;
/// use std::rc::Rc;
///
/// let q = Rc::new(Queue::bounded(2));
/// let producer = {
///     let q = q.clone();
///     grove::spawn(move || {
///         for i in 0..5 {
///             q.put(i).unwrap(); // waits while two items are queued
///         }
///         q.shutdown(); // consumers finish what is left, then stop
///     })
/// };
/// let got: Vec<i32> = q.iter().collect();
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// producer.join().unwrap();
/// ```
pub type Queue<T> = BaseQueue<T, Fifo<T>>;
/// A last-in, first-out queue (gevent's `LifoQueue`).
pub type LifoQueue<T> = BaseQueue<T, Lifo<T>>;
/// A queue that hands out its greatest item first (gevent's `PriorityQueue`).
pub type PriorityQueue<T> = BaseQueue<T, Priority<T>>;

/// Why a queue operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// Nothing to get (a non-blocking get).
    Empty,
    /// No room (a non-blocking put on a full bounded queue).
    Full,
    /// The timeout passed first.
    TimedOut,
    /// The queue was shut down (and, for a get, holds nothing more).
    ShutDown,
    /// Nothing left could ever end the wait (gevent's `LoopExit`).
    WouldBlockForever,
    /// A kill or timeout arrived while the waiter was unwinding; the wait was abandoned.
    Interrupted,
    /// `task_done` was called more times than items were put.
    NoUnfinishedTask,
}

impl From<WaitError> for QueueError {
    fn from(e: WaitError) -> QueueError {
        match e {
            WaitError::TimedOut => QueueError::TimedOut,
            WaitError::WouldBlockForever => QueueError::WouldBlockForever,
            WaitError::Interrupted => QueueError::Interrupted,
        }
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            QueueError::Empty => "grove: the queue is empty",
            QueueError::Full => "grove: the queue is full",
            QueueError::TimedOut => "grove: the queue operation timed out",
            QueueError::ShutDown => "grove: the queue has been shut down",
            QueueError::WouldBlockForever => {
                "grove: this queue operation would block forever: nothing could ever complete it (LoopExit)"
            }
            QueueError::Interrupted => {
                "grove: the queue operation was interrupted while the greenlet was unwinding"
            }
            QueueError::NoUnfinishedTask => {
                "grove: task_done called more times than items were put"
            }
        };
        f.write_str(s)
    }
}

impl std::error::Error for QueueError {}

impl From<QueueError> for std::io::Error {
    fn from(e: QueueError) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match e {
            QueueError::Empty | QueueError::Full | QueueError::WouldBlockForever => K::WouldBlock,
            QueueError::TimedOut => K::TimedOut,
            QueueError::ShutDown => K::BrokenPipe,
            QueueError::Interrupted => K::Interrupted,
            QueueError::NoUnfinishedTask => K::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

/// A put that did not happen: why, and the item, given back.
pub struct PutError<T> {
    reason: QueueError,
    item: T,
}

impl<T> PutError<T> {
    pub(crate) fn new(reason: QueueError, item: T) -> PutError<T> {
        PutError { reason, item }
    }

    /// Why the put failed.
    pub fn reason(&self) -> QueueError {
        self.reason
    }

    /// The item that was not put.
    pub fn into_item(self) -> T {
        self.item
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (the item was not put)", self.reason)
    }
}

impl<T> std::error::Error for PutError<T> {}

/// The queue behind [`Queue`], [`LifoQueue`] and [`PriorityQueue`].
///
/// Blocked getters and putters are served in the order they began waiting: an item put while
/// getters wait is handed to the longest-waiting one, a slot freed while putters wait is
/// promised to the longest-waiting one, so newcomers never barge ahead. A getter that times
/// out or is killed is skipped, so no item is lost; a failed put returns its item. After
/// [`shutdown`](Self::shutdown), puts fail and getters take what is left, then fail.
pub struct BaseQueue<T, D: Discipline<T>> {
    items: RefCell<D>,
    /// Items put while getters were parked, owned by the getters woken for them, in order.
    handed: RefCell<VecDeque<T>>,
    maxsize: Option<usize>,
    /// Slots promised to woken putters that have not pushed yet.
    reserved_space: Cell<usize>,
    getters: WaitList,
    putters: WaitList,
    peekers: WaitList,
    unfinished: Cell<usize>,
    joiners: WaitList,
    shut: Cell<bool>,
    _items: PhantomData<T>,
}

impl<T, D: Discipline<T>> fmt::Debug for BaseQueue<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("maxsize", &self.maxsize)
            .field("unfinished", &self.unfinished.get())
            .field("shut_down", &self.shut.get())
            .finish()
    }
}

impl<T, D: Discipline<T>> Default for BaseQueue<T, D> {
    fn default() -> Self {
        Self::make(None)
    }
}

impl<T, D: Discipline<T>> BaseQueue<T, D> {
    /// An unbounded queue: `put` never waits.
    pub fn new() -> Self {
        Self::make(None)
    }

    /// A queue holding at most `maxsize` items: `put` waits while it is full.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0: a queue that can hold nothing is a rendezvous, [`Channel`](super::Channel).
    pub fn bounded(maxsize: usize) -> Self {
        assert!(
            maxsize > 0,
            "grove: a queue bounded to 0 items could never hold one; use grove::sync::Channel for a rendezvous"
        );
        Self::make(Some(maxsize))
    }

    fn make(maxsize: Option<usize>) -> Self {
        BaseQueue {
            items: RefCell::new(D::default()),
            handed: RefCell::new(VecDeque::new()),
            maxsize,
            reserved_space: Cell::new(0),
            getters: WaitList::new(),
            putters: WaitList::new(),
            peekers: WaitList::new(),
            unfinished: Cell::new(0),
            joiners: WaitList::new(),
            shut: Cell::new(false),
            _items: PhantomData,
        }
    }

    /// Items waiting to be got.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a put would wait (always false when unbounded).
    pub fn is_full(&self) -> bool {
        !self.has_room()
    }

    /// The bound, if any.
    pub fn maxsize(&self) -> Option<usize> {
        self.maxsize
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut.get()
    }

    fn has_room(&self) -> bool {
        match self.maxsize {
            None => true,
            Some(m) => self.len() + self.reserved_space.get() < m,
        }
    }

    /// Puts `item`, waiting while the queue is full. Fails if the queue is (or gets) shut
    /// down, handing the item back.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, true, None)
    }

    /// Puts `item` if there is room now; else [`QueueError::Full`].
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, false, None)
    }

    /// Puts `item`, waiting at most `timeout` for room; else [`QueueError::TimedOut`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_inner(item, true, Some(timeout))
    }

    fn put_inner(
        &self,
        item: T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), PutError<T>> {
        if self.shut.get() {
            return Err(PutError::new(QueueError::ShutDown, item));
        }
        if self.has_room() {
            self.push_now(item);
            return Ok(());
        }
        if !block {
            return Err(PutError::new(QueueError::Full, item));
        }
        let (why, _timer) = hub::park(Waiting::On(WaitOn::QueuePut), |w| {
            self.putters.push(w);
            hub::timeout_guard(w, timeout)
        });
        match why {
            // Woken by a shutdown (which voids every promised slot), or by a get that
            // promised us the slot it freed.
            Wake::Ready if self.shut.get() => Err(PutError::new(QueueError::ShutDown, item)),
            Wake::Ready => {
                self.reserved_space.set(self.reserved_space.get() - 1);
                self.push_now(item);
                Ok(())
            }
            other => Err(PutError::new(WaitError::from_wake(other).into(), item)),
        }
    }

    /// Adds an item there is room for: handed to the longest-waiting getter, else queued.
    fn push_now(&self, item: T) {
        self.unfinished.set(self.unfinished.get() + 1);
        if self.getters.wake_one() {
            self.handed.borrow_mut().push_back(item);
        } else {
            self.items.borrow_mut().push(item);
            self.peekers.wake_all();
        }
    }

    /// Takes an item, waiting until there is one. After a shutdown, takes what is left, then
    /// fails with [`QueueError::ShutDown`].
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_inner(true, None)
    }

    /// Takes an item if one is waiting; else [`QueueError::Empty`] (or `ShutDown`).
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.get_inner(false, None)
    }

    /// Takes an item, waiting at most `timeout`; else [`QueueError::TimedOut`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_inner(true, Some(timeout))
    }

    fn get_inner(&self, block: bool, timeout: Option<Duration>) -> Result<T, QueueError> {
        if let Some(item) = self.take_now() {
            return Ok(item);
        }
        if self.shut.get() {
            return Err(QueueError::ShutDown);
        }
        if !block {
            return Err(QueueError::Empty);
        }
        let (why, _timer) = hub::park(Waiting::On(WaitOn::QueueGet), |w| {
            self.getters.push(w);
            hub::timeout_guard(w, timeout)
        });
        match why {
            Wake::Ready => {
                // Handed an item by a put, or woken by a shutdown (then nothing was handed).
                let handed = self.handed.borrow_mut().pop_front();
                match handed {
                    Some(item) => Ok(item),
                    None => self.take_now().ok_or(QueueError::ShutDown),
                }
            }
            other => Err(WaitError::from_wake(other).into()),
        }
    }

    /// Takes a queued item, promising the slot it frees to the longest-waiting putter.
    fn take_now(&self) -> Option<T> {
        let item = self.items.borrow_mut().pop()?;
        if self.maxsize.is_some() && self.putters.wake_one() {
            self.reserved_space.set(self.reserved_space.get() + 1);
        }
        Some(item)
    }

    /// The item a get would take, without taking it.
    pub fn peek(&self) -> Option<T>
    where
        T: Clone,
    {
        self.items.borrow().peek().cloned()
    }

    /// Waits until an item is queued and returns a copy of it, without taking it (gevent's
    /// blocking `peek`), at most `timeout` if given.
    pub fn peek_wait(&self, timeout: Option<Duration>) -> Result<T, QueueError>
    where
        T: Clone,
    {
        let deadline = timeout.map(hub::deadline_after);
        loop {
            if let Some(item) = self.peek() {
                return Ok(item);
            }
            if self.shut.get() {
                return Err(QueueError::ShutDown);
            }
            let left = deadline.map(|d| d.saturating_duration_since(hub::now()));
            if left == Some(Duration::ZERO) {
                return Err(QueueError::TimedOut);
            }
            let (why, _timer) = hub::park(Waiting::On(WaitOn::QueuePeek), |w| {
                self.peekers.push(w);
                hub::timeout_guard(w, left)
            });
            if why != Wake::Ready {
                return Err(WaitError::from_wake(why).into());
            }
        }
    }

    /// Marks one put item as processed (for [`join`](Self::join)).
    pub fn task_done(&self) -> Result<(), QueueError> {
        let n = self.unfinished.get();
        if n == 0 {
            return Err(QueueError::NoUnfinishedTask);
        }
        self.unfinished.set(n - 1);
        if n == 1 {
            self.joiners.wake_all();
        }
        Ok(())
    }

    /// Items put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished.get()
    }

    /// Waits until every item put has been marked done with [`task_done`](Self::task_done).
    pub fn join(&self) -> Result<(), WaitError> {
        self.join_inner(None)
    }

    /// [`join`](Self::join) for at most `timeout`; returns whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_inner(Some(timeout)).is_ok()
    }

    fn join_inner(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let deadline = timeout.map(hub::deadline_after);
        while self.unfinished.get() > 0 {
            let left = deadline.map(|d| d.saturating_duration_since(hub::now()));
            if left == Some(Duration::ZERO) {
                return Err(WaitError::TimedOut);
            }
            let (why, _timer) = hub::park(Waiting::On(WaitOn::QueueJoin), |w| {
                self.joiners.push(w);
                hub::timeout_guard(w, left)
            });
            if why != Wake::Ready {
                return Err(WaitError::from_wake(why));
            }
        }
        Ok(())
    }

    /// Shuts the queue down: puts fail from now on, every waiting putter gets
    /// [`QueueError::ShutDown`] with its item back, and getters take what is left, then get
    /// `ShutDown` (so iteration ends). Calling it again does nothing more.
    pub fn shutdown(&self) {
        if self.shut.replace(true) {
            return;
        }
        self.reserved_space.set(0);
        self.putters.wake_all();
        self.getters.wake_all();
        self.peekers.wake_all();
    }

    /// Iterates over items as they are got, waiting for each; ends at shutdown (once the
    /// queue is drained) or if waiting would block forever.
    pub fn iter(&self) -> QueueIter<'_, T, D> {
        QueueIter { q: self }
    }
}

impl<T, D: Discipline<T>> Waitable for BaseQueue<T, D> {
    /// Ready when a get would not wait: an item is queued, or the queue is shut down.
    fn is_ready(&self) -> bool {
        !self.is_empty() || self.shut.get()
    }

    fn watch(&self, watcher: &Watcher) {
        self.getters.watch(watcher);
    }
}

/// The iterator of [`BaseQueue::iter`].
pub struct QueueIter<'a, T, D: Discipline<T>> {
    q: &'a BaseQueue<T, D>,
}

impl<T, D: Discipline<T>> Iterator for QueueIter<'_, T, D> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.q.get().ok()
    }
}

impl<'a, T, D: Discipline<T>> IntoIterator for &'a BaseQueue<T, D> {
    type Item = T;
    type IntoIter = QueueIter<'a, T, D>;

    fn into_iter(self) -> QueueIter<'a, T, D> {
        self.iter()
    }
}
