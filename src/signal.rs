//! Unix signals as greenlets: [`handle`] runs a closure in a new greenlet on the calling
//! thread's hub each time a signal arrives; [`wait`] parks the calling greenlet until one
//! does. gevent's `gevent.signal_handler`, in Rust idiom.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//!
//! let hits = Rc::new(Cell::new(0));
//! let h = hits.clone();
//! let handler = grove::signal::handle(grove::signal::SIGUSR1, move || h.set(h.get() + 1)).unwrap();
//! // SAFETY: kill(2) on our own process, with a signal that is now handled.
//! unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
//! while hits.get() == 0 {
//!     grove::sleep(std::time::Duration::from_millis(1)); // the handler runs meanwhile
//! }
//! handler.cancel(); // the previous disposition (here: the default) is back
//! ```
//!
//! # How a signal travels
//!
//! ```text
//!   any thread (the kernel picks it)     the signal thread ("grove-signal")    each registering hub
//!   ────────────────────────────────     ──────────────────────────────────    ────────────────────
//!   on_signal (async-signal-safe):       poll(2) on the self-pipe wakes;
//!     PENDING[sig] = true                drain the pipe; for each signal
//!     write(self-pipe, sig) (EAGAIN:     whose flag it swaps from true:
//!       a wake-up is pending anyway)       internal watchers (SIGCHLD reaper)
//!                                          for each registration:
//!                                            HubHandle::schedule(deliver) ──────> deliver: spawn a
//!                                                                                 greenlet running the
//!                                                                                 closure (or mark "again"
//!                                                                                 if one is running)
//! ```
//!
//! # Rules
//!
//! * **Where the closure runs.** On the hub of the thread that called [`handle`], in a new
//!   greenlet, so it may block (sleep, do I/O, take locks) like any greenlet. Several threads
//!   may handle the same signal: each registration runs on its own hub, once per delivery.
//!   Signals are process-wide and hubs come and go with their threads, so no hub owns the
//!   self-pipe: a small service thread, started by the first `handle`, reads it and forwards
//!   each delivery to the registering hub through that hub's [`HubHandle`] (its inbox and
//!   wake-up object). A registration whose hub's thread has exited is dropped. The closure
//!   starts when that hub next turns its loop, that is while the thread's greenlets wait (a
//!   thread busy outside grove runs it only once it waits again). A panic in it is reported
//!   like any greenlet's and does not stop later runs.
//! * **Bursts merge; the last signal is never lost.** The kernel itself merges pending
//!   instances of a standard signal, and so does grove: many deliveries while a run of the
//!   closure is pending or in progress cause one more run, not one each. But a signal that
//!   arrives during or after a run always causes another run that starts after it arrived.
//!   (The flag is set before the pipe is written; the service thread drains the pipe before
//!   it swaps the flags; a registration's "again" mark is cleared just before the closure is
//!   called.) Runs of one registration never overlap.
//! * **Cancel.** [`SignalHandler::cancel`] (or dropping the handler) removes the
//!   registration: the closure does not start again (a run in progress finishes). When no
//!   registration is left for the signal, the disposition that was there before the first
//!   one is put back (for example `SIGPIPE`'s "ignore", which Rust programs start with).
//!   grove replaces the previous disposition while it handles a signal; it does not chain to
//!   a previous handler.
//! * **A registered handler is a source of work.** While one exists, its hub does not report
//!   "would block forever" (LoopExit) to a waiting greenlet: the signal may still come.
//! * **Refused signals.** `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE` are faults, raised by
//!   the faulting thread and needed synchronously (grove's stack-overflow report and Rust's
//!   own stand on the first two); `SIGKILL` and `SIGSTOP` cannot be caught. [`handle`] refuses
//!   them with `ErrorKind::InvalidInput`.
//! * Handling a signal changes the whole process's disposition. Code elsewhere in the process
//!   that sets its own handler for the same signal meanwhile is overwritten on cancel.

