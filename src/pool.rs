//! Groups of greenlets: [`Pool`] runs at most N at once, [`Group`] any number (gevent's
//! `gevent.pool`). Both track their members, join or kill them together, and map a function
//! over many inputs concurrently: [`Pool::map`] (ordered), [`Pool::imap`] (ordered, lazy) and
//! [`Pool::imap_unordered`] (in completion order, with a bound on results computed ahead of
//! the consumer).
//!
//! # Rules
//!
//! * A pool's slots are a [`Semaphore`]: [`Pool::spawn`] takes one (waiting while the pool is
//!   full, FIFO among spawners) and the member gives it back the moment it finishes, however
//!   it finishes (returned, panicked, killed), before its joiners wake. So a spawner waiting
//!   for room is handed the slot of the first member to finish.
//! * A member leaves the group when it finishes or is [`discard`](Pool::discard)ed; `join`
//!   waits until the group is empty.
//! * `imap` and `imap_unordered` are lazy: they start a task only when the consumer asks for
//!   more, and keep at most a bounded number running or finished-but-unconsumed. That bound
//!   is the back-pressure: a slow consumer stops new work from starting.
//!
//! ```
//! use grove::pool::Pool;
//! use std::time::Duration;
//!
//! let pool = Pool::new(3);
//! let squares = pool
//!     .map(
//!         |i: u64| {
//!             grove::sleep(Duration::from_millis(10 - i)); // finish out of order
//!             i * i
//!         },
//!         0..6,
//!     )
//!     .unwrap();
//! assert_eq!(squares, [0, 1, 4, 9, 16, 25]); // in input order
//! ```

use crate::hub::event_loop::{self as hub, Interrupt, Task, WaitOn, Waiting, Wake};
use crate::hub::wait_list::WaitList;
use crate::sync::{Event, Semaphore, WaitError};
use crate::{Greenlet, GreenletError};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

/// Why a pool did not take a greenlet.
#[derive(Debug)]
pub enum PoolError {
    /// The pool stayed full until the timeout (gevent's `PoolFull`), or was full for a
    /// `try_` call.
    Full {
        /// The pool's size.
        size: usize,
    },
    /// The pool is full and nothing could ever free a slot (LoopExit), or the wait was
    /// abandoned while unwinding.
    Wait(WaitError),
    /// No stack could be had for the greenlet.
    Spawn(io::Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Full { size } => {
                write!(f, "grove: the pool is full ({size} greenlets running)")
            }
            PoolError::Wait(e) => write!(f, "grove: waiting for room in the pool failed: {e}"),
            PoolError::Spawn(e) => write!(f, "grove: cannot spawn into the pool: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Full { .. } => None,
            PoolError::Wait(e) => Some(e),
            PoolError::Spawn(e) => Some(e),
        }
    }
}

struct Inner {
    /// `None` for a group (no limit).
    size: Option<usize>,
    slots: Semaphore,
    /// Members by greenlet id.
    members: RefCell<HashMap<u64, Rc<Task>>>,
    /// Woken when the last member leaves.
    empty: WaitList,
}

impl Inner {
    /// Removes a member (it finished or was discarded), giving its slot back.
    fn remove(&self, id: u64) {
        let gone = self.members.borrow_mut().remove(&id);
        if gone.is_some() {
            if self.size.is_some() {
                let _ = self.slots.release();
            }
            if self.members.borrow().is_empty() {
                self.empty.wake_all();
            }
        }
    }
}

/// A group of greenlets of which at most `size` run at once. Clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size)
            .field("members", &self.len())
            .finish()
    }
}

impl Pool {
    /// A pool running at most `size` greenlets at once.
    ///
    /// # Panics
    ///
    /// If `size` is 0 (nothing could ever run).
    pub fn new(size: usize) -> Pool {
        assert!(size > 0, "grove: a pool of size 0 could never run anything");
        Pool::make(Some(size))
    }

