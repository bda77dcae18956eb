//! The cooperative file descriptor: the one place where "would block" becomes "park this
//! greenlet until the hub says the descriptor is ready". Sockets (`net/`) and child-process
//! pipes (`process`) are thin types over [`Evented`], which wraps the object that owns the
//! descriptor (a std socket, a pipe's `OwnedFd`) and drives that object's own non-blocking
//! calls: std's socket calls already pick the right flags per platform (`MSG_NOSIGNAL`,
//! `SOCK_CLOEXEC`), so grove does not repeat them.
//!
//! # Rules
//!
//! * The descriptor is non-blocking and close-on-exec from the moment `Evented` owns it.
//! * An operation is tried first; only `EAGAIN`/`EWOULDBLOCK` parks the greenlet (until the
//!   poller reports the direction ready, or the timeout passes: `ErrorKind::TimedOut`).
//!   `EINTR` is retried at once, never reported. One exception, tokio's: after a stream read
//!   came back short (the receive buffer was emptied), the next read waits first, saving the
//!   `EAGAIN` system call that trying would almost surely cost; the level-triggered poller
//!   reports data that arrived in between at once.
//! * **One waiter per direction.** While a greenlet waits to read, another that tries to read
//!   gets `ErrorKind::ResourceBusy` at once (likewise for writing): two greenlets reading one
//!   socket would get interleaved data, which is never what anyone wants. (Greenlets never
//!   run at the same time, so an operation that completes without waiting cannot collide.)
//! * **Fairness.** An operation that completes at once does not switch; after a bounded run
//!   of them ([`IO_STREAK`](crate::hub::event_loop::IO_STREAK)) the greenlet yields, so one
//!   busy connection cannot starve the others.
//! * **Close.** [`Evented::close`] marks the descriptor closed, shuts a socket down, and wakes
//!   every greenlet waiting on it; each, and every later operation, gets
//!   `ErrorKind::NotConnected` ("closed while waiting"). The descriptor itself is freed when
//!   the owner is dropped, never while another greenlet may still be using its number.

use crate::hub::event_loop as hub;
use crate::hub::timers::Deadline;
use crate::syscall::syscall;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which way an operation moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// A non-blocking descriptor driven cooperatively, owned by `S`. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Evented<S: AsFd = OwnedFd> {
    /// Declared before `inner`: fields drop in order, so the hub forgets the descriptor's
    /// registration before `inner` closes it.
    reg: Registration,
    inner: S,
    closed: Cell<bool>,
    reading: Cell<bool>,
    writing: Cell<bool>,
    /// A stream read came back short: the receive buffer was empty then, so the next read
    /// waits for readiness instead of trying first (a try would almost surely be `EAGAIN`).
    drained: Cell<bool>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

/// This descriptor's identity in the hub's fd table: its poller registration outlives each
/// wait, and is deleted when this drops (see `hub/fds.rs`).
#[derive(Debug)]
struct Registration {
    fd: RawFd,
    owner: u64,
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

impl Drop for Registration {
    fn drop(&mut self) {
        hub::forget_fd(self.fd, self.owner);
    }
}

/// Clears a direction's busy flag when the wait ends (also when a kill unwinds it).
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns or borrows; no memory is passed.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
        let want = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if want != flags {
            syscall!(fcntl(fd, libc::F_SETFL, want))?;
        }
    }
    Ok(())
}

/// Sets `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor the caller owns; no memory is passed.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
        if flags & libc::FD_CLOEXEC == 0 {
            syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
        }
    }
    Ok(())
}

