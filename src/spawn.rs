//! Spawning greenlets on the hub: gevent's `Greenlet`, in Rust idiom.
//!
//! [`spawn`] creates a greenlet that starts on a later turn of this thread's hub, never at
//! once; equally ready greenlets run in the order they became ready. [`Greenlet::join`] and
//! [`Greenlet::get`] wait cooperatively: other greenlets run meanwhile. A panic inside a
//! greenlet is caught, kept for `get`, and never stops the hub or the other greenlets.
//!
//! (This is the scheduled greenlet. The raw, python-greenlet-style primitive it runs on is
//! [`crate::greenlet::Greenlet`].)

use crate::greenlet::{self as raw, GreenletExit};
use crate::hub::event_loop::{
    self as hub, ElapsedSignal, Interrupt, Task, TaskInfo, TimerAction, Waiting, Wake, Waker,
};
use crate::hub::wait_list::WaitList;
use crate::wait::{Waitable, Watcher};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

/// Why a greenlet produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreenletError {
    /// It panicked; the message, when the payload was a string.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// It was killed before it finished (or before it started).
    Killed,
    /// Waiting for it would block forever: nothing left in the loop could ever finish it
    /// (gevent's `LoopExit`).
    WouldBlockForever,
    /// The wait was interrupted by a kill or a timeout that arrived while the waiting
    /// greenlet was already unwinding (so it could not be raised).
    Interrupted,
    /// It could not be started (no stack could be had, or no room in a pool); why.
    SpawnFailed {
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Panicked { message } => write!(f, "greenlet panicked: {message}"),
            GreenletError::Killed => f.write_str("greenlet was killed"),
            GreenletError::WouldBlockForever => f.write_str(
                "waiting would block forever: no greenlet is ready, no timer is pending and no I/O is awaited",
            ),
            GreenletError::Interrupted => {
                f.write_str("the wait was interrupted while the waiter was unwinding")
            }
            GreenletError::SpawnFailed { message } => {
                write!(f, "greenlet could not be started: {message}")
            }
        }
    }
}

impl std::error::Error for GreenletError {}

/// Which outcomes a link fires on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LinkOn {
    Any,
    Value,
    Error,
}

type LinkFn<T> = Box<dyn FnOnce(&Result<T, GreenletError>)>;

/// The links of a `Greenlet<T>` not yet fired, in the order they were added.
type Links<T> = Vec<(LinkOn, LinkFn<T>)>;

/// Who waits for a spawned greenlet to finish, and its links. Few greenlets need either (a
/// join of a finished greenlet waits for nothing), so this lives in the task's
/// [`TaskExtra`](crate::hub::event_loop::TaskExtra), allocated on first use; the outcome
/// itself is in the task (`Task::outcome`, see [`OutcomeKind`]).
#[derive(Default)]
pub(crate) struct JoinState {
    /// Joiners and watchers, woken when it finishes.
    waiters: Joiners,
    /// The links not yet fired: a `Links<T>` (the task does not know `T`).
    links: Cell<Option<Box<dyn Any>>>,
}

/// Who waits for a greenlet to finish, woken all at once in the order they began waiting
/// (the [`WaitList`] rules). Most greenlets have at most one joiner at a time, so the first
/// one waits in a slot of its own and a `WaitList` is allocated only for more (or for a
/// watcher).
///
/// FIFO: `first` is taken only while `rest` is absent, so everything in `rest` came after it.
#[derive(Default)]
struct Joiners {
    first: Cell<Option<Waker>>,
    rest: Cell<Option<Box<WaitList>>>,
}

impl Joiners {
    /// Adds a parked greenlet's waker.
    fn push(&self, w: &Waker) {
        match self.rest.take() {
            Some(rest) => {
                rest.push(w);
                self.rest.set(Some(rest));
            }
            None => match self.first.take() {
                Some(f) if !f.is_stale() => {
                    self.first.set(Some(f));
                    let rest = Box::<WaitList>::default();
                    rest.push(w);
                    self.rest.set(Some(rest));
                }
                // Empty, or holding a spent waker (its greenlet left that wait): replacing
                // it is the pruning a `WaitList` does.
                spent => {
                    self.first.set(Some(w.clone()));
                    drop(spent);
                }
            },
        }
    }