use crate::hub::HubHandle;
use crate::syscall::syscall;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use libc::{
    SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// One more than the highest signal number grove can handle (covers every platform's real-time
/// signals: Linux's go to 64, FreeBSD's to 126).
const MAX_SIGNAL: usize = 128;

/// Per signal: set by the handler, swapped back to false by the service thread.
static PENDING: [AtomicBool; MAX_SIGNAL] = [const { AtomicBool::new(false) }; MAX_SIGNAL];

/// The self-pipe's write end, for the handler (-1 until the service thread exists). Published
/// before any handler is installed and never closed afterwards.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The ids of registrations (unique in the process).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// ---- The process-wide handler --------------------------------------------------------------

/// The address of the calling thread's `errno` (`None` on a platform grove does not know the
/// spelling for: there the handler cannot preserve it).
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: these functions only return the address of the calling thread's errno; they
    // are async-signal-safe (a thread-local's address).
    #[allow(unreachable_code)]
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "dragonfly"))]
        return Some(libc::__errno_location());
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        return Some(libc::__errno());
        #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
        return Some(libc::__error());
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        return Some(libc::___errno());
        None
    }
}

/// The handler installed (with `sigaction`, `SA_RESTART`) for every handled signal.
///
/// Async-signal-safety: it may interrupt any code on any thread, including malloc, a lock
/// holder or the hub itself, so it does only what POSIX allows there. It touches nothing but
/// lock-free atomics (std's atomic types exist only where the target has native instructions
/// for them, so they never hide a lock) and calls `write(2)`, which is on POSIX's
/// async-signal-safe list; `syscall::check` reads `errno` and builds an OS-error
/// `io::Error` inline, without allocating. It takes no lock, allocates nothing, does not
/// panic (the array index is checked), and saves and restores `errno`, so that the
/// interrupted code does not see it changed. The descriptor it writes to is published before
/// the handler is installed and never closed, and is non-blocking: a full pipe (`EAGAIN`)
/// means a wake-up is pending already, which is all the write is for.
extern "C" fn on_signal(signum: libc::c_int) {
    let errno = errno_location();
    // SAFETY: `errno` is the calling thread's errno location, valid for the thread's life.
    let saved = errno.map(|p| unsafe { *p });
    if let Some(flag) = usize::try_from(signum).ok().and_then(|i| PENDING.get(i)) {
        flag.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signum as u8;
        // SAFETY: write(2) is async-signal-safe; `fd` is the self-pipe's write end (open for
        // the rest of the process's life); the buffer is one valid byte. A failure (EAGAIN:
        // full, so a wake-up is pending) is ignored.
        let _ = unsafe { syscall!(write(fd, (&byte as *const u8).cast(), 1)) };
    }
    if let (Some(p), Some(v)) = (errno, saved) {
        // SAFETY: as above.
        unsafe { *p = v };
    }
}

/// The signals [`handle`] refuses, and why.
fn refused(signum: libc::c_int) -> Option<&'static str> {
    match signum {
        libc::SIGSEGV | libc::SIGBUS => Some(
            "it reports a fault, which grove's stack-overflow handler and Rust's own must see at once, on the faulting thread",
        ),
        libc::SIGILL | libc::SIGFPE => Some(
            "it reports a fault, which must be handled at once, on the faulting thread",
        ),
        libc::SIGKILL | libc::SIGSTOP => Some("the kernel does not let it be caught"),
        _ => None,
    }
}

/// A signal's usual name, for messages.
pub(crate) fn name(signum: libc::c_int) -> String {
    let known = match signum {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGBUS => "SIGBUS",
        libc::SIGWINCH => "SIGWINCH",
        _ => return format!("signal {signum}"),
    };
    known.to_string()
}

fn check_signum(signum: libc::c_int) -> io::Result<()> {
    if signum <= 0 || signum as usize >= MAX_SIGNAL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "grove: {signum} is not a signal number grove can handle (1 to {})",
                MAX_SIGNAL - 1
            ),
        ));
    }
    if let Some(why) = refused(signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("grove: {} cannot be handled: {why}", name(signum)),
        ));
    }
    Ok(())
}

// ---- The registry: who handles which signal ------------------------------------------------

/// One registration of a closure, on one hub.
struct Registration {
    id: u64,
    hub: HubHandle,
}

/// A signal grove handles: the disposition to put back, and who wants it.
struct Handled {
    signum: libc::c_int,
    previous: libc::sigaction,
    registrations: Vec<Registration>,
    /// grove's own watchers (the SIGCHLD reaper), run on the service thread; never removed.
    internal: Vec<fn()>,
}

// SAFETY: `libc::sigaction` is plain data (a handler address, a mask, flags; on some platforms
// a restorer function pointer): nothing in it is tied to a thread.
unsafe impl Send for Handled {}