impl<S: AsFd> Evented<S> {
    /// Takes `inner` over: makes its descriptor non-blocking and close-on-exec.
    pub(crate) fn new(inner: S) -> io::Result<Evented<S>> {
        let fd = inner.as_fd().as_raw_fd();
        set_nonblocking(fd, true)?;
        set_cloexec(fd)?;
        Ok(Evented {
            reg: Registration {
                fd,
                owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            },
            inner,
            closed: Cell::new(false),
            reading: Cell::new(false),
            writing: Cell::new(false),
            drained: Cell::new(false),
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// Gives the owner back, its descriptor blocking again (e.g. to convert into a std type).
    pub(crate) fn into_inner(self) -> io::Result<S> {
        set_nonblocking(self.raw(), false)?;
        let Evented { reg, inner, .. } = self;
        drop(reg); // the hub forgets it: it leaves grove's hands
        Ok(inner)
    }

    /// The owner of the descriptor (its calls do not block).
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    /// The descriptor's number.
    pub(crate) fn raw(&self) -> RawFd {
        self.inner.as_fd().as_raw_fd()
    }

    /// The timeout for reads (and accepts); `None` waits forever.
    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    /// The timeout for writes (and connects); `None` waits forever.
    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// Sets a direction's timeout. A zero duration is refused, as std refuses it.
    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        if t == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: a zero timeout is not allowed (use None to wait forever)",
            ));
        }
        match dir {
            Dir::Read => self.read_timeout.set(t),
            Dir::Write => self.write_timeout.set(t),
        }
        Ok(())
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn closed_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::NotConnected,
            "grove: the socket was closed (close() was called on it)",
        )
    }

    /// Fails if closed.
    pub(crate) fn check_open(&self) -> io::Result<()> {
        if self.closed.get() {
            Err(Self::closed_error())
        } else {
            Ok(())
        }
    }

    /// Runs `op` until it does not report "would block", waiting for `dir` readiness in
    /// between (at most `timeout` in all). See the module rules.
    pub(crate) fn io<T>(
        &self,
        dir: Dir,
        timeout: Option<Duration>,
        mut op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        // The deadline is read from the clock only if the operation has to wait.
        let mut deadline = None;
        let mut waited = false;
        // After a short stream read, wait before the first try (see `drained`): the poller is
        // level-triggered, so data that arrived meanwhile is reported at once.
        let mut skip_try = dir == Dir::Read && self.drained.replace(false);
        loop {
            self.check_open()?;
            if !std::mem::take(&mut skip_try) {
                match op(&self.inner) {
                    Ok(v) => {
                        if !waited {
                            hub::note_immediate_io();
                        }
                        return Ok(v);
                    }
                    Err(e) => match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => {}
                        _ => return Err(e),
                    },
                }
            }
            if let Some(t) = timeout {
                let d = *deadline.get_or_insert_with(|| hub::deadline_after(t));
                if waited && d.saturating_duration_since(hub::now()).is_zero() {
                    return Err(timed_out(dir, timeout));
                }
            }
            self.wait_until(dir, deadline).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    timed_out(dir, timeout)
                } else {
                    e
                }
            })?;
            waited = true;
        }
    }

    /// Records that a stream read returned fewer bytes than asked for (the socket's receive
    /// buffer is empty now): the next read waits for readiness before trying.
    pub(crate) fn read_came_short(&self) {
        self.drained.set(true);
    }

    /// Waits until `dir` is ready (or `timeout`), as the only greenlet waiting that way.
    pub(crate) fn wait(&self, dir: Dir, timeout: Option<Duration>) -> io::Result<()> {
        self.wait_until(dir, timeout.map(hub::deadline_after))
    }

    /// [`wait`](Self::wait) until a deadline of the hub's clock. Always inlined, to keep a
    /// waiting greenlet's frames few (see `hub::event_loop::park`).
    #[inline(always)]
    fn wait_until(&self, dir: Dir, deadline: Option<Deadline>) -> io::Result<()> {
        let flag = match dir {
            Dir::Read => &self.reading,
            Dir::Write => &self.writing,
        };
        if flag.replace(true) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "grove: another greenlet is already waiting to {} fd {}; two greenlets cannot {} one socket at once",
                    if dir == Dir::Read { "read from" } else { "write to" },
                    self.raw(),
                    if dir == Dir::Read { "read" } else { "write" },
                ),
            ));
        }
        let _busy = Busy(flag);
        hub::wait_fd_owned(self.raw(), dir == Dir::Write, deadline, self.reg.owner)?;
        self.check_open()
    }

    /// Marks it closed, shuts a socket down (so its peer sees the end) and wakes every
    /// greenlet waiting on it. The descriptor stays allocated until the owner is dropped.
    pub(crate) fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        // SAFETY: shutdown on a descriptor we own; on a non-socket it fails with ENOTSOCK,
        // which is ignored (pipes are woken below all the same).
        unsafe {
            libc::shutdown(self.raw(), libc::SHUT_RDWR);
        }
        hub::wake_fd_waiters(self.raw());
    }
}

