//! Subprocesses that greenlets wait for cooperatively (gevent's `gevent.subprocess`): std's
//! [`Command`] builder and [`Child`] API, with pipes that park the calling greenlet instead of
//! blocking the thread, and waits that let the hub run everything else meanwhile.
//!
//! ```
//! use grove::process::Command;
//!
//! let out = Command::new("sh")
//!     .args(["-c", "echo out; echo err >&2; exit 3"])
//!     .output() // reads stdout and stderr concurrently
//!     .unwrap();
//! assert_eq!(out.stdout, b"out\n");
//! assert_eq!(out.stderr, b"err\n");
//! assert_eq!(out.status.code(), Some(3));
//! ```
//!
//! # Rules
//!
//! * **Cooperative.** [`Child::wait`], [`Child::wait_timeout`], [`Command::status`],
//!   [`Command::output`] and every read or write of a child's pipes park only the calling
//!   greenlet. The pipes are grove's cooperative descriptors (the rules of `fd.rs`: timeouts,
//!   `EINTR` retried inside, one waiter per direction, fairness). Starting a child
//!   (`fork`/`exec`, done by std) is a short blocking call.
//! * **No zombies, ever.** Every child is reaped: when it is waited for, and also when its
//!   [`Child`] is dropped without waiting (killed or not, on any thread, even after the hub's
//!   thread has exited). How:
//!   - *Linux:* a `pidfd` (`pidfd_open(2)`) per child. `wait` parks until the pidfd is
//!     readable (the child has exited), then `waitpid`s it. A `Child` dropped unwaited is
//!     reaped at once if it has exited, else its pidfd is handed to grove's signal thread
//!     (see [`crate::signal`]), which watches it and reaps the child when it exits.
//!   - *Elsewhere (macOS, the BSDs), and on Linux without pidfds* (`ENOSYS`/`EPERM`, or out
//!     of descriptors for one child): a `SIGCHLD` watcher. Each child is put in a process-wide
//!     table as it starts; on every `SIGCHLD` the signal thread calls `waitpid(pid, WNOHANG)`
//!     for each child in the table and hands each exit status to its [`Child`] (which waits
//!     for it as an [`AsyncResult`](crate::AsyncResult)), or drops it if the `Child` is gone.
//!     Only the table's own pids are waited for, never `waitpid(-1)`, so children spawned by
//!     other code are left to it. Setting `GROVE_CHILD_WATCH=sigchld` in the environment
//!     selects this path on Linux too (for testing it).
//!
//!   (A `Child` that is never dropped is the exception on Linux: one leaked with
//!   `mem::forget`, or held by a greenlet still parked when its thread exits, since the hub
//!   then leaks what that greenlet holds. The `SIGCHLD` watcher reaps even those.)
//! * **Signals to children are race-free.** [`Child::kill`] and [`Child::send_signal`] only
//!   signal a pid that has not been reaped (so it cannot have been reused by another process);
//!   signalling a child that has exited and been reaped is `Ok(())`, as in std.
//! * Only grove reaps its children: code that reaps all children (`waitpid(-1)`, `SIGCHLD`
//!   set to `SIG_IGN`) takes their statuses away, and a wait then fails with `ECHILD`.
//! * Errors name the program and the pid.

use crate::fd::{self, Dir, Evented};
use crate::hub::event_loop as hub;
use crate::syscall::syscall;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

pub use std::process::{ExitStatus, Output, Stdio};

/// What reaping gives: the raw wait status, or the `errno` of a failed `waitpid`.
type Reaped = Result<libc::c_int, i32>;

/// `waitpid(pid, WNOHANG)`: `None` while the child runs.
fn waitpid_nohang(pid: libc::pid_t) -> Option<Reaped> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid place for waitpid to write; `pid` is a child of ours
        // that nobody else reaps (module rules), so it names no other process.
        let r = unsafe { syscall!(waitpid(pid, &mut status, libc::WNOHANG)) };
        match r {
            Ok(0) => return None,
            Ok(_) => return Some(Ok(status)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(Err(e.raw_os_error().unwrap_or(libc::ECHILD))),
        }
    }
}

