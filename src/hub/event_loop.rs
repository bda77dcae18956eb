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
//!   │   3. read the clock (if any timer is pending), arm the sleeps and timeouts added
//!   │      during the turn with it, fire expired timers (deadline order, FIFO among equals)
//!   │   4. poll I/O: without blocking if anything is ready (at most every 64 runs, and
//!   │      only if a greenlet waits for an fd), else until the next timer
//!   │      (about to wait a millisecond or more? first unmap a batch of retired stacks)
//!   └── 5. nothing could ever wake anyone? wake the main greenlet with LoopExit
//! ```
//!
//! While four or more greenlets are ready, step 2 prefetches what the next ones will touch
//! first (their tasks, the tops of their stacks: see `prefetch_ahead`): in a burst their
//! memory has gone cold, and FIFO makes everyone queued behind wait for it.
//!
//! A greenlet that finishes hands its stack back to the pool at once, in step 2, while its
//! memory is still in cache (its task, which the handles keep, no longer holds it). Stacks
//! beyond the pool's limit are not unmapped there but retired, and the loop unmaps them, in
//! address order and a batch at a time, only when it has nothing else to do for a while
//! (see [`crate::stack::pool`]): a burst of finishing greenlets costs no system call.
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

use super::clock::{Clock, RealClock};
use super::fds::FdTable;
use super::monitor::Probe;
use super::prefetch;
use super::remote::{Remote, Targets};
use super::run_queue::RunQueue;
use super::timers::{Deadline, TimerId, TimerQueue};
use crate::greenlet::{Greenlet as Raw, GreenletExit};
use crate::spawn::{JoinState, OutcomeKind};
use crate::sys::{Backend, Events, Poller};
use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::panic::{self, Location};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
    /// A kill or a scoped timeout interrupted the wait. `park` raises it (unwinds) unless the
    /// greenlet is already unwinding, in which case the caller sees this value.
    Interrupted,
}

/// Something raised *into* a greenlet at its blocking point: a kill or a fired
/// [`timeout`](crate::timeout) scope.
///
/// # Rules
///
/// * At most one interrupt is pending per greenlet. When a second arrives before the first
///   was raised, the stronger one stays: a kill beats a timeout, and of two timeouts the outer
///   one wins, because unwinding to the outer scope also leaves the inner one. So an outer
///   timeout is never lost. (Scope ids are handed out in increasing order and scopes nest,
///   so of two scopes open in one greenlet the outer one has the smaller id.)
/// * A parked greenlet is woken at once and the interrupt is raised where it parked. A
///   greenlet that is ready (already woken) keeps the interrupt pending, so that what woke it
///   (an item handed over, say) is not lost; it is raised at its next blocking call or yield.
/// * A greenlet that has not started is started at once (a delayed start is brought
///   forward) and ends without running its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// Unwind with [`GreenletExit`].
    Kill,
    /// Unwind to the `timeout` scope with this id (ids start at 1 and only grow).
    Elapsed { id: u64 },
}

impl Interrupt {
    fn merge(pending: Option<Interrupt>, new: Interrupt) -> Interrupt {
        match (pending, new) {
            (Some(Interrupt::Kill), _) | (_, Interrupt::Kill) => Interrupt::Kill,
            (Some(Interrupt::Elapsed { id: a }), Interrupt::Elapsed { id: b }) => {
                Interrupt::Elapsed { id: a.min(b) }
            }
            (None, b) => b,
        }
    }

    /// The interrupt as one word, for the task: 0 for none, `u64::MAX` for a kill, else the
    /// scope id (never 0, and never `u64::MAX` in practice: that many scopes cannot be opened).
    fn pack(i: Option<Interrupt>) -> u64 {
        match i {
            None => 0,
            Some(Interrupt::Kill) => u64::MAX,
            Some(Interrupt::Elapsed { id }) => id,
        }
    }

    fn unpack(word: u64) -> Option<Interrupt> {
        match word {
            0 => None,
            u64::MAX => Some(Interrupt::Kill),
            id => Some(Interrupt::Elapsed { id }),
        }
    }
}

/// The unwinding payload of a fired `timeout` scope; caught by the scope with this id.
pub(crate) struct ElapsedSignal {
    pub(crate) id: u64,
}

/// Unwinds the running greenlet with `i`'s payload (no panic hook runs: this is control flow).
fn raise(i: Interrupt) -> ! {
    match i {
        Interrupt::Kill => panic::resume_unwind(Box::new(GreenletExit)),
        Interrupt::Elapsed { id } => panic::resume_unwind(Box::new(ElapsedSignal { id })),
    }
}

/// What a parked greenlet waits for, for introspection ([`crate::debug::run_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Not parked.
    Nothing,
    /// `sleep` (until when is its timer's to say: see [`wait_deadlines`]).
    Sleep,
    /// Joining the greenlet with this id.
    Join(u64),
    /// A file descriptor's readiness.
    Fd { fd: RawFd, write: bool },
    /// Anything else.
    On(WaitOn),
}

/// The other things a greenlet can wait on (one word in the task, see [`Waiting`]): add a
/// variant for each new kind of wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum WaitOn {
    /// [`Event::wait`](crate::Event::wait).
    Event,
    /// [`wait_any`](crate::wait_any) and [`iwait`](crate::iwait).
    Any,
    /// `Semaphore::acquire`.
    Semaphore,
    /// `Queue::put`.
    QueuePut,
    /// `Queue::get`.
    QueueGet,
    /// `Queue::peek`.
    QueuePeek,
    /// `Queue::join`.
    QueueJoin,
    /// `Channel::put`.
    ChannelPut,
    /// `Channel::get`.
    ChannelGet,
    /// `AsyncResult::wait`.
    AsyncResult,
    /// `mpsc::Receiver::recv`.
    Mpsc,
    /// `Pool::join`.
    PoolJoin,
}

impl WaitOn {
    const ALL: [WaitOn; 12] = [
        WaitOn::Event,
        WaitOn::Any,
        WaitOn::Semaphore,
        WaitOn::QueuePut,
        WaitOn::QueueGet,
        WaitOn::QueuePeek,
        WaitOn::QueueJoin,
        WaitOn::ChannelPut,
        WaitOn::ChannelGet,
        WaitOn::AsyncResult,
        WaitOn::Mpsc,
        WaitOn::PoolJoin,
    ];

    /// How `run_info` describes it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            WaitOn::Event => "Event::wait",
            WaitOn::Any => "wait_any/iwait",
            WaitOn::Semaphore => "Semaphore::acquire",
            WaitOn::QueuePut => "Queue::put",
            WaitOn::QueueGet => "Queue::get",
            WaitOn::QueuePeek => "Queue::peek",
            WaitOn::QueueJoin => "Queue::join",
            WaitOn::ChannelPut => "Channel::put",
            WaitOn::ChannelGet => "Channel::get",
            WaitOn::AsyncResult => "AsyncResult::wait",
            WaitOn::Mpsc => "mpsc::Receiver::recv",
            WaitOn::PoolJoin => "Pool::join",
        }
    }
}

impl Waiting {
    /// A kind byte and a data word (the task stores them apart, to stay small).
    fn pack(self) -> (u8, u64) {
        match self {
            Waiting::Nothing => (0, 0),
            Waiting::Sleep => (1, 0),
            Waiting::Join(id) => (2, id),
            Waiting::Fd { fd, write } => (3, u64::from(fd as u32) | (u64::from(write) << 32)),
            Waiting::On(what) => (4, what as u64),
        }
    }

