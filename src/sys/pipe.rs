//! The self-pipe: the wake-up mechanism of the `poll` and `select` backends (which have no
//! kernel object of their own to signal).
//!
//! A non-blocking, close-on-exec pipe. [`NotifyHandle::notify`] writes one byte to the write
//! end, at most once between two drains (see [`Coalesce`]); the poller watches the read end
//! and [`SelfPipe::drain`]s it inside `wait`. A full pipe (`EAGAIN` on write) already means
//! "wake up", so it is not an error. The handle owns *both* ends, so a notifier that outlives
//! its poller never writes into a pipe without a reader (no `EPIPE`, no `SIGPIPE`).

use super::Coalesce;
use crate::syscall::syscall;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// The self-pipe, shared by the poller and every [`super::Notifier`].
#[derive(Debug)]
pub(crate) struct NotifyHandle {
    /// Read end: non-blocking, close-on-exec; the poller watches it for readability.
    read: OwnedFd,
    /// Write end: non-blocking, close-on-exec.
    write: OwnedFd,
    /// Whether a byte is (about to be) in the pipe and not yet drained.
    pending: Coalesce,
}

impl NotifyHandle {
    /// Wakes the poller's current or next `wait`. Callable from any thread; coalesces.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if !self.pending.arm() {
            return Ok(());
        }
        let byte = 1u8;
        loop {
            // SAFETY: `write` is an open fd owned by self; the buffer is one valid byte.
            let r = unsafe {
                syscall!(write(
                    self.write.as_raw_fd(),
                    (&byte as *const u8).cast(),
                    1
                ))
            };
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The pipe is full: the reader will certainly wake.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    self.pending.disarm();
                    return Err(e);
                }
            }
        }
    }
}

/// The poller's side of the self-pipe: reading and draining.
#[derive(Debug)]
pub(crate) struct SelfPipe {
    /// Both ends and the coalescing flag, shared with the notifiers.
    handle: Arc<NotifyHandle>,
}

impl SelfPipe {
    /// A fresh pipe, both ends non-blocking and close-on-exec.
    pub(crate) fn new() -> io::Result<SelfPipe> {
        let (read, write) = nonblocking_pipe()?;
        Ok(SelfPipe {
            handle: Arc::new(NotifyHandle {
                read,
                write,
                pending: Coalesce::new(),
            }),
        })
    }

    /// The fd the poller must watch for readability.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.handle.read.as_raw_fd()
    }

    /// The shared write end.
    pub(crate) fn handle(&self) -> &Arc<NotifyHandle> {
        &self.handle
    }

    /// Empties the pipe, then re-arms the coalescing flag (in that order: a notify racing with
    /// the drain either sees the flag still set, and is absorbed by the `wait` now returning,
    /// or writes a byte that the next `wait` sees).
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: the read end is open (owned by the handle); `buf` is 64 writable bytes.
            let r = unsafe { syscall!(read(self.read_fd(), buf.as_mut_ptr().cast(), buf.len())) };
            match r {
                Ok(n) if n as usize == buf.len() => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Short read, EOF (impossible: we hold the write end) or EAGAIN: empty.
                _ => break,
            }
        }
        self.handle.pending.reset();
    }
}

/// `pipe2(O_CLOEXEC | O_NONBLOCK)`, or `pipe` then `fcntl` where there is no `pipe2` (Apple).
/// Also the signal module's self-pipe.
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    #[cfg(not(target_vendor = "apple"))]
    {
        // SAFETY: pipe2 writes two fds into the 2-element array.
        unsafe { syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK)) }?;
    }
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY: pipe writes two fds into the 2-element array.
        unsafe { syscall!(pipe(fds.as_mut_ptr())) }?;
    }
    // SAFETY: both fds were just created by pipe(2) and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(target_vendor = "apple")]
    {
        // (Not atomic with the pipe's creation: a fork+exec on another thread in between
        // could inherit the fds. Apple has no pipe2.)
        set_cloexec(read.as_raw_fd())?;
        set_cloexec(write.as_raw_fd())?;
        set_nonblocking(read.as_raw_fd())?;
        set_nonblocking(write.as_raw_fd())?;
    }
    Ok((read, write))
}

/// Sets `FD_CLOEXEC` on `fd`.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor's flags; a bad fd is EBADF.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
        syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// Sets `O_NONBLOCK` on `fd`.
#[cfg(target_vendor = "apple")]
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and write the file status flags; a bad fd is EBADF.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
        syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}