// ---- Which watcher -------------------------------------------------------------------------

/// The environment variable that selects the `SIGCHLD` watcher on Linux (`sigchld`; `pidfd`,
/// the default, or unset, selects pidfds).
pub const CHILD_WATCH_ENV: &str = "GROVE_CHILD_WATCH";

#[cfg(target_os = "linux")]
mod pidfd {
    use super::CHILD_WATCH_ENV;
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const PIDFD: u8 = 1;
    const SIGCHLD: u8 = 2;

    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether to try pidfds (the environment says, the first time; a kernel without them
    /// turns them off for good).
    pub(super) fn enabled() -> bool {
        match MODE.load(Ordering::Relaxed) {
            PIDFD => true,
            SIGCHLD => false,
            _ => {
                let mode = match std::env::var_os(CHILD_WATCH_ENV) {
                    Some(v) if v == "sigchld" => SIGCHLD,
                    Some(v) if v == "pidfd" || v.is_empty() => PIDFD,
                    None => PIDFD,
                    Some(v) => {
                        eprintln!(
                            "grove: {CHILD_WATCH_ENV}={v:?} is not `pidfd` or `sigchld`; using pidfds"
                        );
                        PIDFD
                    }
                };
                MODE.store(mode, Ordering::Relaxed);
                mode == PIDFD
            }
        }
    }

    /// `pidfd_open(pid, 0)`. A kernel or sandbox without it (`ENOSYS`, `EPERM`) turns pidfds
    /// off for the rest of the process.
    pub(super) fn open(pid: libc::pid_t) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (close-on-exec
        // by definition) or -1 with errno; no memory is passed. The result is a descriptor
        // number or -1, so the cast to c_int loses nothing.
        let r = unsafe {
            crate::syscall::check(libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int)
        };
        match r {
            // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
            Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
                    MODE.store(SIGCHLD, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// The `SIGCHLD` watcher: the table of children being watched, swept on every `SIGCHLD`.
mod sigchld {
    use super::{waitpid_nohang, Reaped};
    use crate::sync::AsyncResult;
    use crate::syscall::syscall;
    use std::collections::HashMap;
    use std::io;
    use std::sync::{LazyLock, Mutex, MutexGuard};

    /// The children not yet reaped, each with the result its `Child` waits for. A pid is in
    /// the table exactly while it is not reaped, and reaped only under the table's lock, so a
    /// pid found here under the lock names our child, not a reused pid.
    static TABLE: LazyLock<Mutex<HashMap<libc::pid_t, AsyncResult<Reaped>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));

    /// Whether the SIGCHLD watcher is installed.
    static WATCHING: Mutex<bool> = Mutex::new(false);

    fn table() -> MutexGuard<'static, HashMap<libc::pid_t, AsyncResult<Reaped>>> {
        // Nothing panics under the lock (waitpid and map operations), so a poisoned lock
        // still holds consistent data.
        TABLE.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_watching() -> io::Result<()> {
        let mut w = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
        if !*w {
            crate::signal::watch_internal(libc::SIGCHLD, sweep)?;
            *w = true;
        }
        Ok(())
    }

    /// Starts watching `pid` (a child just started); its result is set when it is reaped.
    pub(super) fn track(pid: libc::pid_t) -> io::Result<AsyncResult<Reaped>> {
        ensure_watching()?;
        let r = AsyncResult::new();
        table().insert(pid, r.clone());
        // It may have exited before it was in the table: that SIGCHLD's sweep missed it.
        reap(pid);
        Ok(r)
    }

    /// Reaps `pid` now if it has exited (and is still in the table).
    pub(super) fn reap(pid: libc::pid_t) {
        let done = {
            let mut t = table();
            match waitpid_nohang_tracked(&t, pid) {
                Some(v) => t.remove(&pid).map(|r| (r, v)),
                None => None,
            }
        };
        if let Some((r, v)) = done {
            let _ = r.set(v);
        }
    }

    fn waitpid_nohang_tracked(
        t: &HashMap<libc::pid_t, AsyncResult<Reaped>>,
        pid: libc::pid_t,
    ) -> Option<Reaped> {
        if t.contains_key(&pid) {
            waitpid_nohang(pid)
        } else {
            None
        }
    }

    /// On the signal thread, for each `SIGCHLD`: reaps every child in the table that exited.
    /// (Results are set outside the lock: setting wakes greenlets through their hubs.)
    fn sweep() {
        let mut done = Vec::new();
        table().retain(|&pid, r| match waitpid_nohang(pid) {
            None => true,
            Some(v) => {
                done.push((r.clone(), v));
                false
            }
        });
        for (r, v) in done {
            let _ = r.set(v);
        }
    }

    /// Sends `signum` to `pid` if it has not been reaped; returns whether it was sent.
    pub(super) fn signal(pid: libc::pid_t, signum: libc::c_int) -> io::Result<bool> {
        let t = table();
        if !t.contains_key(&pid) {
            return Ok(false);
        }
        // SAFETY: kill takes no memory; `pid` is in the table under its lock, so it is our
        // child and not reaped (module rules): the pid cannot name another process.
        unsafe { syscall!(kill(pid, signum)) }?;
        Ok(true)
    }
}

/// How a child's exit is awaited.
enum Watch {
    /// Its pidfd: readable once it has exited.
    #[cfg(target_os = "linux")]
    PidFd(OwnedFd),
    /// Its entry in the `SIGCHLD` table.
    SigChld(crate::AsyncResult<Reaped>),
    /// Reaped (or gone: reaped elsewhere).
    Done,
}

impl Watch {
    fn new(pid: libc::pid_t) -> io::Result<Watch> {
        #[cfg(target_os = "linux")]
        if pidfd::enabled() {
            if let Ok(fd) = pidfd::open(pid) {
                return Ok(Watch::PidFd(fd));
            }
            // No pidfd for this child (out of descriptors, say, or no pidfds at all): the
            // SIGCHLD watcher takes it.
        }
        sigchld::track(pid).map(Watch::SigChld)
    }
}

// ---- Command -------------------------------------------------------------------------------

/// A process builder: std's [`std::process::Command`], whose `spawn`, `status` and `output`
/// give a cooperative [`Child`] (see the [module docs](self)).
pub struct Command {
    inner: std::process::Command,
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Command {
    /// A command to run `program` (looked up in `PATH` if it has no slash), with no
    /// arguments, the parent's environment and working directory, and (for
    /// [`spawn`](Self::spawn) and [`status`](Self::status)) the parent's stdin, stdout and
    /// stderr.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: std::process::Command::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Self::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin: [`Stdio::piped`] gives [`Child::stdin`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's stdout: [`Stdio::piped`] gives [`Child::stdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// The child's stderr: [`Stdio::piped`] gives [`Child::stderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// The program it runs.
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The std command inside.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std command inside, for what this type does not wrap (`std::os::unix::process::
    /// CommandExt`: `uid`, `process_group`, `pre_exec`...). Set stdin, stdout and stderr
    /// through this type, so that [`output`](Self::output) knows which ones you chose.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    fn program(&self) -> String {
        self.inner.get_program().to_string_lossy().into_owned()
    }

    /// Starts the child. Its stdin, stdout and stderr are the parent's unless set otherwise.
    ///
    /// Errors (the program is named in them): those of std's `spawn` (`NotFound` for a
    /// program that does not exist...).
    pub fn spawn(&mut self) -> io::Result<Child> {
        let program = self.program();
        let child = self.inner.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("grove: cannot start {program:?}: {e}"))
        })?;
        Child::adopt(child, program)
    }