    fn unpack(kind: u8, data: u64) -> Waiting {
        match kind {
            1 => Waiting::Sleep,
            2 => Waiting::Join(data),
            3 => Waiting::Fd {
                fd: data as u32 as RawFd,
                write: data >> 32 != 0,
            },
            4 => Waiting::On(WaitOn::ALL[data as usize]),
            _ => Waiting::Nothing,
        }
    }
}

/// Who a spawned greenlet is, for introspection and reports.
pub(crate) struct TaskInfo {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    /// The id of the greenlet that spawned it.
    pub(crate) spawner: u64,
}

/// The hub's record of one greenlet it schedules (spawned ones and the thread's main one).
///
/// # States
///
/// ```text
///   not started --(hub runs it)--> running <--(hub switches in)-- ready
///                                     |   \                        ^
///                                  (park)  (returns, panics,        | (a waker fires,
///                                     v     is killed)              |  an interrupt)
///                                  parked      -> finished          |
///                                     `-----------------------------'
/// ```
///
/// `parked` is true exactly while the greenlet waits for a waker of `generation`; `started`
/// and `finished` bracket its body; the pending interrupt is the kill or timeout to raise (see
/// [`Interrupt`] for when it is raised).
///
/// # Layout
///
/// A task is one allocation of 128 bytes (an `Rc` of 120: a test checks it), one per greenlet
/// for as long as a handle or a waker holds it, so it is kept small, and laid out (`repr(C)`)
/// for the cache:
///
/// * the first 64 bytes (with the `Rc` counts) hold what every start, switch, park and wake
///   touches: the greenlet, the park generation, what it waits for, the pending interrupt,
///   the flags, the id;
/// * the next 56 hold what the end of a greenlet and its handle touch: the outcome, where
///   and by whom it was spawned, its registry slot;
/// * what few greenlets need (a name, joiners that had to wait, links, a `spawn_later`
///   timer) lives in a [`TaskExtra`] allocated on first use.
#[repr(C)]
pub(crate) struct Task {
    /// The greenlet. The hub takes it out while it runs the greenlet, and drops it once the
    /// greenlet has finished: its stack goes back to the pool at once, while its memory is
    /// still in cache, not when the last handle to the task goes.
    raw: Cell<Option<Raw>>,
    /// Bumped by every park; a waker only acts on the generation it was made for.
    generation: Cell<u64>,
    /// What it waits for: the data word of [`Waiting::pack`] (the kind is `waiting_kind`).
    waiting_data: Cell<u64>,
    /// The pending interrupt, [`Interrupt::pack`]ed.
    interrupt: Cell<u64>,
    /// The greenlet's id (kept here: it outlives the greenlet's stack, where the raw one lives).
    id: u64,
    /// Whether the task is parked (waiting for a waker of `generation`).
    parked: Cell<bool>,
    wake: Cell<Wake>,
    pub(crate) started: Cell<bool>,
    pub(crate) finished: Cell<bool>,
    waiting_kind: Cell<u8>,
    // ---- 64 bytes (with the counts) ----
    /// Its slot in the hub's registry (for `run_info`), or `u32::MAX`.
    slot: Cell<u32>,
    /// Which outcome `outcome` holds (see `crate::spawn`).
    pub(crate) outcome_kind: Cell<OutcomeKind>,
    /// Where it was spawned (`None` for a thread's main greenlet).
    spawned_at: Option<&'static Location<'static>>,
    /// The id of the greenlet that spawned it.
    spawner: u64,
    /// What a spawned greenlet's handle reads once it has finished: its value or its error,
    /// type-erased (see `crate::spawn`). In the task's own allocation, so that a spawn
    /// allocates once.
    pub(crate) outcome: RefCell<Option<Box<dyn Any>>>,
    /// What few greenlets need, allocated on first use.
    extra: OnceCell<Box<TaskExtra>>,
}

/// The rarely used part of a [`Task`].
#[derive(Default)]
pub(crate) struct TaskExtra {
    pub(crate) name: Option<Arc<str>>,
    /// The timer that will start a `spawn_later` greenlet.
    pub(crate) start_timer: Cell<Option<TimerId>>,
    /// Who waits for a spawned greenlet to finish, and its links.
    pub(crate) join: JoinState,
}

impl Task {
    pub(crate) fn new(raw: Raw, info: Option<TaskInfo>) -> Rc<Task> {
        let (name, spawned_at, spawner) = match info {
            Some(i) => (i.name, Some(i.spawned_at), i.spawner),
            None => (None, None, 0),
        };
        let extra = OnceCell::new();
        if name.is_some() {
            let _ = extra.set(Box::new(TaskExtra {
                name,
                ..TaskExtra::default()
            }));
        }
        Rc::new(Task {
            id: raw.id(),
            raw: Cell::new(Some(raw)),
            generation: Cell::new(0),
            waiting_data: Cell::new(0),
            interrupt: Cell::new(0),
            parked: Cell::new(false),
            wake: Cell::new(Wake::Ready),
            started: Cell::new(false),
            finished: Cell::new(false),
            waiting_kind: Cell::new(0),
            slot: Cell::new(u32::MAX),
            outcome_kind: Cell::new(OutcomeKind::Pending),
            spawned_at,
            spawner,
            outcome: RefCell::new(None),
            extra,
        })
    }

    /// Prefetches the task's first cache line, and the next (an allocation need not start a
    /// line): what the hub and a switch touch first.
    #[inline(always)]
    fn prefetch_hot(&self) {
        let p = self as *const Task as usize;
        prefetch::line(p - 16);
        prefetch::line(p + 47);
    }

    /// Where the greenlet's header is (0 if the task has none now): see
    /// [`Raw::header_addr`].
    #[inline(always)]
    fn header_hint(&self) -> usize {
        let raw = self.raw.take();
        let h = raw.as_ref().map_or(0, Raw::header_addr);
        self.raw.set(raw);
        h
    }