impl<S: AsFd> Evented<S>
where
    for<'a> &'a S: io::Read + io::Write,
{
    /// A stream read (std's, which knows the platform's flags), cooperatively, with the read
    /// timeout; a short read marks the socket drained (see `drained`).
    pub(crate) fn stream_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.io(Dir::Read, self.read_timeout(), |mut s| {
            io::Read::read(&mut s, buf)
        })?;
        if n > 0 && n < buf.len() {
            self.read_came_short();
        }
        Ok(n)
    }

    /// [`stream_read`](Self::stream_read) into several buffers.
    pub(crate) fn stream_read_vectored(
        &self,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let n = self.io(Dir::Read, self.read_timeout(), |mut s| {
            io::Read::read_vectored(&mut s, bufs)
        })?;
        if n > 0 && n < want {
            self.read_came_short();
        }
        Ok(n)
    }

    /// A stream write (std's: `MSG_NOSIGNAL` where it exists), cooperatively, with the
    /// write timeout.
    pub(crate) fn stream_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io(Dir::Write, self.write_timeout(), |mut s| {
            io::Write::write(&mut s, buf)
        })
    }

    /// [`stream_write`](Self::stream_write) from several buffers. Not std's `write_vectored`:
    /// that is `writev`, which has no `MSG_NOSIGNAL`, so a peer gone away would raise
    /// `SIGPIPE` in a process that has not ignored it (a C host embedding grove, say). This is
    /// `sendmsg` with the flag; Apple platforms have no such flag, and rely on
    /// `SO_NOSIGPIPE` on the socket instead.
    pub(crate) fn stream_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.io(Dir::Write, self.write_timeout(), |s| {
            #[cfg(not(target_vendor = "apple"))]
            {
                socket2::SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            }
            #[cfg(target_vendor = "apple")]
            {
                let mut s = s;
                io::Write::write_vectored(&mut s, bufs)
            }
        })
    }
}

impl<S: AsFd> AsFd for Evented<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Evented<OwnedFd> {
    /// `read(2)`, cooperatively, with the read timeout.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io(Dir::Read, self.read_timeout(), |fd| {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call, and `fd`
            // is open (we own it).
            let n = unsafe { syscall!(read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())) }?;
            Ok(n as usize)
        })
    }

    /// `write(2)`, cooperatively, with the write timeout. (A pipe whose reader is gone
    /// fails with `EPIPE`; Rust programs ignore `SIGPIPE` from the start, and grove never
    /// changes that.)
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io(Dir::Write, self.write_timeout(), |fd| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call, and `fd`
            // is open (we own it).
            let n = unsafe { syscall!(write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len())) }?;
            Ok(n as usize)
        })
    }
}

/// The error for an operation that ran out of time.
fn timed_out(dir: Dir, timeout: Option<Duration>) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "grove: {} timed out after {:?}",
            if dir == Dir::Read { "read" } else { "write" },
            timeout.unwrap_or_default()
        ),
    )
}

/// A write that failed part way: how much had been written, and why it stopped. Carried
/// inside the `io::Error` that `write_all` returns (same kind as the cause), so a caller
/// can learn how much of its buffer was sent:
///
/// ```
/// use grove::net::PartialWrite;
/// # let e = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// let sent = PartialWrite::written_in(&e).unwrap_or(0);
/// # assert_eq!(sent, 0);
/// ```
#[derive(Debug)]
pub struct PartialWrite {
    /// Bytes written before the failure.
    pub written: usize,
    /// The error that stopped it.
    pub error: io::Error,
}

impl PartialWrite {
    /// Wraps `error` after `written` bytes.
    pub(crate) fn into_io(written: usize, error: io::Error) -> io::Error {
        io::Error::new(error.kind(), PartialWrite { written, error })
    }

    /// How much a failed `write_all` had written, if `e` came from one.
    pub fn written_in(e: &io::Error) -> Option<usize> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<PartialWrite>())
            .map(|p| p.written)
    }
}

impl std::fmt::Display for PartialWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grove: write failed after {} bytes: {}",
            self.written, self.error
        )
    }
}

impl std::error::Error for PartialWrite {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// `write_all` over a cooperative `write`: on failure part way, the error carries how much
/// was written ([`PartialWrite`]). Writing zero bytes of a non-empty buffer is `WriteZero`.
pub(crate) fn write_all(
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    buf: &[u8],
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match write(&buf[done..]) {
            Ok(0) => {
                return Err(PartialWrite::into_io(
                    done,
                    io::Error::new(
                        io::ErrorKind::WriteZero,
                        "grove: the peer accepted no more bytes",
                    ),
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PartialWrite::into_io(done, e)),
        }
    }
    Ok(())
}
