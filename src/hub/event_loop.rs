//! The hub: one event loop per thread, running in a greenlet of its own.
//!
//! Every blocking operation in grove ends in `park`: the running greenlet records how it
//! can be woken (a `Waker` in a timer, an I/O wait list, a join list...) and switches to the
//! hub. The hub runs the loop until something wakes that greenlet, then switches back.
//!
//! # The loop, one turn at a time
//!
//! ```text
//!   ┌─> 1. callbacks sent from other threads (HubHandle)
//!   │   2. run the greenlets that were ready at the start of the turn (FIFO, bounded)
//!   │   3. fire expired timers (in deadline order, FIFO among equals)
//!   │   4. poll I/O: without blocking if anything is ready, else until the next timer
//!   └── 5. nothing could ever wake anyone? wake the main greenlet with LoopExit
//! ```
//!
//! # Phases (the rules, where they are enforced)
//!
//! * A greenlet is *parked* from the moment it calls `park` until a waker for its current
//!   park generation fires. Each park bumps the generation, so a waker left over from an earlier
//!   wait (a timer that lost the race against I/O) finds a different generation and does
//!   nothing: no greenlet is ever woken twice for one wait.
//! * Only the hub switches into greenlets, and greenlets switch only to the hub. The hub's own
//!   data lives in `RefCell`s that are never borrowed across a switch.
//! * The hub never knows about sockets: `net/` registers interest through [`wait_fd`] and
//!   parks; the hub wakes it.

use super::run_queue::RunQueue;
use super::timers::{Deadline, Epoch, TimerId, TimerQueue};
use crate::greenlet::Greenlet as Raw;
use crate::sys::{Backend, Events, Interest, Notifier, Poller};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a parked greenlet runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Whatever it waited for happened (or it was simply rescheduled).
    Ready,
    /// Its timeout expired first.
    Timeout,
    /// Nothing left in the loop could ever wake it (gevent's `LoopExit`).
    LoopExit,
}

/// The hub's record of one greenlet it schedules (spawned ones and the thread's main one).
pub(crate) struct Task {
    pub(crate) raw: Raw,
    /// Bumped by every park; a waker only acts on the generation it was made for.
    generation: Cell<u64>,
    /// Whether the task is parked (waiting for a waker of `generation`).
    parked: Cell<bool>,
    wake: Cell<Wake>,
}

impl Task {
    pub(crate) fn new(raw: Raw) -> Rc<Task> {
        Rc::new(Task {
            raw,
            generation: Cell::new(0),
            parked: Cell::new(false),
            wake: Cell::new(Wake::Ready),
        })
    }
}

/// How to wake one particular wait of one greenlet. Cheap to clone; waking a stale one (the
/// greenlet has moved on) does nothing.
#[derive(Clone)]
pub(crate) struct Waker {
    task: Rc<Task>,
    generation: u64,
}

impl Waker {
    /// Wakes the greenlet with `why`, if it is still in the wait this waker was made for.
    /// Returns whether it did.
    pub(crate) fn wake(&self, why: Wake) -> bool {
        let t = &self.task;
        if !t.parked.get() || t.generation.get() != self.generation {
            return false;
        }
        t.parked.set(false);
        t.wake.set(why);
        with_hub(|h| h.ready.borrow_mut().push(self.task.clone()));
        true
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Waker(greenlet {}, wait {})",
            self.task.raw.id(),
            self.generation
        )
    }
}

/// Who waits on one file descriptor, and for what.
#[derive(Default)]
struct FdWaiters {
    readers: Vec<Waker>,
    writers: Vec<Waker>,
    registered: Option<(bool, bool)>,
}

/// Work sent from other threads: callbacks to run on this hub's thread.
pub(crate) struct Remote {
    queue: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    pending: AtomicBool,
    notifier: Notifier,
}

impl Remote {
    /// Queues `f` to run on the hub's thread and wakes the hub. Never loses a wake-up: the
    /// flag is set before the notification, and the hub clears it before draining.
    pub(crate) fn send(&self, f: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(f);
        self.pending.store(true, Ordering::Release);
        self.notifier.notify()
    }
}

pub(crate) struct Hub {
    pub(crate) raw: Raw,
    pub(crate) main: Rc<Task>,
    ready: RefCell<RunQueue<Rc<Task>>>,
    timers: RefCell<TimerQueue<Waker>>,
    pub(crate) epoch: Epoch,
    poller: RefCell<Poller>,
    io: RefCell<HashMap<RawFd, FdWaiters>>,
    pub(crate) remote: Arc<Remote>,
    /// The task the hub switched into last: the running one, while the hub is not running.
    current: RefCell<Option<Rc<Task>>>,
}