    /// Whether it is parked.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.get()
    }

    /// The greenlet's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether it is a spawned greenlet (not a thread's main one).
    pub(crate) fn is_spawned(&self) -> bool {
        self.spawned_at.is_some()
    }

    /// Where it was spawned (`None` for a thread's main greenlet).
    pub(crate) fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.spawned_at
    }

    /// The greenlet that spawned it (`None` for a thread's main greenlet).
    pub(crate) fn spawner(&self) -> Option<u64> {
        self.spawned_at.map(|_| self.spawner)
    }

    /// Its name, if it was given one.
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.extra.get().and_then(|x| x.name.as_ref())
    }

    /// The rarely used part, allocated now if it was not yet.
    pub(crate) fn extra(&self) -> &TaskExtra {
        self.extra.get_or_init(Box::default)
    }

    /// The rarely used part, if it was ever needed.
    pub(crate) fn extra_if_any(&self) -> Option<&TaskExtra> {
        self.extra.get().map(|x| &**x)
    }

    /// What it waits for.
    pub(crate) fn waiting(&self) -> Waiting {
        Waiting::unpack(self.waiting_kind.get(), self.waiting_data.get())
    }

    #[inline]
    fn set_waiting(&self, w: Waiting) {
        let (kind, data) = w.pack();
        self.waiting_kind.set(kind);
        self.waiting_data.set(data);
    }

    /// The pending interrupt.
    #[inline]
    pub(crate) fn interrupt(&self) -> Option<Interrupt> {
        Interrupt::unpack(self.interrupt.get())
    }

    #[inline]
    pub(crate) fn set_interrupt(&self, i: Option<Interrupt>) {
        self.interrupt.set(Interrupt::pack(i));
    }

    /// Takes the pending interrupt out.
    #[inline]
    fn take_interrupt(&self) -> Option<Interrupt> {
        Interrupt::unpack(self.interrupt.replace(0))
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
        if self.is_stale() {
            return false;
        }
        t.parked.set(false);
        t.wake.set(why);
        with_hub(|h| h.ready.borrow_mut().push(self.task.clone()));
        true
    }

    /// Ends the wait before it began, with `why`: for `park`'s `prepare`, when it finds
    /// there is nothing to wait for. The greenlet is running (it is in `prepare`), so it is
    /// not scheduled, and `park` returns at once. (Waking it with [`wake`](Self::wake)
    /// instead would leave a stale entry in the run queue, which would later resume the
    /// greenlet in the middle of some other wait.)
    pub(crate) fn abort(&self, why: Wake) {
        if !self.is_stale() {
            self.task.parked.set(false);
            self.task.wake.set(why);
        }
    }

    /// Whether the greenlet has left the wait this waker was made for.
    pub(crate) fn is_stale(&self) -> bool {
        !self.task.parked.get() || self.task.generation.get() != self.generation
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Waker(greenlet {}, wait {})",
            self.task.id(),
            self.generation
        )
    }
}

/// What a timer does when it fires: one of [`TimerDo`], for one task, kept in 16 bytes (a
/// burst of sleeps stores one per sleeper: see [`crate::hub::timers`] on memory).
pub(crate) struct TimerAction {
    task: Rc<Task>,
    /// 0: [`TimerDo::Start`]; [`TimerAction::INTERRUPT`] set: [`TimerDo::Interrupt`], the
    /// rest the [`Interrupt::pack`]ed interrupt; else [`TimerDo::Wake`] for this park
    /// generation (never 0, and below 2^63: a park bumps it by one).
    word: u64,
}

/// What a [`TimerAction`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerDo {
    /// Ends the wait of this park generation with [`Wake::Timeout`] (a [`Waker`]).
    Wake(u64),
    /// Raises an interrupt (a `timeout` scope).
    Interrupt(Interrupt),
    /// Starts a `spawn_later` greenlet.
    Start,
}

impl TimerAction {
    const INTERRUPT: u64 = 1 << 63;

    /// Wakes `w` with [`Wake::Timeout`].
    pub(crate) fn wake(w: &Waker) -> TimerAction {
        debug_assert!(w.generation != 0 && w.generation < Self::INTERRUPT);
        TimerAction {
            task: w.task.clone(),
            word: w.generation,
        }
    }

    /// Raises `i` in `task`.
    pub(crate) fn interrupt(task: Rc<Task>, i: Interrupt) -> TimerAction {
        TimerAction {
            task,
            word: Self::INTERRUPT | Interrupt::pack(Some(i)),
        }
    }

    /// Starts `task` (a `spawn_later` greenlet).
    pub(crate) fn start(task: Rc<Task>) -> TimerAction {
        TimerAction { task, word: 0 }
    }

    /// The task this action ends the current wait of with a timeout, if it does that (a
    /// `sleep`'s or a timed wait's timer, while that wait lasts).
    fn wakes_now(&self) -> Option<&Rc<Task>> {
        match self.what() {
            TimerDo::Wake(generation)
                if self.task.parked.get() && self.task.generation.get() == generation =>
            {
                Some(&self.task)
            }
            _ => None,
        }
    }

    fn what(&self) -> TimerDo {
        match self.word {
            0 => TimerDo::Start,
            w if w & Self::INTERRUPT != 0 => TimerDo::Interrupt(
                Interrupt::unpack(if w == u64::MAX {
                    w
                } else {
                    w & !Self::INTERRUPT
                })
                .expect("a packed interrupt"),
            ),
            generation => TimerDo::Wake(generation),
        }
    }

    fn fire(self) {
        match self.what() {
            TimerDo::Wake(generation) => {
                Waker {
                    task: self.task,
                    generation,
                }
                .wake(Wake::Timeout);
            }
            TimerDo::Interrupt(i) => interrupt(&self.task, i),
            TimerDo::Start => {
                if let Some(x) = self.task.extra_if_any() {
                    x.start_timer.set(None);
                }
                schedule(self.task);
            }
        }
    }
}

/// Slots of spawned tasks (weak: the registry keeps nothing alive) and the free slots.
type Registry = (Vec<Option<Weak<Task>>>, Vec<u32>);

pub(crate) struct Hub {
    pub(crate) raw: Raw,
    pub(crate) main: Rc<Task>,
    ready: RefCell<RunQueue<Rc<Task>>>,
    timers: RefCell<TimerQueue<TimerAction>>,
    pub(crate) clock: Clock,
    /// `None` only after the thread's exit closed it.
    poller: RefCell<Option<Poller>>,
    io: RefCell<FdTable>,
    pub(crate) remote: Arc<Remote>,
    /// What other threads may wake, by token (see [`super::remote`]).
    pub(crate) targets: Targets,
    /// The task the hub switched into last: the running one, while the hub is not running.
    current: RefCell<Option<Rc<Task>>>,
    /// Every spawned greenlet not yet finished, for `run_info`: slots and free slots.
    registry: RefCell<Registry>,
    /// The blocking monitor's view of this hub, when it is on.
    probe: Option<Arc<Probe>>,
    /// I/O operations the running greenlet completed without waiting since the hub last
    /// switched into it (see [`note_immediate_io`]).
    io_streak: Cell<u32>,
}

/// This thread's hub, torn down at thread exit:
///
/// * its kernel objects (the poller, the wake-up object other threads' handles use) are
///   always closed, so a thread that used grove leaks no file descriptor, and handles held
///   elsewhere get an error instead of queuing work nobody will run;
/// * if no spawned greenlet is still alive, the hub greenlet is unwound and everything is
///   freed;
/// * otherwise the rest is leaked, not dropped: dropping would kill (switch into and unwind)
///   parked greenlets while the thread's other thread-locals are being torn down.
struct HubSlot(RefCell<Option<Rc<Hub>>>);

impl Drop for HubSlot {
    fn drop(&mut self) {
        // From here on `with_hub` takes the slow path, which finds the slot empty or gone.
        let _ = HUB_PTR.try_with(|p| p.set(std::ptr::null()));
        let Some(h) = self.0.take() else { return };
        if let Some(p) = &h.probe {
            p.stop();
        }
        drop(h.poller.borrow_mut().take());
        h.remote.close();
        let alive = h
            .registry
            .borrow()
            .0
            .iter()
            .any(|w| w.as_ref().is_some_and(|w| w.strong_count() > 0));
        if alive || !h.ready.borrow().is_empty() {
            std::mem::forget(h);
            return;
        }
        // Nothing left to run: unwind the hub greenlet (its loop holds a reference to the
        // hub) and free it all. The hub greenlet returns here, to the thread's main greenlet.
        if h.raw.state() == crate::greenlet::State::Suspended {
            let _ = h.raw.throw();
        }
        *h.timers.borrow_mut() = TimerQueue::default();
        h.io.borrow_mut().clear();
        h.targets.clear();
        drop(h);
    }
}