    fn make(size: Option<usize>) -> Pool {
        Pool {
            inner: Rc::new(Inner {
                size,
                slots: Semaphore::new(size.unwrap_or(0)),
                members: RefCell::new(HashMap::new()),
                empty: WaitList::new(),
            }),
        }
    }

    /// The limit (`None` for a [`Group`]).
    pub fn size(&self) -> Option<usize> {
        self.inner.size
    }

    /// How many members are running (or not yet finished).
    pub fn len(&self) -> usize {
        self.inner.members.borrow().len()
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many more greenlets could start now without waiting (`usize::MAX` for a group).
    pub fn free_count(&self) -> usize {
        match self.inner.size {
            None => usize::MAX,
            Some(_) => self.inner.slots.available(),
        }
    }

    /// Whether a spawn would wait.
    pub fn is_full(&self) -> bool {
        self.free_count() == 0
    }

    /// Whether `g` is a member.
    pub fn contains<T>(&self, g: &Greenlet<T>) -> bool {
        self.inner.members.borrow().contains_key(&g.id())
    }

    /// Takes a slot, waiting at most `timeout` (forever for `None`; not at all for
    /// `Some(ZERO)`).
    fn take_slot(&self, timeout: Option<Duration>) -> Result<(), PoolError> {
        let Some(size) = self.inner.size else {
            return Ok(());
        };
        let r = match timeout {
            Some(Duration::ZERO) => self
                .inner
                .slots
                .try_acquire()
                .map(|p| p.forget())
                .ok_or(WaitError::TimedOut),
            t => self.inner.slots.acquire_raw(t),
        };
        match r {
            Ok(()) => Ok(()),
            Err(WaitError::TimedOut) => Err(PoolError::Full { size }),
            Err(e) => Err(PoolError::Wait(e)),
        }
    }

    /// Makes `g` a member holding the slot already taken for it.
    fn enrol<T: 'static>(&self, g: &Greenlet<T>) {
        let id = g.id();
        self.inner.members.borrow_mut().insert(id, g.task().clone());
        let inner = Rc::downgrade(&self.inner);
        g.link(move |_| {
            if let Some(inner) = inner.upgrade() {
                inner.remove(id);
            }
        });
    }