    /// Runs the child to its end and gives its exit status. Stdin, stdout and stderr are the
    /// parent's unless set otherwise.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// Runs the child to its end, collecting its stdout and stderr (both read at once, so a
    /// child that fills one pipe while we read the other cannot deadlock). Unless set
    /// otherwise, stdout and stderr are piped and stdin is null (the child reads end of file).
    pub fn output(&mut self) -> io::Result<Output> {
        let defaults = (!self.stdin_set, !self.stdout_set, !self.stderr_set);
        if defaults.0 {
            self.inner.stdin(Stdio::null());
        }
        if defaults.1 {
            self.inner.stdout(Stdio::piped());
        }
        if defaults.2 {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.spawn();
        // Back to "not set" (the parent's, for spawn and status).
        if defaults.0 {
            self.inner.stdin(Stdio::inherit());
        }
        if defaults.1 {
            self.inner.stdout(Stdio::inherit());
        }
        if defaults.2 {
            self.inner.stderr(Stdio::inherit());
        }
        child?.wait_with_output()
    }
}

// ---- Child ---------------------------------------------------------------------------------

/// A running (or finished) child process: std's [`std::process::Child`], cooperative. See
/// the [module docs](self) for how it is reaped; dropping it without waiting never leaves a
/// zombie (the child is not killed: it runs on, and is reaped when it exits).
pub struct Child {
    /// Its stdin, if it was [`Stdio::piped`].
    pub stdin: Option<ChildStdin>,
    /// Its stdout, if it was [`Stdio::piped`].
    pub stdout: Option<ChildStdout>,
    /// Its stderr, if it was [`Stdio::piped`].
    pub stderr: Option<ChildStderr>,
    pid: libc::pid_t,
    program: String,
    status: Option<ExitStatus>,
    watch: Watch,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("program", &self.program)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Child {
    /// Takes over a child std just started.
    fn adopt(mut child: std::process::Child, program: String) -> io::Result<Child> {
        let pid = child.id() as libc::pid_t;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // std's Child does nothing when dropped (it neither waits nor kills): from here on,
        // the pid is ours to reap.
        drop(child);
        let watch = match Watch::new(pid) {
            Ok(w) => w,
            Err(e) => {
                // Nothing could watch it: do not leave it running unwatched, nor a zombie.
                // SAFETY: `pid` is our child, not reaped (no watcher has it): kill takes no
                // memory, and waitpid gets a valid place to write the status.
                unsafe {
                    let _ = syscall!(kill(pid, libc::SIGKILL));
                    let mut status = 0;
                    while let Err(e) = syscall!(waitpid(pid, &mut status, 0)) {
                        if e.kind() != io::ErrorKind::Interrupted {
                            break;
                        }
                    }
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("grove: cannot watch child {pid} ({program:?}) for its exit, so it was killed: {e}"),
                ));
            }
        };
        let mut c = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            pid,
            program,
            status: None,
            watch,
        };
        // (On failure `c` is dropped, which reaps the child in the background.)
        let wrap = |fd: OwnedFd| Evented::new(fd);
        if let Some(p) = stdin {
            c.stdin = Some(ChildStdin {
                ev: wrap(p.into()).map_err(|e| c.error("set up the stdin of", e))?,
            });
        }
        if let Some(p) = stdout {
            c.stdout = Some(ChildStdout {
                ev: wrap(p.into()).map_err(|e| c.error("set up the stdout of", e))?,
            });
        }
        if let Some(p) = stderr {
            c.stderr = Some(ChildStderr {
                ev: wrap(p.into()).map_err(|e| c.error("set up the stderr of", e))?,
            });
        }
        Ok(c)
    }