thread_local! {
    static HUB: HubSlot = const { HubSlot(RefCell::new(None)) };
    /// The hub `HUB` holds, as a plain pointer for [`with_hub`]'s hot path (a `const` cell
    /// without destructor: reading it costs one load). Null before the hub is created and
    /// from the moment `HubSlot::drop` begins.
    static HUB_PTR: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
    static CONFIG: RefCell<Option<super::Builder>> = const { RefCell::new(None) };
}

/// Chooses the poller backend for the hub this thread will create (before its first use).
/// Errors if this thread's hub already exists with another backend. (A shortcut for
/// [`Builder::backend`](super::Builder::backend).)
pub fn use_backend(backend: Backend) -> io::Result<()> {
    if let Some(h) = HUB.with(|h| h.0.borrow().clone()) {
        if h.backend() != backend {
            return Err(io::Error::other(format!(
                "grove: this thread's hub already runs on {:?}; choose the backend before the first grove call",
                h.backend()
            )));
        }
        return Ok(());
    }
    CONFIG.with(|c| {
        let mut c = c.borrow_mut();
        let b = c.take().unwrap_or_default();
        *c = Some(b.backend(backend));
    });
    Ok(())
}

/// Installs `config` for the hub this thread will create. Errors if the hub exists already.
pub(crate) fn configure(config: super::Builder) -> io::Result<()> {
    if HUB.with(|h| h.0.borrow().is_some()) {
        return Err(io::Error::other(
            "grove: this thread's hub already exists; configure it before the first grove call",
        ));
    }
    CONFIG.with(|c| *c.borrow_mut() = Some(config));
    Ok(())
}

/// The poller backend of this thread's hub (creating the hub if needed).
pub fn backend() -> Backend {
    with_hub(|h| h.backend())
}

/// Runs `f` on this thread's hub, creating the hub on first use.
///
/// The hot path reads one thread-local pointer ([`HUB_PTR`]): no destructor-registration
/// check, no borrow flag, no reference count.
#[inline]
pub(crate) fn with_hub<R>(f: impl FnOnce(&Hub) -> R) -> R {
    let p = HUB_PTR.with(Cell::get);
    if p.is_null() {
        return with_hub_slow(f);
    }
    // SAFETY: HUB_PTR is non-null only while `HUB` holds the `Rc<Hub>` it points into (set
    // in `create_hub` after the slot was filled, cleared by `HubSlot::drop` before the slot
    // lets go of it), and the slot is emptied nowhere else. The hub is freed only by that
    // drop, at thread exit, which runs on the main greenlet and cannot begin while `f` runs.
    // No `f` given here switches greenlets (the callers switch, and drop what they take out,
    // after `with_hub` returns); and were a destructor run by one to switch, the spawned
    // greenlet suspended in it would count as alive, and `HubSlot::drop` leaks a hub with
    // live greenlets rather than free it. So the reference is valid for the whole call. The
    // hub is only ever shared (`&Hub`): its mutable parts are behind `RefCell`s and `Cell`s.
    f(unsafe { &*p })
}

/// `with_hub` before the hub exists (creates it), or during thread exit (after `HubSlot`
/// let go of it: `HUB` then panics as any destroyed thread-local does).
#[cold]
#[inline(never)]
fn with_hub_slow<R>(f: impl FnOnce(&Hub) -> R) -> R {
    let hub = HUB.with(|h| h.0.borrow().clone());
    match hub {
        Some(h) => f(&h),
        None => f(&create_hub()),
    }
}