static REGISTRY: Mutex<Vec<Handled>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Handled>> {
    // Nothing panics while holding the lock (it only moves values), so a poisoned lock still
    // holds consistent data.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs [`on_signal`] for `signum`; returns the action that was there.
fn install(signum: libc::c_int) -> io::Result<libc::sigaction> {
    PENDING[signum as usize].store(false, Ordering::SeqCst);
    // SAFETY: both sigaction structs are valid (zero-initialised, then filled in); the
    // handler is an `extern "C" fn(c_int)`, as sa_handler must be without SA_SIGINFO, and is
    // async-signal-safe (see `on_signal`).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        if signum == libc::SIGCHLD {
            action.sa_flags |= libc::SA_NOCLDSTOP;
        }
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        syscall!(sigaction(signum, &action, &mut previous)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("grove: cannot install a handler for {}: {e}", name(signum)),
            )
        })?;
        Ok(previous)
    }
}

/// Puts `previous` back as `signum`'s disposition.
fn restore(signum: libc::c_int, previous: &libc::sigaction) {
    // SAFETY: `previous` is the action sigaction gave us for this signal.
    let r = unsafe { syscall!(sigaction(signum, previous, ptr::null_mut())) };
    if let Err(e) = r {
        eprintln!(
            "grove: cannot restore the previous disposition of {}: {e}",
            name(signum)
        );
    }
}

/// Adds `add` to `signum`'s entry, installing the handler if it is the first.
fn register(signum: libc::c_int, add: impl FnOnce(&mut Handled)) -> io::Result<()> {
    service()?;
    let mut reg = registry();
    if let Some(h) = reg.iter_mut().find(|h| h.signum == signum) {
        add(h);
        return Ok(());
    }
    let previous = install(signum)?;
    let mut h = Handled {
        signum,
        previous,
        registrations: Vec::new(),
        internal: Vec::new(),
    };
    add(&mut h);
    reg.push(h);
    Ok(())
}

/// Removes registration `id` of `signum`; the last one out puts the previous disposition back.
fn unregister(signum: libc::c_int, id: u64) {
    let gone = {
        let mut reg = registry();
        let Some(i) = reg.iter().position(|h| h.signum == signum) else {
            return;
        };
        let h = &mut reg[i];
        let before = h.registrations.len();
        h.registrations.retain(|r| r.id != id);
        if h.registrations.len() == before {
            return;
        }
        if h.registrations.is_empty() && h.internal.is_empty() {
            let h = reg.swap_remove(i);
            restore(signum, &h.previous);
            Some(h)
        } else {
            None
        }
    };
    drop(gone); // the hub handles it held, outside the lock
}

/// Runs `f` on the signal thread each time `signum` arrives, for the rest of the process's
/// life (grove's own watchers: the SIGCHLD reaper of `process`).
pub(crate) fn watch_internal(signum: libc::c_int, f: fn()) -> io::Result<()> {
    register(signum, |h| {
        if !h.internal.contains(&f) {
            h.internal.push(f);
        }
    })
}

// ---- The service thread --------------------------------------------------------------------

/// A descriptor the service thread watches for readability, and what to do then: `ready`
/// returns whether the watch is over (else the descriptor is watched again).
struct FdWatch {
    fd: OwnedFd,
    ready: Box<dyn FnMut() -> bool + Send>,
}

/// The signal thread's shared state: the self-pipe's write end and the descriptors to add to
/// what it watches.
pub(crate) struct Service {
    wake: OwnedFd,
    added: Mutex<Vec<FdWatch>>,
}

/// The service thread, started on first use: it reads the self-pipe and dispatches signals,
/// and watches descriptors handed to it ([`Service::watch_fd`]: the pidfds of children whose
/// `Child` was dropped unwaited). Errors if it cannot be started (then it is tried again next
/// time).
pub(crate) fn service() -> io::Result<&'static Service> {
    static SLOT: Mutex<Option<&'static Service>> = Mutex::new(None);
    let mut slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = *slot {
        return Ok(s);
    }
    let (read, write) = crate::sys::nonblocking_pipe().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("grove: cannot create the signal pipe: {e}"),
        )
    })?;
    let wake_fd = write.as_raw_fd();
    let svc: &'static Service = Box::leak(Box::new(Service {
        wake: write,
        added: Mutex::new(Vec::new()),
    }));
    std::thread::Builder::new()
        .name("grove-signal".into())
        .spawn(move || svc.run(read))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("grove: cannot start the signal thread: {e}"),
            )
        })?;
    WAKE_FD.store(wake_fd, Ordering::SeqCst);
    *slot = Some(svc);
    Ok(svc)
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("wake", &self.wake.as_raw_fd())
            .finish()
    }
}