    /// Adds a watcher (`wait_any`/`iwait`).
    fn watch(&self, watcher: &Watcher) {
        let rest = self.rest.take().unwrap_or_default();
        rest.watch(watcher);
        self.rest.set(Some(rest));
    }

    /// Wakes everyone, in order. Those added meanwhile are not woken.
    fn wake_all(&self) {
        let (first, rest) = (self.first.take(), self.rest.take());
        if let Some(w) = first {
            w.wake(Wake::Ready);
        }
        if let Some(rest) = rest {
            rest.wake_all();
        }
    }
}

/// What a task's `outcome` holds, type-erased (the task does not know `T`; only
/// [`Greenlet<T>`] and the body, which do, read it back). Kept as a byte beside a bare
/// `Option<Box<dyn Any>>`, so that the outcome costs the task 25 bytes, not 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutcomeKind {
    /// Not finished (nothing held).
    Pending,
    /// It returned: a `Box<T>` (a zero-sized `T` costs no allocation).
    Value,
    /// It was killed (nothing held).
    Killed,
    /// It panicked: a `Box<GreenletError>`.
    Error,
    /// The whole `Box<Result<T, GreenletError>>`, an `Ok`: the form a link borrows. Used
    /// once the greenlet has links (one allocation, on that rarer path).
    WholeOk,
    /// The same, an `Err`.
    WholeErr,
    /// Moved out by [`Greenlet::get`], or dropped with the handle (nothing held).
    Taken,
    /// Not finished, and the handle is gone: nobody will read the outcome, so the body
    /// drops it where it ends instead of storing it (nothing held).
    Detached,
}

const WRONG_TYPE: &str = "grove: a greenlet's outcome has the type it was spawned with";

/// `r` as a kind and what `Task::outcome` holds for it, unboxed.
fn outcome_of<T: 'static>(r: Result<T, GreenletError>) -> (OutcomeKind, Option<Box<dyn Any>>) {
    match r {
        Ok(v) => (OutcomeKind::Value, Some(Box::new(v))),
        Err(GreenletError::Killed) => (OutcomeKind::Killed, None),
        Err(e) => (OutcomeKind::Error, Some(Box::new(e))),
    }
}

/// `r` whole, the form links borrow.
fn whole_outcome_of<T: 'static>(
    r: Result<T, GreenletError>,
) -> (OutcomeKind, Option<Box<dyn Any>>) {
    let kind = if r.is_ok() {
        OutcomeKind::WholeOk
    } else {
        OutcomeKind::WholeErr
    };
    (kind, Some(Box::new(r)))
}

/// The result a `kind` and its payload stand for, moved out (`None` if pending or taken).
fn result_of<T: 'static>(
    kind: OutcomeKind,
    payload: Option<Box<dyn Any>>,
) -> Option<Result<T, GreenletError>> {
    match kind {
        OutcomeKind::Value => Some(Ok(*payload?.downcast::<T>().expect(WRONG_TYPE))),
        OutcomeKind::Killed => Some(Err(GreenletError::Killed)),
        OutcomeKind::Error => Some(Err(*payload?
            .downcast::<GreenletError>()
            .expect(WRONG_TYPE))),
        OutcomeKind::WholeOk | OutcomeKind::WholeErr => Some(
            *payload?
                .downcast::<Result<T, GreenletError>>()
                .expect(WRONG_TYPE),
        ),
        OutcomeKind::Pending | OutcomeKind::Taken | OutcomeKind::Detached => None,
    }
}

/// The whole result held in `payload`, borrowed (`None` unless it is held whole).
fn as_whole<T: 'static>(payload: &Option<Box<dyn Any>>) -> Option<&Result<T, GreenletError>> {
    payload.as_ref()?.downcast_ref()
}

/// Stores `(kind, payload)` as the task's outcome.
fn set_outcome(task: &Task, (kind, payload): (OutcomeKind, Option<Box<dyn Any>>)) {
    *task.outcome.borrow_mut() = payload;
    task.outcome_kind.set(kind);
}