/// This thread's hub as an `Rc` (creating it if needed), for holders that outlive a call or
/// a switch.
#[inline]
fn hub_rc() -> Rc<Hub> {
    let p = HUB_PTR.with(Cell::get);
    if p.is_null() {
        return hub_rc_slow();
    }
    // SAFETY: `p` is `Rc::as_ptr` of the `Rc<Hub>` that `HUB` holds (see `with_hub`), so the
    // allocation is alive with a strong count of at least one: taking one more reference to
    // it, owned by the `Rc` made here, is what `Rc::clone` does.
    unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

#[cold]
#[inline(never)]
fn hub_rc_slow() -> Rc<Hub> {
    match HUB.with(|h| h.0.borrow().clone()) {
        Some(h) => h,
        None => create_hub(),
    }
}

/// This thread's hub if it exists and is reachable (never creates one; usable from panic
/// hooks and destructors).
pub(crate) fn try_hub() -> Option<Rc<Hub>> {
    HUB.try_with(|h| h.0.try_borrow().ok().and_then(|h| h.clone()))
        .ok()
        .flatten()
}

#[cold]
fn create_hub() -> Rc<Hub> {
    let config = CONFIG.with(|c| c.borrow_mut().take()).unwrap_or_default();
    let backend = match config.backend {
        Some(b) => b,
        None => Backend::from_env().unwrap_or_else(|e| panic!("{e}")),
    };
    let poller = Poller::new(backend)
        .unwrap_or_else(|e| panic!("grove: cannot create the {backend:?} poller: {e}"));
    let remote = Arc::new(Remote::new(poller.notifier()));
    // Stacks of finished greenlets beyond the pool's limit are unmapped by this hub's loop
    // when it idles, never in the middle of a burst.
    crate::stack::pool::defer_unmapping();
    let main_raw = Raw::current();
    let raw = crate::greenlet::Builder::new()
        .name("hub")
        .parent(&main_raw)
        .build(|_| {
            run_loop();
            Box::new(())
        })
        .unwrap_or_else(|e| panic!("grove: cannot create the hub greenlet: {e}"));
    let main = Task::new(main_raw, None);
    main.started.set(true);
    let clock = if config.paused_clock {
        Clock::Paused(Cell::new(Deadline::ZERO))
    } else {
        Clock::Real(RealClock::new())
    };
    let monitor = config.monitor.clone().or_else(super::monitor::from_env);
    let probe = monitor.map(|m| super::monitor::start(m, main.id()));
    let hub = Rc::new(Hub {
        raw,
        main: main.clone(),
        ready: RefCell::new(RunQueue::default()),
        timers: RefCell::new(TimerQueue::default()),
        clock,
        poller: RefCell::new(Some(poller)),
        io: RefCell::new(FdTable::default()),
        remote,
        targets: Targets::default(),
        current: RefCell::new(Some(main)),
        registry: RefCell::new((Vec::new(), Vec::new())),
        probe,
        io_streak: Cell::new(0),
    });
    HUB.with(|h| *h.0.borrow_mut() = Some(hub.clone()));
    HUB_PTR.with(|p| p.set(Rc::as_ptr(&hub)));
    hub
}

/// Makes `task` ready to run on a later loop turn (used by spawn: a new greenlet does not run
/// at once).
#[inline]
pub(crate) fn schedule(task: Rc<Task>) {
    with_hub(|h| h.ready.borrow_mut().push(task));
}

/// Adds a spawned task to the registry `run_info` reads.
pub(crate) fn register(task: &Rc<Task>) {
    with_hub(|h| {
        let mut r = h.registry.borrow_mut();
        let w = Some(Rc::downgrade(task));
        let slot = match r.1.pop() {
            Some(i) => {
                r.0[i as usize] = w;
                i
            }
            None => {
                r.0.push(w);
                // A new high of live greenlets: room for as many timers, faulted in now
                // rather than in the middle of a burst of first sleeps (see `prepare`).
                h.timers.borrow_mut().prepare(r.0.len());
                u32::try_from(r.0.len() - 1).expect("grove: more than 2^32 - 1 live greenlets")
            }
        };
        task.slot.set(slot);
    });
}

/// Removes a finished task from the registry.
pub(crate) fn unregister(task: &Task) {
    let slot = task.slot.replace(u32::MAX);
    if slot == u32::MAX {
        return;
    }
    with_hub(|h| {
        let mut r = h.registry.borrow_mut();
        r.0[slot as usize] = None;
        r.1.push(slot);
    });
}

/// The registered tasks (spawned and not finished), in slot order, plus the main task.
pub(crate) fn tasks() -> Vec<Rc<Task>> {
    with_hub(|h| {
        let mut v = vec![h.main.clone()];
        v.extend(
            h.registry
                .borrow()
                .0
                .iter()
                .filter_map(|w| w.as_ref().and_then(Weak::upgrade)),
        );
        v
    })
}

/// The running task (the main one outside any spawned greenlet).
#[inline]
pub(crate) fn current_task() -> Rc<Task> {
    with_hub(|h| h.current.borrow().clone().unwrap_or_else(|| h.main.clone()))
}

/// Whether `task` is the one running now.
#[inline]
pub(crate) fn is_current(task: &Task) -> bool {
    with_hub(|h| {
        h.current
            .borrow()
            .as_ref()
            .is_some_and(|c| std::ptr::eq(&**c, task))
    })
}

/// When each parked greenlet's timeout timer (a `sleep`'s, a timed wait's) is due, by
/// greenlet id: for introspection. A timer not armed yet (see [`add_timer_after`]) is taken
/// as due its delay after `now`.
pub(crate) fn wait_deadlines(now: Deadline) -> std::collections::HashMap<u64, Deadline> {
    with_hub(|h| {
        (h.timers.borrow().pending())
            .filter_map(|(due, action)| {
                let task = action.wakes_now()?;
                let at = due.unwrap_or_else(|delay| Deadline::after(now, delay));
                Some((task.id(), at))
            })
            .collect()
    })
}

/// The hub's clock, now.
pub(crate) fn now() -> Deadline {
    with_hub(|h| h.clock.now())
}

/// The deadline `d` from now (saturating).
#[inline]
pub(crate) fn deadline_after(d: Duration) -> Deadline {
    Deadline::after(now(), d)
}

/// Raises `what` in `task` (see [`Interrupt`] for the rules). For the running greenlet
/// itself the caller raises at once instead.
pub(crate) fn interrupt(task: &Rc<Task>, what: Interrupt) {
    if task.finished.get() {
        return;
    }
    task.set_interrupt(Some(Interrupt::merge(task.interrupt(), what)));
    if task.parked.get() {
        task.parked.set(false);
        task.wake.set(Wake::Interrupted);
        schedule(task.clone());
    } else if !task.started.get() {
        if let Some(id) = task.extra_if_any().and_then(|x| x.start_timer.take()) {
            cancel_timer(id);
            schedule(task.clone());
        }
    }
}

/// Raises the running greenlet's pending interrupt, if any (and if it is not unwinding
/// already: a second unwind would abort the process).
#[inline]
pub(crate) fn check_interrupt(me: &Task) {
    if me.interrupt.get() != 0 && !std::thread::panicking() {
        if let Some(i) = me.take_interrupt() {
            raise(i);
        }
    }
}

/// Parks the running greenlet until one of the wakers made by `prepare` fires, and says why.
/// `prepare` receives the waker for this wait and registers it wherever the wake-up will come
/// from; it runs before the greenlet leaves, so no wake-up can be lost. If `prepare` finds
/// there is nothing to wait for, it calls [`Waker::abort`] and `park` returns at once. What it returns (a
/// timer to cancel, say) is handed back with the reason, or dropped before an interrupt
/// unwinds the caller: put cleanup in its `Drop`.
///
/// A pending interrupt is raised before parking; an interrupt that arrives while parked is
/// raised here after waking.
///
/// Always inlined, as are [`wait_fd_owned`] and [`switch_to_hub`]: a parked greenlet's frames
/// are memory of its own stack that every wait and wake-up touches, and that the other
/// greenlets' turns push out of the cache meanwhile. A socket read that waits used to stack
/// five frames between the reader's call and the switch, 680 bytes (11 cache lines); merged
/// into the read's own frame, 344 bytes.
#[inline(always)]
pub(crate) fn park<G>(waiting: Waiting, prepare: impl FnOnce(&Waker) -> G) -> (Wake, G) {
    let me = current_spawned_task();
    check_interrupt(&me);
    let gen = me.generation.get() + 1;
    me.generation.set(gen);
    me.parked.set(true);
    me.set_waiting(waiting);
    let waker = Waker {
        task: me.clone(),
        generation: gen,
    };
    let guard = prepare(&waker);
    drop(waker);
    if me.parked.get() {
        // Not woken during `prepare`: hand control to the hub until a waker fires.
        switch_to_hub();
    }
    me.parked.set(false);
    me.set_waiting(Waiting::Nothing);
    let why = me.wake.get();
    if why == Wake::Interrupted && !std::thread::panicking() {
        if let Some(i) = me.take_interrupt() {
            drop(guard);
            raise(i);
        }
    }
    (why, guard)
}

/// Yields: lets everything that is ready now run, then comes back (`sleep(ZERO)`). The
/// running greenlet goes to the back of the run queue and the hub takes over. A pending kill
/// or timeout is raised on the way back.
pub fn yield_now() {
    let me = with_hub(|h| {
        let me = h.current.borrow().clone().expect("current task");
        h.ready.borrow_mut().push(me.clone());
        me
    });
    switch_to_hub();
    check_interrupt(&me);
}

/// The running task, which the hub switched into.
#[inline]
fn current_spawned_task() -> Rc<Task> {
    with_hub(|h| h.current.borrow().clone().expect("current task"))
}

/// Hands control to the hub greenlet; returns when the hub switches back.
#[inline(always)]
fn switch_to_hub() {
    // Holding a reference count of our own, not a borrow: the hub stays alive while other
    // greenlets run, whatever happens meanwhile.
    let hub = hub_rc();
    discard(hub.raw.switch(Box::new(())));
}

/// Drops what a switch returned. Within the hub every switch hands over `Box::new(())`, and a
/// spawned greenlet catches its own panics, so there is nothing in it; an explicit match keeps
/// this inline on the hot paths (the generic drop glue is an out-of-line call).
#[inline(always)]
fn discard(r: Result<crate::greenlet::Value, crate::greenlet::SwitchError>) {
    match r {
        Ok(v) => drop(v),
        Err(e) => drop(e),
    }
}

/// Cancels a timer when dropped (the guard `park` drops before an interrupt unwinds).
pub(crate) struct TimerGuard(pub(crate) Option<TimerId>);

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            cancel_timer(id);
        }
    }
}

/// A timer that wakes `w` with [`Wake::Timeout`] after `timeout` (none for `None`), cancelled
/// when the guard drops. It counts from the hub's next clock read (see [`add_timer_after`]).
#[inline]
pub(crate) fn timeout_guard(w: &Waker, timeout: Option<Duration>) -> TimerGuard {
    TimerGuard(timeout.map(|d| add_timer_after(d, TimerAction::wake(w))))
}