    fn spawn_with<T, F>(&self, f: F, timeout: Option<Duration>) -> Result<Greenlet<T>, PoolError>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        self.take_slot(timeout)?;
        match crate::Builder::new().spawn(f) {
            Ok(g) => {
                self.enrol(&g);
                Ok(g)
            }
            Err(e) => {
                if self.inner.size.is_some() {
                    let _ = self.inner.slots.release();
                }
                Err(PoolError::Spawn(e))
            }
        }
    }

    /// Spawns `f` as a member, waiting while the pool is full (a group never waits).
    pub fn spawn<T, F>(&self, f: F) -> Result<Greenlet<T>, PoolError>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        self.spawn_with(f, None)
    }

    /// Spawns `f` if there is room now; else [`PoolError::Full`].
    pub fn try_spawn<T, F>(&self, f: F) -> Result<Greenlet<T>, PoolError>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        self.spawn_with(f, Some(Duration::ZERO))
    }

    /// Spawns `f`, waiting at most `timeout` for room; else [`PoolError::Full`].
    pub fn spawn_timeout<T, F>(&self, f: F, timeout: Duration) -> Result<Greenlet<T>, PoolError>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        self.spawn_with(f, Some(timeout))
    }

    /// Adds a greenlet spawned elsewhere, waiting for room at most `timeout` (forever for
    /// `None`); a greenlet that is a member already, or has finished, is left as it is.
    /// Fails with [`PoolError::Full`] if no room came in time (gevent's `PoolFull`).
    pub fn add<T: 'static>(
        &self,
        g: &Greenlet<T>,
        timeout: Option<Duration>,
    ) -> Result<(), PoolError> {
        if self.contains(g) || g.ready() {
            return Ok(());
        }
        self.take_slot(timeout)?;
        if g.ready() {
            // It finished while we waited for room.
            if self.inner.size.is_some() {
                let _ = self.inner.slots.release();
            }
            return Ok(());
        }
        self.enrol(g);
        Ok(())
    }

    /// Removes `g` from the pool without killing it, giving its slot back.
    pub fn discard<T>(&self, g: &Greenlet<T>) {
        self.inner.remove(g.id());
    }

    /// Waits until a slot is free, at most `timeout`; returns whether one is.
    pub fn wait_available(&self, timeout: Option<Duration>) -> bool {
        if self.inner.size.is_none() || !self.inner.slots.locked() {
            return true;
        }
        crate::wait::wait_any(&[&self.inner.slots], timeout).is_ok()
    }

    /// Waits until every member has finished, at most `timeout`; returns whether they all did.
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(hub::deadline_after);
        while !self.is_empty() {
            let left = deadline.map(|d| d.saturating_duration_since(hub::now()));
            if left == Some(Duration::ZERO) {
                return false;
            }
            let (why, _timer) = hub::park(Waiting::On(WaitOn::PoolJoin), |w| {
                self.inner.empty.push(w);
                hub::timeout_guard(w, left)
            });
            if why != Wake::Ready && !self.is_empty() {
                return false;
            }
        }
        true
    }

    /// Kills every member (all at once), then waits for them to die, at most `timeout`;
    /// returns whether they all did.
    pub fn kill(&self, timeout: Option<Duration>) -> bool {
        let members: Vec<Rc<Task>> = self.inner.members.borrow().values().cloned().collect();
        let mut me = None;
        for t in members {
            if hub::is_current(&t) {
                me = Some(t);
            } else {
                hub::interrupt(&t, Interrupt::Kill);
            }
        }
        if me.is_some() {
            // A member killing its own pool: the others first, then itself.
            std::panic::resume_unwind(Box::new(crate::GreenletExit));
        }
        self.join(timeout)
    }

    /// Runs `f` over every item concurrently (at most `size` at once) and returns the results
    /// in input order; the first error (a panicked or killed task) is returned instead.
    pub fn map<I, R, F>(&self, f: F, items: I) -> Result<Vec<R>, GreenletError>
    where
        I: IntoIterator,
        I::Item: 'static,
        R: 'static,
        F: Fn(I::Item) -> R + 'static,
    {
        self.imap(f, items).collect()
    }

    /// A lazy [`map`](Self::map): results in input order, tasks started as the iterator is
    /// consumed, at most the pool's size running or waiting to be consumed.
    pub fn imap<I, R, F>(&self, f: F, items: I) -> IMap<I::IntoIter, R, F>
    where
        I: IntoIterator,
        I::Item: 'static,
        R: 'static,
        F: Fn(I::Item) -> R + 'static,
    {
        IMap {
            feed: Feed::new(
                self,
                f,
                items.into_iter(),
                self.inner.size.unwrap_or(usize::MAX),
            ),
            inflight: VecDeque::new(),
        }
    }

    /// Like [`imap`](Self::imap), but results come in the order tasks finish. At most
    /// `max_buffered` tasks are running or finished-but-unconsumed at any time (and no more
    /// than the pool runs): a consumer that stops pulling stops new tasks from starting.
    ///
    /// # Panics
    ///
    /// If `max_buffered` is 0.
    pub fn imap_unordered<I, R, F>(
        &self,
        f: F,
        items: I,
        max_buffered: usize,
    ) -> IMapUnordered<I::IntoIter, R, F>
    where
        I: IntoIterator,
        I::Item: 'static,
        R: 'static,
        F: Fn(I::Item) -> R + 'static,
    {
        assert!(
            max_buffered > 0,
            "grove: imap_unordered needs room for at least one result"
        );
        let cap = max_buffered.min(self.inner.size.unwrap_or(usize::MAX));
        IMapUnordered {
            feed: Feed::new(self, f, items.into_iter(), cap),
            running: HashMap::new(),
            finished: Rc::new(Finished::default()),
        }
    }
}