/// A greenlet scheduled on this thread's hub, producing a `T`.
///
/// Dropping the handle does not kill the greenlet: it runs on, detached.
pub struct Greenlet<T> {
    /// The task, which also holds the outcome (a `T` or an error) and the links.
    task: Rc<Task>,
    /// The outcome's type. Invariant, as when the outcome was a `RefCell<T>` of its own: a
    /// subtype coercion (of a higher-ranked `fn`, say) would change the `TypeId` the outcome
    /// is read back by.
    _result: PhantomData<Cell<T>>,
}

/// Configures a greenlet before spawning it.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the defaults: no name, the default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown in panics, overflow reports and introspection).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Usable stack bytes (see [`crate::greenlet::Builder::stack_size`]).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns `f`: it starts on a later turn of the hub, after everything already ready.
    ///
    /// Fails only if no stack can be had (the error says why).
    #[track_caller]
    pub fn spawn<T, F>(self, f: F) -> std::io::Result<Greenlet<T>>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        let g = self.build(Location::caller(), f)?;
        hub::schedule(g.task.clone());
        Ok(g)
    }

    /// Spawns `f` to start after `delay` (gevent's `spawn_later`). Killing it before then
    /// means it never runs (its links still fire).
    #[track_caller]
    pub fn spawn_later<T, F>(self, delay: Duration, f: F) -> std::io::Result<Greenlet<T>>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        let g = self.build(Location::caller(), f)?;
        let id = hub::add_timer(
            hub::deadline_after(delay),
            TimerAction::start(g.task.clone()),
        );
        g.task.extra().start_timer.set(Some(id));
        Ok(g)
    }

    fn build<T, F>(
        self,
        spawned_at: &'static Location<'static>,
        f: F,
    ) -> std::io::Result<Greenlet<T>>
    where
        T: 'static,
        F: FnOnce() -> T + 'static,
    {
        install_std_hook();
        let (hub_raw, spawner) = hub::with_hub(|h| (h.raw.clone(), h.current_id()));
        let mut b = raw::Builder::new().parent(&hub_raw);
        if let Some(n) = &self.name {
            b = b.name(n.clone());
        }
        if let Some(s) = self.stack_size {
            b = b.stack_size(s);
        }
        let raw = b.build(move |_| {
            run_body(f);
            Box::new(()) as Box<dyn Any>
        })?;
        let task = Task::new(
            raw,
            Some(TaskInfo {
                name: self.name.map(Arc::from),
                spawned_at,
                spawner,
            }),
        );
        hub::register(&task);
        Ok(Greenlet {
            task,
            _result: PhantomData,
        })
    }
}

/// The body of every spawned greenlet: run `f` (unless killed before starting), keep the
/// outcome, report a panic, fire the links, wake the joiners.
///
/// Only what must be live while `f` runs is in this frame (the task and `f`'s own state):
/// the rest is in out-of-line functions that run before or after it. A greenlet's first run
/// writes every stack line its frames cover, so a smaller frame is a faster start.
#[inline(always)]
fn run_body<T: 'static, F: FnOnce() -> T>(f: F) {
    let me = hub::current_task();
    me.started.set(true);
    let outcome = if me.interrupt() == Some(Interrupt::Kill) {
        me.set_interrupt(None);
        drop(f);
        Err(GreenletError::Killed)
    } else {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => Ok(v),
            Err(p) => Err(caught(&me, p)),
        }
    };
    finish(me, outcome);
}

/// What a panic that ended a greenlet's body means (reported here).
#[cold]
#[inline(never)]
fn caught(me: &Task, p: Box<dyn Any + Send>) -> GreenletError {
    if p.is::<GreenletExit>() {
        return GreenletError::Killed;
    }
    let message = if p.is::<ElapsedSignal>() {
        "a timeout fired outside its scope".to_string()
    } else {
        raw::panic_message(&*p)
    };
    report_panic(me, &message);
    GreenletError::Panicked { message }
}

