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
    self as hub, ElapsedSignal, Interrupt, Task, TaskInfo, TimerAction, Waiting, Wake,
};
use crate::hub::wait_list::WaitList;
use crate::wait::{Waitable, Watcher};
use std::any::Any;
use std::cell::RefCell;
use std::fmt;
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

struct Shared<T> {
    result: RefCell<Option<Result<T, GreenletError>>>,
    /// Joiners and watchers, woken when it finishes.
    waiters: WaitList,
    /// Links not yet fired, in the order they were added.
    links: RefCell<Vec<(LinkOn, LinkFn<T>)>>,
}

/// A greenlet scheduled on this thread's hub, producing a `T`.
///
/// Dropping the handle does not kill the greenlet: it runs on, detached.
pub struct Greenlet<T> {
    task: Rc<Task>,
    shared: Rc<Shared<T>>,
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
            TimerAction::Start(g.task.clone()),
        );
        g.task.start_timer.set(Some(id));
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
        let shared = Rc::new(Shared {
            result: RefCell::new(None),
            waiters: WaitList::default(),
            links: RefCell::new(Vec::new()),
        });
        let hub_raw = hub::with_hub(|h| h.raw.clone());
        let mut b = raw::Builder::new().parent(&hub_raw);
        if let Some(n) = &self.name {
            b = b.name(n.clone());
        }
        if let Some(s) = self.stack_size {
            b = b.stack_size(s);
        }
        let sh = shared.clone();
        let raw = b.build(move |_| {
            run_body(&sh, f);
            Box::new(()) as Box<dyn Any>
        })?;
        let task = Task::new(
            raw,
            Some(TaskInfo {
                name: self.name.map(Arc::from),
                spawned_at,
                spawner: hub::current_task().id(),
            }),
        );
        hub::register(&task);
        Ok(Greenlet { task, shared })
    }
}

/// The body of every spawned greenlet: run `f` (unless killed before starting), keep the
/// outcome, report a panic, fire the links, wake the joiners.
fn run_body<T, F: FnOnce() -> T>(sh: &Shared<T>, f: F) {
    let me = hub::current_task();
    me.started.set(true);
    let outcome = if me.interrupt.get() == Some(Interrupt::Kill) {
        me.interrupt.set(None);
        drop(f);
        Err(GreenletError::Killed)
    } else {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => Ok(v),
            Err(p) if p.is::<GreenletExit>() => Err(GreenletError::Killed),
            Err(p) => {
                let message = if p.is::<ElapsedSignal>() {
                    "a timeout fired outside its scope".to_string()
                } else {
                    raw::panic_message(&*p)
                };
                report_panic(&me, &message);
                Err(GreenletError::Panicked { message })
            }
        }
    };
    me.finished.set(true);
    me.interrupt.set(None);
    hub::unregister(&me);
    *sh.result.borrow_mut() = Some(outcome);
    let links = std::mem::take(&mut *sh.links.borrow_mut());
    for (on, link) in links {
        let r = sh.result.borrow();
        let r = r.as_ref().expect("the outcome was just stored");
        fire_link(&me, on, r, link);
    }
    sh.waiters.wake_all();
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
    /// A number unique among the process's greenlets.
    pub fn id(&self) -> u64 {
        self.task.id()
    }

    /// The name given at spawn.
    pub fn name(&self) -> Option<&str> {
        self.task.info.as_ref().and_then(|i| i.name.as_deref())
    }

    /// Where it was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.task.info.as_ref().expect("spawned").spawned_at
    }

    /// It has finished (returned, panicked or been killed).
    pub fn ready(&self) -> bool {
        self.shared.result.borrow().is_some()
    }

    /// The same as [`ready`](Self::ready): it has finished and will never run again.
    pub fn is_dead(&self) -> bool {
        self.ready()
    }

    /// It finished by returning a value.
    pub fn successful(&self) -> bool {
        matches!(*self.shared.result.borrow(), Some(Ok(_)))
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
            self.shared.waiters.push(w);
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
    pub fn get(self) -> Result<T, GreenletError> {
        self.join()?;
        self.shared
            .result
            .borrow_mut()
            .take()
            .unwrap_or(Err(GreenletError::Killed))
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
    pub fn link(&self, f: impl FnOnce(&Result<T, GreenletError>) + 'static) {
        self.add_link(LinkOn::Any, Box::new(f));
    }

    /// Like [`link`](Self::link), only if it returned a value.
    pub fn link_value(&self, f: impl FnOnce(&T) + 'static) {
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
    pub fn link_error(&self, f: impl FnOnce(&GreenletError) + 'static) {
        self.add_link(
            LinkOn::Error,
            Box::new(move |r| {
                if let Err(e) = r {
                    f(e)
                }
            }),
        );
    }

    fn add_link(&self, on: LinkOn, f: LinkFn<T>) {
        if self.ready() {
            let r = self.shared.result.borrow();
            if let Some(r) = r.as_ref() {
                fire_link(&self.task, on, r, f);
            }
            return;
        }
        self.shared.links.borrow_mut().push((on, f));
    }
}

impl<T> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn watch(&self, watcher: &Watcher) {
        self.shared.waiters.watch(watcher);
    }
}

/// Waits until every greenlet in `gs` has finished, or `timeout` passes; returns whether all
/// finished.
pub fn joinall<T>(gs: &[Greenlet<T>], timeout: Option<Duration>) -> bool {
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
    joinall(gs, timeout)
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
                hub::try_current_task().is_some_and(|t| t.info.is_some() && !t.finished.get());
            if in_spawned {
                let at = info.location().map(|l| l.to_string());
                let _ = LAST_PANIC_AT.try_with(|c| *c.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

fn report_panic(me: &Task, message: &str) {
    let at = LAST_PANIC_AT
        .try_with(|c| c.borrow_mut().take())
        .ok()
        .flatten();
    let info = me.info.as_ref().expect("spawned greenlets have info");
    let report = PanicReport {
        id: me.id(),
        name: info.name.as_deref(),
        message,
        location: at.as_deref(),
        spawned_at: info.spawned_at,
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