/// A group: like a [`Pool`] without a limit (gevent's `Group`). Dereferences to the
/// unlimited pool it is.
#[derive(Clone, Debug)]
pub struct Group(Pool);

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group(Pool::make(None))
    }
}

impl Deref for Group {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.0
    }
}

/// The input side shared by `imap` and `imap_unordered`: the items not yet started, and how
/// many tasks may be out at once.
struct Feed<It, F> {
    pool: Pool,
    f: Rc<F>,
    items: It,
    cap: usize,
}

impl<It, F> Feed<It, F>
where
    It: Iterator,
    It::Item: 'static,
{
    fn new(pool: &Pool, f: F, items: It, cap: usize) -> Feed<It, F> {
        Feed {
            pool: pool.clone(),
            f: Rc::new(f),
            items,
            cap,
        }
    }

    /// Starts the next task if fewer than `cap` are out (`out`) and an item is left. Waits
    /// for room in the pool only if nothing is out (otherwise there is a task to wait for
    /// instead). `None`: nothing started.
    fn start<R: 'static>(&mut self, out: usize) -> Option<Result<Greenlet<R>, GreenletError>>
    where
        F: Fn(It::Item) -> R + 'static,
    {
        if out >= self.cap || (out > 0 && self.pool.is_full()) {
            return None;
        }
        let item = self.items.next()?;
        let f = self.f.clone();
        let r = self.pool.spawn(move || f(item));
        Some(r.map_err(|e| match e {
            PoolError::Wait(WaitError::WouldBlockForever) => GreenletError::WouldBlockForever,
            PoolError::Wait(_) => GreenletError::Interrupted,
            PoolError::Full { .. } | PoolError::Spawn(_) => GreenletError::SpawnFailed {
                message: e.to_string(),
            },
        }))
    }
}

/// The iterator of [`Pool::imap`].
pub struct IMap<It, R, F> {
    feed: Feed<It, F>,
    inflight: VecDeque<Greenlet<R>>,
}

impl<It, R, F> Iterator for IMap<It, R, F>
where
    It: Iterator,
    It::Item: 'static,
    R: 'static,
    F: Fn(It::Item) -> R + 'static,
{
    type Item = Result<R, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(g) = self.feed.start(self.inflight.len()) {
            match g {
                Ok(g) => self.inflight.push_back(g),
                Err(e) => return Some(Err(e)),
            }
        }
        self.inflight.pop_front().map(Greenlet::get)
    }
}

/// Ids of finished tasks, in the order they finished, and an event set when one is added.
#[derive(Default)]
struct Finished {
    ids: RefCell<VecDeque<u64>>,
    event: Event,
}

/// The iterator of [`Pool::imap_unordered`].
pub struct IMapUnordered<It, R, F> {
    feed: Feed<It, F>,
    running: HashMap<u64, Greenlet<R>>,
    finished: Rc<Finished>,
}

impl<It, R, F> Iterator for IMapUnordered<It, R, F>
where
    It: Iterator,
    It::Item: 'static,
    R: 'static,
    F: Fn(It::Item) -> R + 'static,
{
    type Item = Result<R, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(g) = self.feed.start(self.running.len()) {
            match g {
                Ok(g) => {
                    let done = Rc::downgrade(&self.finished);
                    let id = g.id();
                    g.link(move |_| {
                        if let Some(d) = done.upgrade() {
                            d.ids.borrow_mut().push_back(id);
                            d.event.set();
                        }
                    });
                    self.running.insert(id, g);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        if self.running.is_empty() {
            return None;
        }
        loop {
            let id = self.finished.ids.borrow_mut().pop_front();
            if let Some(id) = id {
                let g = self
                    .running
                    .remove(&id)
                    .expect("a finished task is running");
                return Some(g.get());
            }
            self.finished.event.clear();
            if self.finished.event.wait().is_err() {
                return Some(Err(GreenletError::WouldBlockForever));
            }
        }
    }
}