    fn error(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("grove: {what} child {} ({:?}): {e}", self.pid, self.program),
        )
    }

    fn reaped_elsewhere(&self) -> io::Error {
        self.error(
            "cannot wait for",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "it was reaped by other code (a waitpid(-1), or SIGCHLD set to SIG_IGN)",
            ),
        )
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Records what reaping gave, if anything.
    fn finish(&mut self, reaped: Option<Reaped>) -> io::Result<Option<ExitStatus>> {
        match reaped {
            None => Ok(None),
            Some(Ok(raw)) => {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                self.watch = Watch::Done;
                Ok(Some(s))
            }
            Some(Err(errno)) => {
                // ECHILD: somebody else reaped it. Either way it is not ours any more.
                self.watch = Watch::Done;
                Err(self.error("cannot wait for", io::Error::from_raw_os_error(errno)))
            }
        }
    }

    /// The exit status if the child has exited (reaping it), without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let reaped = match &self.watch {
            #[cfg(target_os = "linux")]
            Watch::PidFd(_) => waitpid_nohang(self.pid),
            Watch::SigChld(r) => {
                sigchld::reap(self.pid);
                match r.peek() {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => Some(Err(libc::ECHILD)),
                }
            }
            Watch::Done => return Err(self.reaped_elsewhere()),
        };
        self.finish(reaped)
    }

    /// Waits for the child to exit and gives its status; other greenlets run meanwhile. Closes
    /// [`stdin`](Self::stdin) first (as std does), so a child reading it sees end of file.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        match self.wait_for(None)? {
            Some(s) => Ok(s),
            None => unreachable!("a wait without a timeout ends with a status or an error"),
        }
    }

    /// [`wait`](Self::wait), at most `timeout`: `Ok(None)` if the child is still running
    /// then. Unlike `wait`, it leaves stdin open.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&mut self, timeout: Option<Duration>) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.try_wait()? {
            return Ok(Some(s));
        }
        let deadline = timeout.map(hub::deadline_after);
        loop {
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(hub::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            match &self.watch {
                #[cfg(target_os = "linux")]
                Watch::PidFd(fd) => match hub::wait_fd(fd.as_raw_fd(), false, left) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(self.error("waiting for", e)),
                },
                Watch::SigChld(r) => {
                    let set = match left {
                        None => r.wait().is_ok(),
                        Some(t) => r.wait_timeout(t),
                    };
                    if !set && left.is_none() {
                        return Err(self.error(
                            "waiting for",
                            io::Error::new(
                                io::ErrorKind::Interrupted,
                                "the wait was interrupted (a kill or timeout while unwinding)",
                            ),
                        ));
                    }
                }
                Watch::Done => return Err(self.reaped_elsewhere()),
            }
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
        }
    }

    /// Kills the child (`SIGKILL`). A child that has exited already is left alone: `Ok(())`.
    /// Call [`wait`](Self::wait) to reap it (or drop the `Child`: it is reaped in the
    /// background).
    pub fn kill(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Sends `signum` to the child (`kill(2)`), if it has not exited and been reaped
    /// (then `Ok(())`: the pid may already belong to another process, so nothing is sent).
    pub fn send_signal(&mut self, signum: libc::c_int) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let r = match &self.watch {
            #[cfg(target_os = "linux")]
            // SAFETY: kill takes no memory. The child is not reaped: only this `Child` reaps
            // it on this path, and it has not (no status), so the pid is still our child.
            Watch::PidFd(_) => unsafe { syscall!(kill(self.pid, signum)) }.map(|_| ()),
            Watch::SigChld(_) => sigchld::signal(self.pid, signum).map(|_| ()),
            Watch::Done => return Err(self.reaped_elsewhere()),
        };
        r.map_err(|e| {
            self.error(
                &format!("cannot send {} to", crate::signal::name(signum)),
                e,
            )
        })
    }

    /// Closes stdin, reads stdout and stderr to their ends (at once, from two greenlets, so
    /// neither pipe can fill up and stall the child), then waits for the child.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (out, err) = (self.stdout.take(), self.stderr.take());
        let (stdout, stderr) = match (out, err) {
            (None, None) => (Vec::new(), Vec::new()),
            (Some(o), None) => (self.read_pipe(o, "stdout")?, Vec::new()),
            (None, Some(e)) => (Vec::new(), self.read_pipe(e, "stderr")?),
            (Some(o), Some(e)) => {
                let helper = KillOnDrop(Some(crate::spawn(move || read_all(&e))));
                let stdout = self.read_pipe(o, "stdout")?;
                let stderr = match helper.take().get() {
                    Ok(r) => r.map_err(|e| self.error("reading the stderr of", e))?,
                    Err(e) => return Err(self.error("reading the stderr of", io::Error::other(e))),
                };
                (stdout, stderr)
            }
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn read_pipe(&self, p: impl Read, which: &str) -> io::Result<Vec<u8>> {
        read_all(p).map_err(|e| self.error(&format!("reading the {which} of"), e))
    }
}

