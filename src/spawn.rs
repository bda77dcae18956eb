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
use crate::hub::event_loop::{self as hub, Task, Wake, Waker};
use crate::hub::timers::Deadline;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::Duration;

/// Why a greenlet produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreenletError {
    /// It panicked; the message, when the payload was a string.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// It was killed before it finished.
    Killed,
    /// Waiting for it would block forever: nothing left in the loop could ever finish it
    /// (gevent's `LoopExit`).
    WouldBlockForever,
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Panicked { message } => write!(f, "greenlet panicked: {message}"),
            GreenletError::Killed => f.write_str("greenlet was killed"),
            GreenletError::WouldBlockForever => f.write_str(
                "waiting would block forever: no greenlet is ready, no timer is pending and no I/O is awaited",
            ),
        }
    }
}

impl std::error::Error for GreenletError {}

struct Shared<T> {
    result: RefCell<Option<Result<T, GreenletError>>>,
    joiners: RefCell<Vec<Waker>>,
    name: Option<String>,
    spawned_at: &'static Location<'static>,
}

/// A greenlet scheduled on this thread's hub, producing a `T`.
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
        let spawned_at = Location::caller();
        let shared = Rc::new(Shared {
            result: RefCell::new(None),
            joiners: RefCell::new(Vec::new()),
            name: self.name.clone(),
            spawned_at,
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
            let outcome = match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => Ok(v),
                Err(p) if p.is::<GreenletExit>() => Err(GreenletError::Killed),
                Err(p) => Err(GreenletError::Panicked {
                    message: raw::panic_message(&*p),
                }),
            };
            *sh.result.borrow_mut() = Some(outcome);
            let joiners = std::mem::take(&mut *sh.joiners.borrow_mut());
            for w in joiners {
                w.wake(Wake::Ready);
            }
            Box::new(()) as Box<dyn Any>
        })?;
        let task = Task::new(raw);
        hub::schedule(task.clone());
        Ok(Greenlet { task, shared })
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

impl<T> Greenlet<T> {
    /// A number unique among the process's greenlets.
    pub fn id(&self) -> u64 {
        self.task.raw.id()
    }

    /// The name given at spawn.
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// Where it was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.shared.spawned_at
    }

    /// It has finished (returned, panicked or been killed).
    pub fn ready(&self) -> bool {
        self.shared.result.borrow().is_some()
    }

    /// It finished by returning a value.
    pub fn successful(&self) -> bool {
        matches!(*self.shared.result.borrow(), Some(Ok(_)))
    }

    /// Waits until it has finished; other greenlets run meanwhile. Errors with
    /// [`GreenletError::WouldBlockForever`] if nothing could ever finish it.
    pub fn join(&self) -> Result<(), GreenletError> {
        match self.wait(None) {
            Some(true) => Ok(()),
            _ => Err(GreenletError::WouldBlockForever),
        }
    }

    /// Waits at most `timeout`; returns whether it has finished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, GreenletError> {
        match self.wait(Some(timeout)) {
            Some(done) => Ok(done),
            None => Err(GreenletError::WouldBlockForever),
        }
    }

    /// `Some(finished)`, or `None` for LoopExit.
    fn wait(&self, timeout: Option<Duration>) -> Option<bool> {
        if self.ready() {
            return Some(true);
        }
        let timer = Cell::new(None);
        let why = hub::park(|w| {
            self.shared.joiners.borrow_mut().push(w.clone());
            if let Some(d) = timeout {
                let deadline = hub::with_hub(|h| Deadline::after(h.epoch.now(), d));
                timer.set(Some(hub::add_timer(deadline, w.clone())));
            }
        });
        if let Some(id) = timer.get() {
            hub::cancel_timer(id);
        }
        match why {
            Wake::LoopExit if !self.ready() => None,
            _ => Some(self.ready()),
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