/// Suspends the running greenlet for at least `d`; other greenlets run meanwhile. A zero
/// duration yields ([`yield_now`]). `Duration::MAX` and deadlines past the clock's range are
/// clamped.
///
/// The time counts from the hub's next clock read, at the end of the turn this call is in,
/// never from earlier: a sleep never ends early, and it ends late by at most what the rest of
/// the turn took (the hub could not have woken it sooner). So a sleep costs no clock read of
/// its own.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return yield_now();
    }
    park(Waiting::Sleep, |w| timeout_guard(w, Some(d)));
}

/// Registers a timer that runs `action` at `deadline`.
#[inline]
pub(crate) fn add_timer(deadline: Deadline, action: TimerAction) -> TimerId {
    with_hub(|h| h.timers.borrow_mut().insert(deadline, action))
}

/// Registers a timer that runs `action` `delay` after the hub's next clock read, which comes
/// at the end of the current turn (step 3 of the loop): later than this call, so the timer
/// is due no earlier than `delay` from now, and without a clock read per timer. A clock read
/// is tens of nanoseconds, a good part of what a greenlet's first sleep costs; a burst of
/// sleeps in one turn (a hundred thousand greenlets starting) now pays one per turn.
#[inline]
pub(crate) fn add_timer_after(delay: Duration, action: TimerAction) -> TimerId {
    with_hub(|h| h.timers.borrow_mut().insert_unarmed(delay, action))
}

/// Cancels a timer (no-op if it fired).
#[inline]
pub(crate) fn cancel_timer(id: TimerId) {
    // The action is dropped after the timers' borrow ends: dropping it may drop a task.
    let action = with_hub(|h| h.timers.borrow_mut().cancel(id));
    drop(action);
}

/// Unregisters a finished fd wait (the guard `wait_fd` parks with).
struct FdGuard {
    fd: RawFd,
    _timer: TimerGuard,
}

impl Drop for FdGuard {
    fn drop(&mut self) {
        with_hub(|h| h.io.borrow_mut().unwatch(&mut h.poller(), self.fd));
    }
}

/// Waits until `fd` is readable (`write == false`) or writable, or until `timeout` passes.
/// Errors: `TimedOut` on timeout; `Interrupted` if a kill or timeout arrived while this
/// greenlet was already unwinding; the poller's error if the fd cannot be watched.
pub fn wait_fd(fd: RawFd, write: bool, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd_owned(fd, write, timeout.map(deadline_after), 0).map_err(|e| {
        if e.kind() == io::ErrorKind::TimedOut {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("grove: fd {fd} not ready within {timeout:?}"),
            )
        } else {
            e
        }
    })
}

/// [`wait_fd`] until `deadline`, for a descriptor owned by grove (`owner` is its non-zero
/// id), whose poller registration outlives the wait (see [`super::fds`]); 0 for a foreign
/// descriptor. Always inlined: see [`park`].
#[inline(always)]
pub(crate) fn wait_fd_owned(
    fd: RawFd,
    write: bool,
    deadline: Option<Deadline>,
    owner: u64,
) -> io::Result<()> {
    let (why, guard) = park(Waiting::Fd { fd, write }, |w| {
        match with_hub(|h| {
            h.io.borrow_mut()
                .watch(&mut h.poller(), fd, write, w.clone(), owner)
        }) {
            Err(e) => {
                w.abort(Wake::Ready);
                Err(e)
            }
            Ok(()) => Ok(FdGuard {
                fd,
                _timer: TimerGuard(deadline.map(|d| add_timer(d, TimerAction::wake(w)))),
            }),
        }
    });
    drop(guard?);
    match why {
        Wake::Ready => Ok(()),
        Wake::Timeout => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("grove: fd {fd} not ready in time"),
        )),
        Wake::Interrupted => Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "grove: the wait was interrupted (kill or timeout) while unwinding",
        )),
        Wake::LoopExit => Err(loop_exit_error()),
    }
}

/// The owner of `fd` (grove's id for it) is about to close it: this thread's hub, if it has
/// one, deletes the fd's registration first (see [`super::fds`]). Never creates a hub.
pub(crate) fn forget_fd(fd: RawFd, owner: u64) {
    let has_hub = HUB_PTR.try_with(|p| !p.get().is_null()).unwrap_or(false);
    if has_hub {
        with_hub(|h| {
            if let Ok(mut poller) = h.poller.try_borrow_mut() {
                if let Some(p) = poller.as_mut() {
                    h.io.borrow_mut().forget(p, fd, owner);
                }
            }
        });
    }
}

/// How many I/O operations in a row a greenlet may complete without waiting before it yields
/// (see [`note_immediate_io`]).
pub(crate) const IO_STREAK: u32 = 32;

/// Called by every cooperative I/O operation that completed at once, without waiting. Such an
/// operation does not switch; but after [`IO_STREAK`] of them in a row, the running greenlet
/// yields, so that one busy connection (a socket that always has data) cannot starve the
/// others. The count starts again whenever the hub switches into the greenlet.
#[inline]
pub(crate) fn note_immediate_io() {
    let yield_now = with_hub(|h| {
        let n = h.io_streak.get() + 1;
        h.io_streak.set(n);
        n >= IO_STREAK
    });
    if yield_now {
        self::yield_now();
    }
}

/// Wakes every greenlet waiting on `fd` (it is being closed): each sees its wait end and
/// learns from its socket that it was closed.
pub(crate) fn wake_fd_waiters(fd: RawFd) {
    with_hub(|h| h.io.borrow().wake_all(fd));
}

/// The error every blocking call returns when nothing could ever wake it.
pub(crate) fn loop_exit_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "grove: this wait would block forever: no greenlet is ready, no timer is pending and no I/O is awaited (LoopExit)",
    )
}

impl Hub {
    /// The id of the running greenlet (the main one outside any spawned greenlet).
    pub(crate) fn current_id(&self) -> u64 {
        match &*self.current.borrow() {
            Some(t) => t.id(),
            None => self.main.id(),
        }
    }

    /// The poller. Panics only if used after the thread's exit closed it.
    fn poller(&self) -> std::cell::RefMut<'_, Poller> {
        std::cell::RefMut::map(self.poller.borrow_mut(), |p: &mut Option<Poller>| {
            p.as_mut()
                .expect("grove: the hub was used after its thread's exit closed it")
        })
    }

    fn backend(&self) -> Backend {
        self.poller().backend()
    }

    /// Whether anything in the loop could still wake a parked greenlet.
    fn has_sources(&self) -> bool {
        if !self.ready.borrow().is_empty()
            || !self.timers.borrow().is_empty()
            || self.io.borrow().waiting()
            // A greenlet waiting for a wake-up from another thread: its target stays in the
            // table (which only this thread changes) until the wake-up is handled here.
            || self.targets.registered()
        {
            return true;
        }
        // A handle elsewhere may still send work. The count is read before the flag: a sender
        // sets the flag before it lets go of its handle, so once the count says no handle is
        // left, the flag (read after an acquire fence that pairs with the handle's release)
        // says whether the last one sent something.
        if Arc::strong_count(&self.remote) > 1 {
            return true;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        self.remote.pending.load(Ordering::Acquire)
    }
}

/// The hub unmaps retired stacks only when it is about to wait at least this long (or for I/O
/// alone): a batch takes up to a few hundred microseconds, which must not make a timer late.
const TRIM_IDLE: Duration = Duration::from_millis(1);