/// Reads `p` to its end.
fn read_all(mut p: impl Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    p.read_to_end(&mut v)?;
    Ok(v)
}

/// Kills a helper greenlet that is still running when this drops (its waiter unwound).
struct KillOnDrop<T>(Option<crate::Greenlet<T>>);

impl<T> KillOnDrop<T> {
    fn take(mut self) -> crate::Greenlet<T> {
        self.0.take().expect("taken once")
    }
}

impl<T> Drop for KillOnDrop<T> {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.kill_nowait();
        }
    }
}

impl Drop for Child {
    /// Never leaves a zombie: a child that has exited is reaped now; one still running is
    /// reaped when it exits (see the module docs). The child is not killed.
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        match std::mem::replace(&mut self.watch, Watch::Done) {
            #[cfg(target_os = "linux")]
            Watch::PidFd(fd) => {
                let pid = self.pid;
                if waitpid_nohang(pid).is_some() {
                    return;
                }
                // The signal thread reaps it once its pidfd says it has exited.
                match crate::signal::service() {
                    Ok(s) => s.watch_fd(fd, Box::new(move || waitpid_nohang(pid).is_some())),
                    Err(_) => {
                        // No signal thread: a thread of its own waits for it.
                        let spawned = std::thread::Builder::new()
                            .name(format!("grove-reap-{pid}"))
                            .spawn(move || loop {
                                let mut status = 0;
                                // SAFETY: `pid` is our unreaped child, handed to this thread
                                // alone; `status` is a valid place to write.
                                match unsafe { syscall!(waitpid(pid, &mut status, 0)) } {
                                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                    _ => break,
                                }
                            });
                        if let Err(e) = spawned {
                            eprintln!("grove: child {pid} cannot be reaped ({e}); it will stay a zombie until this process exits");
                        }
                    }
                }
            }
            // Still in the SIGCHLD table: the sweep after it exits reaps it (and drops the
            // result nobody reads).
            Watch::SigChld(_) | Watch::Done => {}
        }
    }
}