/// This thread's hub. At thread exit it is leaked, not dropped: dropping would kill (switch
/// into and unwind) every parked greenlet while the thread's other thread-locals are being
/// torn down. (A proper hub shutdown is future work.)
struct HubSlot(RefCell<Option<Rc<Hub>>>);

impl Drop for HubSlot {
    fn drop(&mut self) {
        std::mem::forget(self.0.take());
    }
}

thread_local! {
    static HUB: HubSlot = const { HubSlot(RefCell::new(None)) };
    static BACKEND: Cell<Option<Backend>> = const { Cell::new(None) };
}

/// Chooses the poller backend for the hub this thread will create (before its first use).
/// Errors if this thread's hub already exists with another backend.
pub fn use_backend(backend: Backend) -> io::Result<()> {
    if let Some(h) = HUB.with(|h| h.0.borrow().clone()) {
        if h.poller.borrow().backend() != backend {
            return Err(io::Error::other(format!(
                "grove: this thread's hub already runs on {:?}; choose the backend before the first grove call",
                h.poller.borrow().backend()
            )));
        }
        return Ok(());
    }
    BACKEND.with(|b| b.set(Some(backend)));
    Ok(())
}

/// The poller backend of this thread's hub (creating the hub if needed).
pub fn backend() -> Backend {
    with_hub(|h| h.poller.borrow().backend())
}

pub(crate) fn with_hub<R>(f: impl FnOnce(&Rc<Hub>) -> R) -> R {
    let hub = HUB.with(|h| h.0.borrow().clone());
    match hub {
        Some(h) => f(&h),
        None => f(&create_hub()),
    }
}

#[cold]
fn create_hub() -> Rc<Hub> {
    let backend = match BACKEND.with(|b| b.get()) {
        Some(b) => b,
        None => Backend::from_env().unwrap_or_else(|e| panic!("{e}")),
    };
    let poller = Poller::new(backend)
        .unwrap_or_else(|e| panic!("grove: cannot create the {backend:?} poller: {e}"));
    let remote = Arc::new(Remote {
        queue: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        notifier: poller.notifier(),
    });
    let main_raw = Raw::current();
    let raw = crate::greenlet::Builder::new()
        .name("hub")
        .parent(&main_raw)
        .build(|_| {
            run_loop();
            Box::new(())
        })
        .unwrap_or_else(|e| panic!("grove: cannot create the hub greenlet: {e}"));
    let main = Task::new(main_raw);
    let hub = Rc::new(Hub {
        raw,
        main: main.clone(),
        ready: RefCell::new(RunQueue::default()),
        timers: RefCell::new(TimerQueue::default()),
        epoch: Epoch::new(),
        poller: RefCell::new(poller),
        io: RefCell::new(HashMap::new()),
        remote,
        current: RefCell::new(Some(main)),
    });
    HUB.with(|h| *h.0.borrow_mut() = Some(hub.clone()));
    hub
}

/// Makes `task` ready to run on a later loop turn (used by spawn: a new greenlet does not run
/// at once).
pub(crate) fn schedule(task: Rc<Task>) {
    with_hub(|h| h.ready.borrow_mut().push(task));
}

/// Parks the running greenlet until one of the wakers made by `prepare` fires, and says why.
/// `prepare` receives the waker for this wait and registers it wherever the wake-up will come
/// from; it runs before the greenlet leaves, so no wake-up can be lost.
pub(crate) fn park(prepare: impl FnOnce(&Waker)) -> Wake {
    let (hub, me) = with_hub(|h| (h.clone(), h.current.borrow().clone().expect("current task")));
    let gen = me.generation.get() + 1;
    me.generation.set(gen);
    me.parked.set(true);
    let waker = Waker {
        task: me.clone(),
        generation: gen,
    };
    prepare(&waker);
    drop(waker);
    if me.parked.get() {
        // Not woken during `prepare`: hand control to the hub until a waker fires.
        let _ = hub.raw.switch(Box::new(()));
    }
    me.parked.set(false);
    me.wake.get()
}

/// Yields: lets everything that is ready now run, then comes back (`sleep(ZERO)`). The
/// running greenlet goes to the back of the run queue and the hub takes over.
pub fn yield_now() {
    let (hub, me) = with_hub(|h| (h.clone(), h.current.borrow().clone().expect("current task")));
    hub.ready.borrow_mut().push(me);
    let _ = hub.raw.switch(Box::new(()));
}

/// Suspends the running greenlet for `d`; other greenlets run meanwhile. A zero duration
/// yields ([`yield_now`]). `Duration::MAX` and deadlines past the clock's range are clamped.
/// Returns an error only if nothing could ever end the sleep... which a timer always can, so
/// `sleep` cannot fail: it returns nothing.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return yield_now();
    }
    let id = Cell::new(None);
    park(|w| {
        let deadline = with_hub(|h| Deadline::after(h.epoch.now(), d));
        id.set(Some(add_timer(deadline, w.clone())));
    });
    if let Some(id) = id.get() {
        cancel_timer(id);
    }
}