/// How many greenlet runs the hub allows between two polls of I/O while greenlets are ready
/// and some wait for a file descriptor: the bound on how long a busy loop of yields can keep
/// I/O waiting.
const POLL_EVERY: usize = 64;

/// The hub prefetches what the greenlets it is about to run will touch first (see
/// [`prefetch_ahead`]) only while at least this many are ready: a short queue holds greenlets
/// that ran a moment ago, still in cache.
const PREFETCH_MIN_QUEUE: usize = 4;
/// Every this many runs, the hub starts loading the headers (stack tops) of this many
/// greenlets, [`PREFETCH_HEADERS_AT`] places ahead, and the tasks of this many further on.
const PREFETCH_BATCH: usize = 4;
const PREFETCH_HEADERS_AT: usize = 3;
const PREFETCH_TASKS_AT: usize = 11;
/// At every run, the hub loads the stack lines of the greenlet this many places ahead: its
/// header and the lines below it, [`prefetch::START_BYTES`] in all, what a start (entry,
/// body, a first blocking call, the switch back) touches.
const PREFETCH_STACK_AT: usize = 1;

/// Starts loading, into the cache, what the next greenlets in `ready` will touch when they
/// run (their memory has gone cold when many are ready: a burst of spawns or wakes).
///
/// A greenlet's run begins with a chain of dependent loads (its task, then its header at the
/// top of its stack, then the frames below), each a cache miss and the header usually a TLB
/// miss too, one after the other; fetched ahead they overlap each other and the runs before.
/// So, `runs` being the number of runs so far:
///
/// * every [`PREFETCH_BATCH`] runs, the tasks [`PREFETCH_TASKS_AT`] places ahead (their
///   first lines: the counts and the greenlet), and the headers [`PREFETCH_HEADERS_AT`] places
///   ahead (read from tasks loaded by an earlier batch). A batch at a time, so that the page
///   walks of the headers overlap: a prefetch waits for its walk;
/// * at every run, the header and the frames below it of the greenlet [`PREFETCH_STACK_AT`]
///   places ahead (its stack's page now in the TLB): the 13 lines a start touches (see
///   [`prefetch::start_below`]: fewer leave frames to the hardware prefetcher, which does
///   not keep up; more take fill buffers from the next greenlets' fetches).
///
/// Prefetches are hints: they change nothing but timing (see [`prefetch`]).
#[inline(always)]
fn prefetch_ahead(ready: &RunQueue<Rc<Task>>, runs: usize) {
    if ready.len() < PREFETCH_MIN_QUEUE {
        return;
    }
    if runs % PREFETCH_BATCH == 0 {
        for i in PREFETCH_TASKS_AT..PREFETCH_TASKS_AT + PREFETCH_BATCH {
            if let Some(t) = ready.get(i) {
                t.prefetch_hot();
            }
        }
        for i in PREFETCH_HEADERS_AT..PREFETCH_HEADERS_AT + PREFETCH_BATCH {
            if let Some(t) = ready.get(i) {
                prefetch::line(t.header_hint());
            }
        }
    }
    if let Some(t) = ready.get(PREFETCH_STACK_AT) {
        let h = t.header_hint();
        if h != 0 {
            // The header is at the top of the stack: no further than its page's end (the next
            // page is another mapping, or another stack's guard).
            let end = (h + HEADER_BYTES).min((h | (prefetch::PAGE - 1)) + 1);
            prefetch::start_below(end);
        }
    }
}

/// About how many bytes a greenlet's header takes, above its address (see
/// [`Raw::header_addr`]).
const HEADER_BYTES: usize = 256;

