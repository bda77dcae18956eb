//! Reaching a hub from other threads: [`HubHandle`] runs a callback on the hub's thread, and
//! [`RemoteWaker`] ends one particular wait of one greenlet there. Both go through [`Remote`],
//! the one `Send + Sync` part of a hub: a mutex-protected inbox and the poller's wake-up
//! object (an eventfd, a self-pipe or `EVFILT_USER`).
//!
//! # How a cross-thread wake-up travels
//!
//! ```text
//!   hub thread                                   any thread
//!   ──────────                                   ──────────
//!   park: register a Target (a Waker or a
//!   Watcher) in the hub's table  -> token ──────> RemoteWaker { remote, token }  (Send)
//!   switch to the hub, which polls               ...
//!                                                RemoteWaker::wake():
//!                                                  inbox.wakes.push(token), pending = true,
//!                                                  notify the poller (one syscall per drain)
//!   the poll returns; loop step 1 drains the
//!   inbox: table.remove(token) -> fire it
//! ```
//!
//! # Rules
//!
//! * **No lost wake-up.** A token is pushed under the inbox lock and `pending` is set before
//!   the poller is notified; the hub clears `pending` before it drains. A notify that races
//!   with the hub entering its poll is kept by the wake-up object until that poll consumes it
//!   (the poller contract in `sys/mod.rs`).
//! * **Woken at most once, never late-woken.** A target leaves the table when it fires and
//!   when its wait ends otherwise (the [`RemoteGuard`] the waiting side holds drops it), so a
//!   token that arrives after the wait ended finds nothing and does nothing; a waker that
//!   fires for a wait already over is stale anyway (the hub's park generations).
//! * **Same thread, no system call.** A `RemoteWaker` woken on its own hub's thread fires the
//!   target at once, as a local wake-up would.
//! * **A hub that is gone** drops tokens and refuses callbacks with an error: its thread has
//!   exited and nothing waits there any more.
//! * While a target is registered, or a `HubHandle` or `RemoteWaker` exists, the hub counts
//!   it as a possible source of work: it does not report LoopExit to a greenlet that something
//!   elsewhere may still wake. The registered targets are the race-free part of that rule
//!   (only the hub's thread adds and removes them); for handles, the count is read before the
//!   inbox flag (see `has_sources`), so a handle dropped right after sending is not missed.

use super::event_loop::{with_hub, Wake, Waker};
use crate::sys::Notifier;
use crate::wait::Watcher;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The `Send + Sync` part of a hub: work and wake-ups sent from other threads.
pub(crate) struct Remote {
    inbox: Mutex<Inbox>,
    /// Set (after pushing) by senders, cleared by the hub before it drains the inbox.
    pub(crate) pending: AtomicBool,
}

/// What other threads sent, and how to wake the hub (`None` once its thread has exited: the
/// kernel object is closed then, and sends fail).
struct Inbox {
    jobs: Vec<Box<dyn FnOnce() + Send>>,
    wakes: Vec<u64>,
    notifier: Option<Notifier>,
}

/// What the hub drains from its inbox in one go.
pub(crate) struct Drained {
    pub(crate) jobs: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) wakes: Vec<u64>,
}

impl Remote {
    pub(crate) fn new(notifier: Notifier) -> Remote {
        Remote {
            inbox: Mutex::new(Inbox {
                jobs: Vec::new(),
                wakes: Vec::new(),
                notifier: Some(notifier),
            }),
            pending: AtomicBool::new(false),
        }
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // A sender cannot panic while holding the lock (it only pushes), so a poisoned lock
        // still holds consistent data.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes with `push` under the lock and wakes the hub. Errors if the hub's thread has
    /// exited (then `push` is not called).
    fn deliver(&self, push: impl FnOnce(&mut Inbox)) -> io::Result<()> {
        let mut q = self.inbox();
        let Some(n) = &q.notifier else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "grove: the hub's thread has exited; nothing can run there any more",
            ));
        };
        let n = n.clone();
        push(&mut q);
        drop(q);
        self.pending.store(true, Ordering::Release);
        n.notify()
    }

    /// Queues `f` to run on the hub's thread and wakes the hub.
    pub(crate) fn send(&self, f: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        self.deliver(|q| q.jobs.push(f))
    }

    /// Takes everything queued (the hub has just cleared `pending`).
    pub(crate) fn drain(&self) -> Drained {
        let mut q = self.inbox();
        Drained {
            jobs: std::mem::take(&mut q.jobs),
            wakes: std::mem::take(&mut q.wakes),
        }
    }

    /// Closes the wake-up object and drops what is queued (the hub's thread is exiting).
    pub(crate) fn close(&self) {
        let mut q = self.inbox();
        q.notifier = None;
        q.jobs.clear();
        q.wakes.clear();
    }
}