/// Registers a timer that wakes `w` with [`Wake::Timeout`] at `deadline`.
pub(crate) fn add_timer(deadline: Deadline, w: Waker) -> TimerId {
    with_hub(|h| h.timers.borrow_mut().insert(deadline, w))
}

/// Cancels a timer (no-op if it fired).
pub(crate) fn cancel_timer(id: TimerId) {
    with_hub(|h| drop(h.timers.borrow_mut().cancel(id)));
}

/// Waits until `fd` is readable (`write == false`) or writable, or until `timeout` passes.
/// Errors: `TimedOut` on timeout; an error saying the wait would block forever if nothing else
/// in the loop could ever run (impossible while the fd is registered, kept for symmetry).
pub fn wait_fd(fd: RawFd, write: bool, timeout: Option<Duration>) -> io::Result<()> {
    let timer = Cell::new(None);
    let err = RefCell::new(None);
    let why = park(|w| {
        let r = with_hub(|h| h.watch(fd, write, w.clone()));
        if let Err(e) = r {
            *err.borrow_mut() = Some(e);
            w.wake(Wake::Ready);
            return;
        }
        if let Some(d) = timeout {
            let deadline = with_hub(|h| Deadline::after(h.epoch.now(), d));
            timer.set(Some(add_timer(deadline, w.clone())));
        }
    });
    if let Some(id) = timer.get() {
        cancel_timer(id);
    }
    with_hub(|h| h.unwatch(fd, write));
    if let Some(e) = err.into_inner() {
        return Err(e);
    }
    match why {
        Wake::Ready => Ok(()),
        Wake::Timeout => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("grove: fd {fd} not ready within {timeout:?}"),
        )),
        Wake::LoopExit => Err(loop_exit_error()),
    }
}

/// The error every blocking call returns when nothing could ever wake it.
pub(crate) fn loop_exit_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "grove: this wait would block forever: no greenlet is ready, no timer is pending and no I/O is awaited (LoopExit)",
    )
}

impl Hub {
    fn watch(&self, fd: RawFd, write: bool, w: Waker) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        let entry = io.entry(fd).or_default();
        if write {
            entry.writers.push(w);
        } else {
            entry.readers.push(w);
        }
        let want = (!entry.readers.is_empty(), !entry.writers.is_empty());
        let interest = Interest {
            readable: want.0,
            writable: want.1,
        };
        let r = match entry.registered {
            None => self.poller.borrow_mut().add(fd, fd as usize, interest),
            Some(have) if have != want => {
                self.poller.borrow_mut().modify(fd, fd as usize, interest)
            }
            Some(_) => Ok(()),
        };
        match r {
            Ok(()) => {
                entry.registered = Some(want);
                Ok(())
            }
            Err(e) => {
                if write {
                    entry.writers.pop();
                } else {
                    entry.readers.pop();
                }
                if entry.readers.is_empty()
                    && entry.writers.is_empty()
                    && entry.registered.is_none()
                {
                    io.remove(&fd);
                }
                Err(e)
            }
        }
    }

    /// Drops the waiters of `fd` that are spent (woken or stale) and shrinks the registered
    /// interest to what is still awaited.
    fn unwatch(&self, fd: RawFd, _write: bool) {
        let mut io = self.io.borrow_mut();
        let Some(entry) = io.get_mut(&fd) else { return };
        entry
            .readers
            .retain(|w| w.task.parked.get() && w.task.generation.get() == w.generation);
        entry
            .writers
            .retain(|w| w.task.parked.get() && w.task.generation.get() == w.generation);
        let want = (!entry.readers.is_empty(), !entry.writers.is_empty());
        if want == (false, false) {
            if entry.registered.is_some() {
                let _ = self.poller.borrow_mut().delete(fd);
            }
            io.remove(&fd);
        } else if entry.registered != Some(want) {
            let interest = Interest {
                readable: want.0,
                writable: want.1,
            };
            if self
                .poller
                .borrow_mut()
                .modify(fd, fd as usize, interest)
                .is_ok()
            {
                entry.registered = Some(want);
            }
        }
    }

    /// Whether anything in the loop could still wake a parked greenlet.
    fn has_sources(&self) -> bool {
        !self.ready.borrow().is_empty()
            || !self.timers.borrow().is_empty()
            || !self.io.borrow().is_empty()
            || self.remote.pending.load(Ordering::Acquire)
            || Arc::strong_count(&self.remote) > 1
    }
}

/// How many greenlet runs the hub allows between two polls of I/O while greenlets are ready:
/// the bound on how long a busy loop of yields can keep I/O waiting.
const POLL_EVERY: usize = 64;