// ---- Pipes ---------------------------------------------------------------------------------

macro_rules! pipe_end {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            ev: Evented<OwnedFd>,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.ev.raw()).finish()
            }
        }

        impl $name {
            /// Gives up the descriptor, blocking again (to pass to another child as its
            /// stdin, stdout or stderr: `Stdio::from(fd)`, or use `Stdio::try_from`).
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.ev.into_inner()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.ev.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.ev.raw()
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;
            /// The pipe as another child's stdio (blocking again, as a child expects).
            fn try_from(p: $name) -> io::Result<Stdio> {
                Ok(Stdio::from(p.into_owned_fd()?))
            }
        }
    };
}

macro_rules! read_end {
    ($name:ident) => {
        impl $name {
            /// A timeout for each read (`None`: wait forever); expiry is
            /// `ErrorKind::TimedOut`.
            pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                self.ev.set_timeout(Dir::Read, t)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> Option<Duration> {
                self.ev.read_timeout()
            }
        }

        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.ev.read(buf)
            }
        }

        impl Read for &$name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.ev.read(buf)
            }
        }
    };
}

pipe_end!(
    /// The write end of a child's stdin: writes park the calling greenlet while the pipe is
    /// full. Dropping it closes the pipe (the child reads end of file). Writing after the
    /// child closed its end fails with `BrokenPipe` (`SIGPIPE` stays ignored).
    ChildStdin
);
pipe_end!(
    /// The read end of a child's stdout: reads park the calling greenlet until data comes;
    /// end of file once the child (and whoever shares its stdout) has closed it.
    ChildStdout
);
pipe_end!(
    /// The read end of a child's stderr (like [`ChildStdout`]).
    ChildStderr
);
read_end!(ChildStdout);
read_end!(ChildStderr);

impl ChildStdin {
    /// A timeout for each write (`None`: wait forever); expiry is `ErrorKind::TimedOut`.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.ev.set_timeout(Dir::Write, t)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.ev.write_timeout()
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ev.write(buf)
    }
    /// Writes all of `buf`; a failure part way carries how much was written
    /// ([`PartialWrite`](crate::net::PartialWrite)).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        fd::write_all(|b| self.ev.write(b), buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ev.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        fd::write_all(|b| self.ev.write(b), buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