/// The end of a greenlet's body: keep the outcome, fire the links, wake the joiners.
#[inline(never)]
fn finish<T: 'static>(me: Rc<Task>, outcome: Result<T, GreenletError>) {
    me.finished.set(true);
    me.set_interrupt(None);
    hub::unregister(&me);
    let links = me
        .extra_if_any()
        .and_then(|x| x.join.links.take())
        .map(|links| {
            *links
                .downcast::<Links<T>>()
                .expect("grove: a greenlet's links have the type it was spawned with")
        });
    let detached = me.outcome_kind.get() == OutcomeKind::Detached;
    match links {
        // Nobody will read it: the links see it, then it is dropped here, as the greenlet ends.
        Some(links) if detached => {
            for (on, link) in links {
                fire_link(&me, on, &outcome, link);
            }
        }
        None if detached => {}
        None => set_outcome(&me, outcome_of(outcome)),
        Some(links) => {
            set_outcome(&me, whole_outcome_of(outcome));
            for (on, link) in links {
                let o = me.outcome.borrow();
                let r = as_whole::<T>(&o).expect("the outcome was just stored whole");
                fire_link(&me, on, r, link);
            }
        }
    }
    if let Some(x) = me.extra_if_any() {
        x.join.waiters.wake_all();
    }
}

fn fire_link<T>(me: &Task, on: LinkOn, r: &Result<T, GreenletError>, link: LinkFn<T>) {
    let wanted = match on {
        LinkOn::Any => true,
        LinkOn::Value => r.is_ok(),
        LinkOn::Error => r.is_err(),
    };
    if !wanted {
        return;
    }
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| link(r))) {
        report_panic(me, &format!("in a link: {}", raw::panic_message(&*p)));
    }
}

/// Spawns `f` as a new greenlet on this thread's hub. It starts on a later loop turn, not at
/// once: call [`Greenlet::join`], [`sleep`](crate::sleep) or any other blocking call to let it
/// run.
///
/// # Panics
///
/// If no stack can be mapped (use [`Builder::spawn`] to get the error instead).
#[track_caller]
pub fn spawn<T, F>(f: F) -> Greenlet<T>
where
    T: 'static,
    F: FnOnce() -> T + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("grove::spawn: {e}"))
}

/// Spawns `f` to start after `delay` (see [`Builder::spawn_later`]).
///
/// # Panics
///
/// If no stack can be mapped.
#[track_caller]
pub fn spawn_later<T, F>(delay: Duration, f: F) -> Greenlet<T>
where
    T: 'static,
    F: FnOnce() -> T + 'static,
{
    Builder::new()
        .spawn_later(delay, f)
        .unwrap_or_else(|e| panic!("grove::spawn_later: {e}"))
}

impl<T> Greenlet<T> {
    /// The hub's record of it (for groups, which hold members of any type).
    pub(crate) fn task(&self) -> &Rc<Task> {
        &self.task
    }

    /// A number unique among the process's greenlets.
    pub fn id(&self) -> u64 {
        self.task.id()
    }

    /// The name given at spawn.
    pub fn name(&self) -> Option<&str> {
        self.task.name().map(|n| &**n)
    }