/// What a token stands for on the hub's thread.
pub(crate) enum Target {
    /// End a parked greenlet's wait with [`Wake::Ready`].
    Park(Waker),
    /// Tell a `wait_any`/`iwait` that its object is ready.
    Watch(Watcher),
}

impl Target {
    fn fire(self) {
        match self {
            Target::Park(w) => {
                w.wake(Wake::Ready);
            }
            Target::Watch(w) => {
                w.notify();
            }
        }
    }

    fn is_spent(&self) -> bool {
        match self {
            Target::Park(w) => w.is_stale(),
            Target::Watch(w) => w.is_dropped(),
        }
    }
}

/// The hub's table of targets that other threads may fire, by token. Lives in the hub (it
/// holds `Rc`s), used only on the hub's thread.
#[derive(Default)]
pub(crate) struct Targets {
    map: RefCell<HashMap<u64, Target>>,
    next: Cell<u64>,
    /// Prune spent targets when the table reaches this size (doubles after each prune): a
    /// watcher whose `iwait` ended without its object becoming ready leaves no guard behind.
    prune_at: Cell<usize>,
}

impl Targets {
    fn insert(&self, t: Target) -> u64 {
        let token = self.next.get();
        self.next.set(token + 1);
        let mut m = self.map.borrow_mut();
        if m.len() >= self.prune_at.get().max(64) {
            m.retain(|_, t| !t.is_spent());
            self.prune_at.set(m.len() * 2);
        }
        m.insert(token, t);
        token
    }

    fn remove(&self, token: u64) -> Option<Target> {
        self.map.borrow_mut().remove(&token)
    }

    /// Fires the target of `token`, if it is still there. The table's borrow ends first:
    /// firing may run code that registers or removes targets.
    pub(crate) fn fire(&self, token: u64) {
        let t = self.remove(token);
        if let Some(t) = t {
            t.fire();
        }
    }

    /// Whether any live target is registered (some greenlet may be woken from another
    /// thread). Walks the table: asked only when the hub is about to conclude LoopExit.
    pub(crate) fn registered(&self) -> bool {
        self.map.borrow().values().any(|t| !t.is_spent())
    }

    pub(crate) fn clear(&self) {
        let m = std::mem::take(&mut *self.map.borrow_mut());
        drop(m);
    }
}

/// A `Send` wake-up for one wait of one greenlet (or one watcher) on some hub: see the
/// [module docs](self). Waking it after the wait ended does nothing.
pub(crate) struct RemoteWaker {
    remote: Arc<Remote>,
    token: u64,
}

impl fmt::Debug for RemoteWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteWaker({})", self.token)
    }
}

impl RemoteWaker {
    /// Registers `target` on this thread's hub; the guard unregisters it when dropped (the
    /// waiting side drops it when its wait ends, however it ends).
    pub(crate) fn register(target: Target) -> (RemoteWaker, RemoteGuard) {
        with_hub(|h| {
            let token = h.targets.insert(target);
            (
                RemoteWaker {
                    remote: h.remote.clone(),
                    token,
                },
                RemoteGuard(token),
            )
        })
    }

    /// Registers a watcher (`wait_any`/`iwait`) on this thread's hub, with no guard: the
    /// watcher's `iwait` may end first, and the table drops spent watchers as it grows.
    pub(crate) fn register_watch(w: Watcher) -> RemoteWaker {
        with_hub(|h| RemoteWaker {
            remote: h.remote.clone(),
            token: h.targets.insert(Target::Watch(w)),
        })
    }

    /// Fires the target: at once if called on its hub's thread, else through the hub's inbox.
    /// A hub whose thread has exited is ignored (nothing waits there any more).
    pub(crate) fn wake(self) {
        if is_this_thread(&self.remote) {
            with_hub(|h| h.targets.fire(self.token));
        } else {
            let token = self.token;
            let _ = self.remote.deliver(|q| q.wakes.push(token));
        }
    }
}

/// Unregisters a [`RemoteWaker`]'s target when dropped.
pub(crate) struct RemoteGuard(u64);

impl Drop for RemoteGuard {
    fn drop(&mut self) {
        let t = with_hub(|h| h.targets.remove(self.0));
        drop(t);
    }
}

/// Whether `remote` belongs to the calling thread's hub (never creates a hub).
fn is_this_thread(remote: &Arc<Remote>) -> bool {
    super::event_loop::this_thread_remote().is_some_and(|r| std::ptr::eq(r, Arc::as_ptr(remote)))
}

/// A `Send` handle to a hub: lets any thread run a callback on the hub's thread. The hub
/// wakes at once (eventfd, pipe or `EVFILT_USER`); no wake-up is lost. While a handle exists
/// the hub treats it as a possible source of work (it will not report LoopExit).
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) remote: Arc<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubHandle")
    }
}

impl HubHandle {
    /// Runs `f` on the hub's thread, in the hub, at its next loop turn. `f` must not block
    /// (spawn a greenlet from it for anything that waits). Errors if the hub's thread has
    /// exited.
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