impl Service {
    /// Watches `fd` until it is readable, then runs `ready` (on the service thread; it must
    /// not block). If `ready` returns true the watch ends and `fd` is closed; else `fd` is
    /// watched again. (Used for Linux's pidfds; the SIGCHLD watcher elsewhere needs none.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn watch_fd(&self, fd: OwnedFd, ready: Box<dyn FnMut() -> bool + Send>) {
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(FdWatch { fd, ready });
        self.wake();
    }

    /// Makes the service thread's poll return.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn wake(&self) {
        let byte = 0u8;
        // SAFETY: the write end is open (owned by the service, which lives forever); one valid
        // byte. EAGAIN (full) means it will wake anyway; nothing else can fail here.
        let _ = unsafe { syscall!(write(self.wake.as_raw_fd(), (&byte as *const u8).cast(), 1)) };
    }

    /// The service thread's loop.
    fn run(&'static self, read: OwnedFd) {
        let mut watched: Vec<FdWatch> = Vec::new();
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        loop {
            pfds.clear();
            let fds =
                std::iter::once(read.as_raw_fd()).chain(watched.iter().map(|w| w.fd.as_raw_fd()));
            pfds.extend(fds.map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }));
            // SAFETY: `pfds` is a valid array of `pfds.len()` pollfds for the call; every fd in
            // it is open (owned by `read` or by `watched`).
            let r = unsafe { syscall!(poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1)) };
            match r {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Not expected (ENOMEM at worst): report it and try again shortly.
                    eprintln!("grove: the signal thread's poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
            if pfds[0].revents != 0 {
                drain(read.as_raw_fd());
            }
            // Ready watches, from the back, so that swap_remove moves only entries already seen.
            for i in (1..pfds.len()).rev() {
                if pfds[i].revents != 0 && (watched[i - 1].ready)() {
                    drop(watched.swap_remove(i - 1));
                }
            }
            // After the drain: a watch added before its wake-up byte was drained is seen now.
            watched.append(&mut self.added.lock().unwrap_or_else(|e| e.into_inner()));
            for (signum, flag) in PENDING.iter().enumerate().skip(1) {
                if flag.swap(false, Ordering::SeqCst) {
                    dispatch(signum as libc::c_int);
                }
            }
        }
    }
}

/// Empties the self-pipe.
fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: `fd` is the read end (open, owned by the service thread); `buf` is writable.
        let r = unsafe { syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())) };
        match r {
            Ok(n) if n as usize == buf.len() => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
}

/// On the service thread: `signum` arrived (at least once since the last dispatch).
fn dispatch(signum: libc::c_int) {
    let (internal, targets) = {
        let reg = registry();
        let Some(h) = reg.iter().find(|h| h.signum == signum) else {
            return;
        };
        let targets: Vec<(u64, HubHandle)> = h
            .registrations
            .iter()
            .map(|r| (r.id, r.hub.clone()))
            .collect();
        (h.internal.clone(), targets)
    };
    for f in internal {
        f();
    }
    for (id, hub) in targets {
        if hub.schedule(move || deliver(id)).is_err() {
            // The hub's thread has exited: nothing can run the closure any more.
            unregister(signum, id);
        }
    }
}

// ---- The hub's side ------------------------------------------------------------------------

/// A registration's closure and run state, on the hub that registered it.
struct Local {
    id: u64,
    signum: libc::c_int,
    f: Box<dyn Fn()>,
    /// A greenlet is running (or about to run) the closure.
    running: Cell<bool>,
    /// A delivery came since that run's closure was called: run again when it ends.
    again: Cell<bool>,
}

thread_local! {
    /// This thread's registrations, by id.
    static LOCAL: RefCell<HashMap<u64, Rc<Local>>> = RefCell::new(HashMap::new());
}

fn local(id: u64) -> Option<Rc<Local>> {
    LOCAL
        .try_with(|m| m.borrow().get(&id).cloned())
        .ok()
        .flatten()
}