    /// Where it was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.task.spawned_at().expect("spawned")
    }

    /// It has finished (returned, panicked or been killed).
    pub fn ready(&self) -> bool {
        self.task.outcome_kind.get() != OutcomeKind::Pending
    }

    /// The same as [`ready`](Self::ready): it has finished and will never run again.
    pub fn is_dead(&self) -> bool {
        self.ready()
    }

    /// It finished by returning a value.
    pub fn successful(&self) -> bool {
        matches!(
            self.task.outcome_kind.get(),
            OutcomeKind::Value | OutcomeKind::WholeOk
        )
    }

    /// Waits until it has finished; other greenlets run meanwhile. Errors with
    /// [`GreenletError::WouldBlockForever`] if nothing could ever finish it.
    pub fn join(&self) -> Result<(), GreenletError> {
        match self.wait(None)? {
            true => Ok(()),
            false => Err(GreenletError::WouldBlockForever),
        }
    }

    /// Waits at most `timeout`; returns whether it has finished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, GreenletError> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool, GreenletError> {
        if self.ready() {
            return Ok(true);
        }
        if hub::is_current(&self.task) {
            // Joining yourself can never end.
            return Err(GreenletError::WouldBlockForever);
        }
        let (why, _timer) = hub::park(Waiting::Join(self.id()), |w| {
            self.task.extra().join.waiters.push(w);
            hub::timeout_guard(w, timeout)
        });
        match why {
            _ if self.ready() => Ok(true),
            Wake::LoopExit => Err(GreenletError::WouldBlockForever),
            Wake::Interrupted => Err(GreenletError::Interrupted),
            Wake::Ready | Wake::Timeout => Ok(false),
        }
    }

    /// Waits for it to finish and returns its value, or why there is none.
    pub fn get(self) -> Result<T, GreenletError>
    where
        T: 'static,
    {
        self.join()?;
        let payload = self.task.outcome.borrow_mut().take();
        let kind = self.task.outcome_kind.replace(OutcomeKind::Taken);
        result_of(kind, payload).unwrap_or(Err(GreenletError::Killed))
    }

    /// Kills it and waits until it is dead (gevent's `kill(block=True)`): it unwinds from its
    /// current blocking point with a [`GreenletExit`] payload, running its destructors. A
    /// greenlet that has not started never runs; its links still fire. Killing a dead
    /// greenlet does nothing; killing yourself unwinds at once.
    pub fn kill(&self) {
        self.kill_nowait();
        let _ = self.join();
    }

    /// Kills it without waiting (it dies when the hub next runs it).
    pub fn kill_nowait(&self) {
        if self.ready() {
            return;
        }
        if hub::is_current(&self.task) {
            panic::resume_unwind(Box::new(GreenletExit));
        }
        hub::interrupt(&self.task, Interrupt::Kill);
    }

    /// Kills it and waits at most `timeout`; returns whether it is dead.
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_nowait();
        self.join_timeout(timeout).unwrap_or(false)
    }

    /// Runs `f` with the outcome when it finishes (gevent's `link`). Links fire once each, in
    /// the order they were added, in the finishing greenlet just before its joiners wake; if
    /// it has finished already, `f` runs now. A panic in a link is reported and contained.
    pub fn link(&self, f: impl FnOnce(&Result<T, GreenletError>) + 'static)
    where
        T: 'static,
    {
        self.add_link(LinkOn::Any, Box::new(f));
    }

    /// Like [`link`](Self::link), only if it returned a value.
    pub fn link_value(&self, f: impl FnOnce(&T) + 'static)
    where
        T: 'static,
    {
        self.add_link(
            LinkOn::Value,
            Box::new(move |r| {
                if let Ok(v) = r {
                    f(v)
                }
            }),
        );
    }

    /// Like [`link`](Self::link), only if it panicked or was killed.
    pub fn link_error(&self, f: impl FnOnce(&GreenletError) + 'static)
    where
        T: 'static,
    {
        self.add_link(
            LinkOn::Error,
            Box::new(move |r| {
                if let Err(e) = r {
                    f(e)
                }
            }),
        );
    }

    fn add_link(&self, on: LinkOn, f: LinkFn<T>)
    where
        T: 'static,
    {
        let task = &self.task;
        if self.ready() {
            {
                // A link borrows the whole `Result<T, _>`: store it in that form (once).
                let mut o = task.outcome.borrow_mut();
                let kind = task.outcome_kind.get();
                if matches!(
                    kind,
                    OutcomeKind::Value | OutcomeKind::Killed | OutcomeKind::Error
                ) {
                    let r = result_of::<T>(kind, o.take()).expect("a finished outcome");
                    let (kind, payload) = whole_outcome_of(r);
                    *o = payload;
                    task.outcome_kind.set(kind);
                }
            }
            let o = task.outcome.borrow();
            if let Some(r) = as_whole::<T>(&o) {
                fire_link(task, on, r, f);
            }
            return;
        }
        let x = task.extra();
        let mut links = x
            .join
            .links
            .take()
            .unwrap_or_else(|| Box::new(Links::<T>::new()));
        links
            .downcast_mut::<Links<T>>()
            .expect("grove: a greenlet's links have the type it was spawned with")
            .push((on, f));
        x.join.links.set(Some(links));
    }
}

impl<T> Drop for Greenlet<T> {
    /// The outcome belongs to the handle: it goes with it (or, if the greenlet has not
    /// finished, it is dropped where the greenlet ends), not whenever the task's last
    /// reference happens to go (a waker left in some wait list, say).
    fn drop(&mut self) {
        let task = &self.task;
        let outcome = match task.outcome.try_borrow_mut() {
            Ok(_) if task.outcome_kind.get() == OutcomeKind::Pending => {
                task.outcome_kind.set(OutcomeKind::Detached);
                return;
            }
            Ok(mut o) => {
                task.outcome_kind.set(OutcomeKind::Taken);
                o.take()
            }
            // Dropped by one of its own links, which borrow the outcome: it stays with the
            // task.
            Err(_) => return,
        };
        drop(outcome);
    }
}

impl<T> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn watch(&self, watcher: &Watcher) {
        self.task.extra().join.waiters.watch(watcher);
    }
}

/// Waits until every greenlet in `gs` has finished. Errors with [`WaitError::TimedOut`] if
/// `timeout` passes first, [`WaitError::WouldBlockForever`] if some can never finish (gevent's
/// LoopExit), [`WaitError::Interrupted`] if the wait was abandoned while unwinding.
///
/// [`WaitError::TimedOut`]: crate::sync::WaitError::TimedOut
/// [`WaitError::WouldBlockForever`]: crate::sync::WaitError::WouldBlockForever
/// [`WaitError::Interrupted`]: crate::sync::WaitError::Interrupted
pub fn joinall<T>(
    gs: &[Greenlet<T>],
    timeout: Option<Duration>,
) -> Result<(), crate::sync::WaitError> {
    let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
    crate::wait::wait_all(&objs, timeout)
}

/// Kills every greenlet in `gs` (all at once, then waits for them all, at most `timeout`);
/// returns whether all are dead.
pub fn killall<T>(gs: &[Greenlet<T>], timeout: Option<Duration>) -> bool {
    let mut me = None;
    for g in gs {
        if hub::is_current(&g.task) {
            me = Some(g);
        } else {
            g.kill_nowait();
        }
    }
    if let Some(g) = me {
        // Killing yourself among others: the others first, then unwind.
        g.kill_nowait();
    }
    joinall(gs, timeout).is_ok()
}

/// The greenlet running now, as [`current`] returns it: who it is, without its result type
/// (gevent's `getcurrent()`). Outside any spawned greenlet it is the thread's main greenlet.
#[derive(Clone)]
pub struct Current {
    task: Rc<Task>,
}

/// The greenlet running now (the thread's main greenlet outside any spawned one). Its
/// [`id`](Current::id) is the one [`Greenlet::id`] and [`debug::run_info`](crate::debug::run_info)
/// report for it.
///
/// ```
/// let g = grove::Builder::new()
///     .name("worker")
///     .spawn(|| {
///         let me = grove::current();
///         (me.id(), me.name().map(String::from))
///     })
///     .unwrap();
/// let id = g.id();
/// assert_eq!(g.get().unwrap(), (id, Some("worker".to_string())));
/// assert!(grove::current().is_main());
/// ```
pub fn current() -> Current {
    Current {
        task: hub::current_task(),
    }
}

impl Current {
    /// Its id: unique among the process's greenlets.
    pub fn id(&self) -> u64 {
        self.task.id()
    }

    /// The name given at spawn (`None` for a thread's main greenlet, and for a greenlet
    /// spawned without one).
    pub fn name(&self) -> Option<&str> {
        if !self.task.is_spawned() {
            return None;
        }
        self.task.name().map(|n| &**n)
    }

    /// Whether it is the thread's main greenlet (the thread's own stack), not a spawned one.
    pub fn is_main(&self) -> bool {
        !self.task.is_spawned()
    }

    /// Where it was spawned (`None` for the main greenlet).
    pub fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.task.spawned_at()
    }
}