/// The body of the hub greenlet. Never returns.
fn run_loop() {
    let hub = with_hub(Rc::clone);
    let mut events = Events::with_capacity(256);
    // Greenlets run since the last poll. While greenlets are ready the hub skips the (system
    // call) poll until this reaches POLL_EVERY: a loop of yields still lets I/O in at least
    // that often, without paying a syscall per turn.
    let mut since_poll = 0usize;
    loop {
        // 1. Callbacks from other threads (a plain load first: the common answer is no).
        if hub.remote.pending.load(Ordering::Acquire)
            && hub.remote.pending.swap(false, Ordering::AcqRel)
        {
            let batch =
                std::mem::take(&mut *hub.remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
            for f in batch {
                f();
            }
        }

        // 2. Run what was ready at the start of this turn.
        let n = hub.ready.borrow().start_turn();
        for _ in 0..n {
            let Some(task) = hub.ready.borrow_mut().pop() else {
                break;
            };
            if task.raw.is_dead() {
                continue;
            }
            *hub.current.borrow_mut() = Some(task.clone());
            // The task runs until it parks or finishes; either way it comes back here. A
            // spawned greenlet catches its own panics, so the result carries nothing.
            let _ = task.raw.switch(Box::new(()));
            *hub.current.borrow_mut() = None;
        }
        since_poll += n;

        // 3. Timers (the clock is read only when some are pending: it costs tens of ns).
        let now = if hub.timers.borrow().is_empty() {
            Deadline::ZERO
        } else {
            hub.epoch.now()
        };
        loop {
            let fired = hub.timers.borrow_mut().pop_expired(now);
            match fired {
                Some((_, w)) => {
                    w.wake(Wake::Timeout);
                }
                None => break,
            }
        }

        // 4. I/O: block only if nothing is ready, and only until the next timer; with greenlets
        //    ready, poll (without blocking) once every POLL_EVERY runs.
        let timeout =
            if !hub.ready.borrow().is_empty() || hub.remote.pending.load(Ordering::Acquire) {
                if since_poll < POLL_EVERY {
                    continue;
                }
                Some(Duration::ZERO)
            } else if !hub.has_sources() {
                // 5. Nothing can ever wake anyone: the main greenlet learns it.
                if hub.main.parked.get() {
                    hub.main.parked.set(false);
                    hub.main.wake.set(Wake::LoopExit);
                    hub.ready.borrow_mut().push(hub.main.clone());
                    continue;
                }
                // Unreachable in practice: the hub runs only while some greenlet waits, and the
                // main greenlet is the last to wait. Resume it rather than spin.
                hub.ready.borrow_mut().push(hub.main.clone());
                continue;
            } else {
                hub.timers
                    .borrow()
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(hub.epoch.now()))
            };
        since_poll = 0;
        let polled = hub.poller.borrow_mut().wait(&mut events, timeout);
        if let Err(e) = polled {
            // A poller failure is not recoverable by the loop: report it and keep turning, so
            // that timers still fire (a persistent failure shows up once per turn).
            eprintln!("grove: hub poll failed: {e}");
        }
        for ev in events.iter() {
            let fd = ev.token as RawFd;
            let wakers: Vec<Waker> = {
                let io = hub.io.borrow();
                let Some(entry) = io.get(&fd) else { continue };
                let mut v = Vec::new();
                // The poller folds hang-ups and errors into the direction they affect.
                if ev.readable {
                    v.extend(entry.readers.iter().cloned());
                }
                if ev.writable {
                    v.extend(entry.writers.iter().cloned());
                }
                v
            };
            for w in wakers {
                w.wake(Wake::Ready);
            }
        }
    }
}

/// A `Send` handle to a hub: lets any thread run a callback on the hub's thread. The hub
/// wakes at once (eventfd, pipe or `EVFILT_USER`); no wake-up is lost. While a handle exists
/// the hub treats it as a possible source of work (it will not report LoopExit).
#[derive(Clone)]
pub struct HubHandle {
    remote: Arc<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubHandle")
    }
}

impl HubHandle {
    /// Runs `f` on the hub's thread, in the hub, at its next loop turn. `f` must not block
    /// (spawn a greenlet from it for anything that waits).
    pub fn schedule(&self, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.remote.send(Box::new(f))
    }
}

/// A handle to this thread's hub, for other threads.
pub fn handle() -> HubHandle {
    with_hub(|h| HubHandle {
        remote: h.remote.clone(),
    })
}

/// Waits until `fd` is readable, or `timeout` passes (`ErrorKind::TimedOut`). Other greenlets
/// run meanwhile. For any file descriptor: a socket, a pipe, a foreign library's connection.
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, false, timeout)
}

/// Waits until `fd` is writable, or `timeout` passes (`ErrorKind::TimedOut`).
pub fn wait_writable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, true, timeout)
}