/// The body of the hub greenlet. Never returns.
fn run_loop() {
    let hub = hub_rc();
    if let Some(p) = &hub.probe {
        // The main greenlet, running when the hub was made, has just handed over.
        p.leave();
    }
    let mut events = Events::with_capacity(256);
    // Greenlets run since the last poll. While greenlets are ready the hub skips the (system
    // call) poll until this reaches POLL_EVERY: a loop of yields still lets I/O in at least
    // that often, without paying a syscall per turn.
    let mut since_poll = 0usize;
    // Greenlet runs so far (wrapping): paces the prefetching of the next ones.
    let mut runs = 0usize;
    loop {
        // 1. Callbacks from other threads (a plain load first: the common answer is no).
        if hub.remote.pending.load(Ordering::Acquire)
            && hub.remote.pending.swap(false, Ordering::AcqRel)
        {
            let batch = hub.remote.drain();
            for token in batch.wakes {
                hub.targets.fire(token);
            }
            for f in batch.jobs {
                f();
            }
        }

        // 2. Run what was ready at the start of this turn.
        let n = hub.ready.borrow_mut().start_turn();
        for _ in 0..n {
            let Some(task) = ({
                let mut ready = hub.ready.borrow_mut();
                let task = ready.pop();
                runs = runs.wrapping_add(1);
                prefetch_ahead(&ready, runs);
                task
            }) else {
                break;
            };
            debug_assert!(
                !task.parked.get(),
                "grove: a parked greenlet was in the run queue (a waker fired inside park's prepare: use Waker::abort)"
            );
            // Out of the task while it runs (nothing needs it meanwhile: see `Task::raw`).
            let Some(raw) = task.raw.take() else {
                continue; // finished and released already
            };
            if raw.is_dead() {
                continue;
            }
            *hub.current.borrow_mut() = Some(task.clone());
            hub.io_streak.set(0);
            if let Some(p) = &hub.probe {
                p.enter(&task);
            }
            // The task runs until it parks or finishes; either way it comes back here. A
            // spawned greenlet catches its own panics, so the result carries nothing.
            discard(raw.switch(Box::new(())));
            if let Some(p) = &hub.probe {
                p.leave();
            }
            *hub.current.borrow_mut() = None;
            if !raw.is_dead() {
                task.raw.set(Some(raw));
            }
            // A finished greenlet's handle drops here: its stack goes back to the pool now.
        }
        since_poll += n;

        // 3. Timers (the clock is read only when some are pending: it costs tens of ns).
        //    The first `pop_expired` arms the timers added during the turn with this `now`
        //    (see `add_timer_after`).
        let now = if hub.timers.borrow().is_empty() {
            Deadline::ZERO
        } else {
            hub.clock.now()
        };
        loop {
            let fired = hub.timers.borrow_mut().pop_expired(now);
            match fired {
                Some((_, action)) => action.fire(),
                None => break,
            }
        }

        // 4. I/O: block only if nothing is ready, and only until the next timer; with greenlets
        //    ready, poll (without blocking) once every POLL_EVERY runs, if any greenlet waits
        //    for a file descriptor (else there is nothing to poll for: callbacks from other
        //    threads are seen in step 1 without it).
        let timeout =
            if !hub.ready.borrow().is_empty() || hub.remote.pending.load(Ordering::Acquire) {
                if since_poll < POLL_EVERY {
                    continue;
                }
                if !hub.io.borrow().waiting() {
                    since_poll = 0;
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
                let next = hub.timers.borrow().next_deadline();
                match (&hub.clock, next) {
                    // A paused clock jumps to the next timer instead of sleeping until it.
                    (Clock::Paused(t), Some(d)) if !hub.io.borrow().waiting() => {
                        t.set(t.get().max(d));
                        Some(Duration::ZERO)
                    }
                    _ => next.map(|d| d.saturating_duration_since(hub.clock.now())),
                }
            };
        // Idle for a while (nothing ready, no timer due soon)? Unmap a batch of the stacks the
        // pool retired meanwhile (it never unmaps on this thread: see `stack::pool`), then, if
        // more are left, only peek at I/O and come back for the next batch.
        let timeout = if timeout.is_none_or(|t| t >= TRIM_IDLE)
            && crate::stack::pool::retired() > 0
            && crate::stack::pool::trim(crate::stack::pool::TRIM_BATCH) > 0
        {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        since_poll = 0;
        if hub.ready.borrow().is_empty() {
            hub.io.borrow_mut().drained();
        }
        let polled = hub.poller().wait(&mut events, timeout);
        if let Err(e) = polled {
            // A poller failure is not recoverable by the loop: report it and keep turning, so
            // that timers still fire (a persistent failure shows up once per turn).
            eprintln!("grove: hub poll failed: {e}");
        }
        if !events.is_empty() {
            let mut poller = hub.poller();
            let mut io = hub.io.borrow_mut();
            for ev in events.iter() {
                io.dispatch(&mut poller, ev);
            }
        }
    }
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

/// The address of this thread's hub's [`Remote`], if the hub exists (never creates one).
pub(crate) fn this_thread_remote() -> Option<*const Remote> {
    let p = HUB_PTR.try_with(Cell::get).ok()?;
    if p.is_null() {
        return None;
    }
    Some(with_hub(|h| Arc::as_ptr(&h.remote)))
}

/// The running task, if this thread has a hub that is reachable now (for panic hooks).
pub(crate) fn try_current_task() -> Option<Rc<Task>> {
    let h = try_hub()?;
    let c = h.current.try_borrow().ok()?.clone();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_small_and_its_hot_fields_share_a_cache_line() {
        // An `Rc<Task>` is the task plus two counts: 120 bytes, which malloc serves from a
        // 128-byte chunk (the park benchmark's RSS per greenlet counts it).
        assert!(
            std::mem::size_of::<Task>() <= 104,
            "{}",
            std::mem::size_of::<Task>()
        );
        // What every start, park and wake touches lies within the first 64 bytes of the
        // allocation (16 of them are the counts).
        assert!(std::mem::offset_of!(Task, waiting_kind) < 64 - 16);
        assert!(std::mem::offset_of!(Task, id) < 64 - 16);
    }

    #[test]
    fn waiting_round_trips_through_its_packed_form() {
        for w in [
            Waiting::Nothing,
            Waiting::Sleep,
            Waiting::Join(u64::MAX - 1),
            Waiting::Fd { fd: 0, write: true },
            Waiting::Fd {
                fd: RawFd::MAX,
                write: false,
            },
            Waiting::Fd {
                fd: -1,
                write: true,
            },
            Waiting::On(WaitOn::Event),
            Waiting::On(WaitOn::Any),
        ] {
            let (k, d) = w.pack();
            assert_eq!(Waiting::unpack(k, d), w);
        }
        for (i, w) in WaitOn::ALL.iter().enumerate() {
            assert_eq!(*w as usize, i);
        }
    }

    #[test]
    fn a_timer_action_is_two_words_and_says_what_it_does() {
        assert_eq!(std::mem::size_of::<TimerAction>(), 16);
        assert_eq!(std::mem::size_of::<Option<TimerAction>>(), 16);
        let t = Task::new(Raw::current(), None);
        for (a, want) in [
            (TimerAction::start(t.clone()), TimerDo::Start),
            (
                TimerAction::wake(&Waker {
                    task: t.clone(),
                    generation: 7,
                }),
                TimerDo::Wake(7),
            ),
            (
                TimerAction::interrupt(t.clone(), Interrupt::Kill),
                TimerDo::Interrupt(Interrupt::Kill),
            ),
            (
                TimerAction::interrupt(t.clone(), Interrupt::Elapsed { id: 12 }),
                TimerDo::Interrupt(Interrupt::Elapsed { id: 12 }),
            ),
        ] {
            assert_eq!(a.what(), want);
        }
    }

    /// More busy connections than the loop runs between two polls: the poller reports the
    /// sockets of readers woken but not yet run, with nobody waiting. Their registrations
    /// must survive that (the grace in `fds`), or every message costs a delete and an add.
    #[test]
    fn busy_sockets_keep_their_registrations_when_reported_before_their_reader_runs() {
        use crate::net::UnixStream;
        use std::io::{Read, Write};
        const CONNS: usize = 3 * POLL_EVERY;
        const ROUNDS: usize = 20;
        let pairs: Vec<_> = (0..CONNS).map(|_| UnixStream::pair().unwrap()).collect();
        let mut echoes = Vec::new();
        let mut clients = Vec::new();
        let start = Rc::new(crate::Event::new());
        for (a, b) in pairs {
            echoes.push(crate::spawn(move || {
                let mut buf = [0u8; 64];
                loop {
                    match (&b).read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => (&b).write_all(&buf[..n]).unwrap(),
                    }
                }
            }));
            let start = start.clone();
            clients.push(crate::spawn(move || {
                let mut back = [0u8; 8];
                // One warm-up round trip registers both sockets.
                (&a).write_all(b"12345678").unwrap();
                (&a).read_exact(&mut back).unwrap();
                start.wait().unwrap();
                for _ in 0..ROUNDS {
                    (&a).write_all(b"12345678").unwrap();
                    (&a).read_exact(&mut back).unwrap();
                    assert_eq!(&back, b"12345678");
                }
                a // closed after the count
            }));
        }
        // Every client has made its warm-up round trip once every greenlet waits.
        while !crate::debug::run_info().greenlets.iter().all(|g| {
            matches!(
                g.state,
                crate::debug::GreenletState::Running
                    | crate::debug::GreenletState::Waiting(_)
                    | crate::debug::GreenletState::WaitingFd { .. }
            )
        }) {
            crate::sleep(Duration::from_millis(1));
        }
        let before = with_hub(|h| h.poller().changes());
        start.set();
        let open: Vec<_> = clients.into_iter().map(|c| c.get().unwrap()).collect();
        let changes = with_hub(|h| h.poller().changes()) - before;
        // Without the grace: about two per connection and round (thousands).
        assert!(
            changes < CONNS as u64 / 4,
            "{changes} registration changes for {CONNS} connections x {ROUNDS} round trips"
        );
        drop(open);
        for e in echoes {
            e.join().unwrap();
        }
    }

    #[test]
    fn interrupts_merge_kill_first_then_the_outer_timeout() {
        let outer = Interrupt::Elapsed { id: 3 };
        let inner = Interrupt::Elapsed { id: 9 };
        assert_eq!(Interrupt::merge(None, inner), inner);
        assert_eq!(Interrupt::merge(Some(inner), outer), outer);
        assert_eq!(Interrupt::merge(Some(outer), inner), outer);
        assert_eq!(
            Interrupt::merge(Some(outer), Interrupt::Kill),
            Interrupt::Kill
        );
        assert_eq!(
            Interrupt::merge(Some(Interrupt::Kill), inner),
            Interrupt::Kill
        );
        for i in [None, Some(Interrupt::Kill), Some(outer), Some(inner)] {
            assert_eq!(Interrupt::unpack(Interrupt::pack(i)), i);
        }
    }
}