impl PartialEq for Current {
    fn eq(&self, other: &Current) -> bool {
        Rc::ptr_eq(&self.task, &other.task)
    }
}

impl Eq for Current {}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("main", &self.is_main())
            .finish()
    }
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("ready", &self.ready())
            .field("spawned_at", &self.spawned_at())
            .finish()
    }
}

/// A panic in a spawned greenlet, as handed to the panic hook.
#[derive(Debug)]
pub struct PanicReport<'a> {
    /// The greenlet's id.
    pub id: u64,
    /// Its name, if any.
    pub name: Option<&'a str>,
    /// The panic message.
    pub message: &'a str,
    /// Where it panicked (`file:line:col`), when known.
    pub location: Option<&'a str>,
    /// Where the greenlet was spawned.
    pub spawned_at: &'static Location<'static>,
}

impl fmt::Display for PanicReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grove: greenlet {}", self.id)?;
        if let Some(n) = self.name {
            write!(f, " ({n})")?;
        }
        f.write_str(" panicked")?;
        if let Some(l) = self.location {
            write!(f, " at {l}")?;
        }
        write!(f, ": {} (spawned at {})", self.message, self.spawned_at)
    }
}

type PanicHook = Arc<dyn Fn(&PanicReport<'_>) + Send + Sync>;

static PANIC_HOOK: RwLock<Option<PanicHook>> = RwLock::new(None);

/// Replaces what grove does with a panic caught in a spawned greenlet (process-wide). The
/// default prints one line on stderr naming the greenlet, where it panicked and where it was
/// spawned. The panic is reported once: inside spawned greenlets, grove's report replaces
/// std's `thread '...' panicked` message.
pub fn set_panic_hook(f: impl Fn(&PanicReport<'_>) + Send + Sync + 'static) {
    *PANIC_HOOK.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
}

/// Restores the default panic report (one line on stderr).
pub fn reset_panic_hook() {
    *PANIC_HOOK.write().unwrap_or_else(|e| e.into_inner()) = None;
}

thread_local! {
    /// Where the last panic inside a spawned greenlet happened, recorded by the std hook.
    static LAST_PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps std's panic hook (once per process) so that a panic inside a spawned greenlet is
/// recorded for grove's report instead of printed by std.
fn install_std_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_spawned =
                hub::try_current_task().is_some_and(|t| t.is_spawned() && !t.finished.get());
            if in_spawned {
                let at = info.location().map(|l| l.to_string());
                let _ = LAST_PANIC_AT.try_with(|c| *c.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Reports, through the panic hook, a panic that code inside the running greenlet caught and
/// will not let end the greenlet (a server answering 500, say). Outside a spawned greenlet
/// std's hook has printed it already.
pub(crate) fn report_caught_panic(message: &str) {
    let me = hub::current_task();
    if me.spawned_at().is_some() {
        report_panic(&me, message);
    }
}

fn report_panic(me: &Task, message: &str) {
    let at = LAST_PANIC_AT
        .try_with(|c| c.borrow_mut().take())
        .ok()
        .flatten();
    let report = PanicReport {
        id: me.id(),
        name: me.name().map(|n| &**n),
        message,
        location: at.as_deref(),
        spawned_at: me.spawned_at().expect("a spawned greenlet"),
    };
    let hook = PANIC_HOOK.read().unwrap_or_else(|e| e.into_inner()).clone();
    match hook {
        Some(h) => {
            if panic::catch_unwind(AssertUnwindSafe(|| h(&report))).is_err() {
                eprintln!("grove: the panic hook itself panicked; the report was: {report}");
            }
        }
        None => eprintln!("{report}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::pool;
    use std::cell::Cell;

    #[test]
    fn a_link_added_after_the_end_sees_the_value_and_get_still_returns_it() {
        let g = crate::spawn(|| String::from("done"));
        g.join().unwrap();
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        g.link(move |r| *s.borrow_mut() = Some(r.clone()));
        g.link_error(|_| unreachable!("it returned a value"));
        assert_eq!(*seen.borrow(), Some(Ok(String::from("done"))));
        assert!(g.successful());
        assert_eq!(g.get(), Ok(String::from("done")));
    }

    #[test]
    fn links_run_with_the_outcome_stored() {
        // Inside its links the greenlet is finished, its outcome readable, `get` works after.
        type Slot = Rc<RefCell<Option<Greenlet<Vec<u8>>>>>;
        let slot: Slot = Rc::default();
        let log = Rc::new(RefCell::new(Vec::new()));
        let g = crate::spawn(|| vec![1, 2, 3]);
        let (s, l) = (slot.clone(), log.clone());
        g.link(move |r| {
            let me = s.borrow();
            let me = me.as_ref().unwrap();
            l.borrow_mut()
                .push((me.ready(), me.successful(), r.is_ok()));
        });
        *slot.borrow_mut() = Some(g);
        slot.borrow().as_ref().unwrap().join().unwrap();
        assert_eq!(*log.borrow(), [(true, true, true)]);
        let g = slot.borrow_mut().take().unwrap();
        assert_eq!(g.get(), Ok(vec![1, 2, 3]));

        let bad = crate::spawn(|| -> u8 { panic!("no") });
        let hit = Rc::new(Cell::new(false));
        let h = hit.clone();
        bad.link_error(move |e| h.set(matches!(e, GreenletError::Panicked { .. })));
        bad.join().unwrap();
        assert!(hit.get() && !bad.successful());
        assert!(matches!(bad.get(), Err(GreenletError::Panicked { .. })));
    }

    #[test]
    fn the_outcome_goes_with_the_handle_or_where_a_detached_greenlet_ends() {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let g = crate::spawn(move || Flag(d));
        g.join().unwrap();
        assert!(!dropped.get(), "kept for get while the handle lives");
        drop(g);
        assert!(dropped.get());

        let dropped = Rc::new(Cell::new(false));
        let (d, seen) = (dropped.clone(), Rc::new(Cell::new(false)));
        let s = seen.clone();
        let g = crate::spawn(move || Flag(d));
        g.link_value(move |_| s.set(true));
        drop(g); // detached before it ran
        crate::sleep(Duration::from_millis(1));
        assert!(seen.get(), "its links still fire");
        assert!(dropped.get(), "dropped where it ended");
    }

    #[test]
    fn joiners_wake_in_the_order_they_came_and_spent_ones_are_replaced() {
        let ev = Rc::new(crate::Event::new());
        let e = ev.clone();
        let target = Rc::new(crate::spawn(move || {
            let _ = e.wait();
        }));
        let log = Rc::new(RefCell::new(Vec::new()));
        // One joiner gives up first: its spent waker must not count.
        let t = target.clone();
        let quitter = crate::spawn(move || t.join_timeout(Duration::from_millis(1)));
        assert_eq!(quitter.get(), Ok(Ok(false)));
        let joiners: Vec<_> = (0..3)
            .map(|i| {
                let (t, l) = (target.clone(), log.clone());
                crate::spawn(move || {
                    t.join().unwrap();
                    l.borrow_mut().push(i);
                })
            })
            .collect();
        crate::yield_now(); // all three wait now
        ev.set();
        assert!(crate::joinall(&joiners, Some(Duration::from_secs(5))).is_ok());
        assert_eq!(*log.borrow(), [0, 1, 2]);
    }

    #[test]
    fn a_finished_greenlets_stack_goes_back_at_once_and_idle_hubs_unmap_the_excess() {
        // (A fresh test thread: its own pool and hub.)
        let g = crate::spawn(|| 1u8);
        g.join().unwrap();
        // Finished: its stack is pooled although the handle still exists.
        assert_eq!(pool::pooled(), 1);
        assert_eq!(g.get(), Ok(1));
        // More finish than the pool keeps: the excess waits for the hub to idle.
        pool::set_limit(4);
        let gs: Vec<_> = (0..20)
            .map(|_| Builder::new().stack_size(16 * 1024).spawn(|| ()).unwrap())
            .collect();
        assert!(crate::joinall(&gs, Some(Duration::from_secs(5))).is_ok());
        assert!(pool::retired() > 0);
        // The hub waits: it unmaps them first (when it is about to wait a millisecond or more:
        // on a loaded machine a sleep may find less than that left, so try a few).
        for _ in 0..100 {
            crate::sleep(Duration::from_millis(5));
            if pool::retired() == 0 {
                break;
            }
        }
        assert_eq!(pool::retired(), 0);
        pool::set_limit(pool::DEFAULT_LIMIT);
    }
}