/// On the registering hub (a job from the service thread): one delivery for registration `id`.
fn deliver(id: u64) {
    let Some(l) = local(id) else {
        return; // cancelled meanwhile
    };
    if l.running.get() {
        l.again.set(true);
    } else {
        start(l);
    }
}

/// Spawns a greenlet that runs `l`'s closure once.
fn start(l: Rc<Local>) {
    l.running.set(true);
    let signum = l.signum;
    let run = l.clone();
    let spawned = crate::Builder::new()
        .name(format!("{} handler", name(signum)))
        .spawn(move || {
            /// Ends the run, however the closure ends (returns, panics, is killed); starts
            /// the next one if a delivery came meanwhile.
            struct Finish(Rc<Local>);
            impl Drop for Finish {
                fn drop(&mut self) {
                    let l = &self.0;
                    l.running.set(false);
                    if l.again.get() && local(l.id).is_some() {
                        start(l.clone());
                    }
                }
            }
            let finish = Finish(run);
            // Cancelled between the spawn and now: the closure must not start after cancel.
            if local(finish.0.id).is_none() {
                return;
            }
            finish.0.again.set(false);
            (finish.0.f)();
        });
    if let Err(e) = spawned {
        l.running.set(false);
        eprintln!("grove: cannot start the {} handler: {e}", name(signum));
    }
}

/// A registered signal handler (see [`handle`]). Dropping it cancels it.
///
/// It belongs to the thread that registered it (it is neither `Send` nor `Sync`).
pub struct SignalHandler {
    id: u64,
    signum: libc::c_int,
    cancelled: Cell<bool>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for SignalHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalHandler")
            .field("signal", &name(self.signum))
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

impl SignalHandler {
    /// The signal it handles.
    pub fn signum(&self) -> libc::c_int {
        self.signum
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Removes the registration: the closure does not start again (a run in progress
    /// finishes). If it was the last registration for the signal, the disposition from before
    /// the first one is put back. Calling it again does nothing.
    pub fn cancel(&self) {
        if self.cancelled.replace(true) {
            return;
        }
        // Dropped outside the map's borrow: the closure's captures may run any code.
        let gone = LOCAL.try_with(|m| m.borrow_mut().remove(&self.id));
        drop(gone);
        unregister(self.signum, self.id);
    }
}

impl Drop for SignalHandler {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Runs `f` in a new greenlet on the calling thread's hub each time `signum` arrives, until
/// the returned handler is cancelled or dropped. See the [module docs](self) for how
/// deliveries merge and how several hubs share a signal.
///
/// Errors: `InvalidInput` for a signal grove refuses (`SIGSEGV`, `SIGBUS`, `SIGILL`,
/// `SIGFPE`, `SIGKILL`, `SIGSTOP`) or a number out of range; the OS error if the handler
/// cannot be installed or the signal thread cannot be started.
pub fn handle<F>(signum: libc::c_int, f: F) -> io::Result<SignalHandler>
where
    F: Fn() + 'static,
{
    check_signum(signum)?;
    let hub = crate::hub::handle();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let l = Rc::new(Local {
        id,
        signum,
        f: Box::new(f),
        running: Cell::new(false),
        again: Cell::new(false),
    });
    LOCAL.with(|m| m.borrow_mut().insert(id, l));
    if let Err(e) = register(signum, |h| h.registrations.push(Registration { id, hub })) {
        let gone = LOCAL.with(|m| m.borrow_mut().remove(&id));
        drop(gone);
        return Err(e);
    }
    Ok(SignalHandler {
        id,
        signum,
        cancelled: Cell::new(false),
        _not_send: PhantomData,
    })
}

/// Waits until `signum` arrives (at most `timeout`; `None` waits forever); returns whether it
/// did. Other greenlets run meanwhile. Only a signal that arrives after the call began counts.
/// The same errors as [`handle`].
pub fn wait(signum: libc::c_int, timeout: Option<Duration>) -> io::Result<bool> {
    let arrived = Rc::new(crate::Event::new());
    let a = arrived.clone();
    let handler = handle(signum, move || a.set())?;
    let got = match timeout {
        None => arrived.wait().is_ok(),
        Some(t) => arrived.wait_timeout(t),
    };
    drop(handler);
    Ok(got || arrived.is_set())
}
