//! The select backend: POSIX `select(2)`. For teaching: it is the oldest interface and the
//! plainest to read, and it shows why the others exist.
//!
//! - An `fd_set` is a bitmap of `FD_SETSIZE` (1024) bits; fds at or above it cannot be
//!   watched at all, so `add` refuses them with an error that names the alternatives.
//! - Like poll, the kernel keeps no registrations: the table (`table.rs`) does, and every wait
//!   builds the read and write sets from it (the self-pipe in the read set), and then tests
//!   every registered fd. The kernel's cost is linear in the *highest* fd.
//! - select tells only "a read (write) would not block": a hang-up or an error shows as
//!   readable (writable) and the caller learns which by reading (writing). So this backend
//!   never sets `hup` or `error`. (The third set, `exceptfds`, means out-of-band data on a
//!   socket, not an error; it is not used.)
//! - A registered fd that was closed makes the whole call fail with `EBADF`; the wait then
//!   reports each closed registered fd with `error` set, like poll's `POLLNVAL`.
//! - Wake-up: the self-pipe (`pipe.rs`).
//! - select takes a `timeval` in microseconds; the timeout is rounded up.

pub(crate) use super::pipe::NotifyHandle;
use super::pipe::SelfPipe;
use super::table::{check_open, Table};
use super::{Backend, Event, Events, Interest, MAX_TIMEOUT_SECS};
use crate::syscall::syscall;
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

/// A registration table and the self-pipe; the fd sets are built on the stack per wait.
#[derive(Debug)]
pub(crate) struct Poller {
    /// fd -> (token, interest).
    table: Table,
    /// The wake-up; its read end is always in the read set.
    pipe: SelfPipe,
}

impl Poller {
    /// An empty poller with its self-pipe (`InvalidInput` if the pipe's fds are themselves
    /// `>= FD_SETSIZE`).
    pub(crate) fn new() -> io::Result<Poller> {
        let pipe = SelfPipe::new()?;
        check_fd_setsize(pipe.read_fd())?;
        Ok(Poller {
            table: Table::default(),
            pipe,
        })
    }

    /// Registers `fd` (arguments already checked by the caller; `EBADF` if it is not open,
    /// `InvalidInput` if it is `>= FD_SETSIZE`).
    pub(crate) fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        check_open(fd)?;
        check_fd_setsize(fd)?;
        self.table.add(fd, token, interest)
    }

    /// Replaces the token and interest of `fd`.
    pub(crate) fn modify(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.table.modify(fd, token, interest).map(drop)
    }

    /// Unregisters `fd`.
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        self.table.delete(fd).map(drop)
    }

    /// Waits (see the contract in the module docs) and fills `events` (already cleared).
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // SAFETY: an fd_set is a plain bitmap; all-zero is the empty set (FD_ZERO below says
        // so again, for the reader).
        let (mut rset, mut wset): (libc::fd_set, libc::fd_set) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        let pipe_fd = self.pipe.read_fd();
        let mut max_fd = pipe_fd;
        // SAFETY: the sets are valid, and every fd put in them is in 0..FD_SETSIZE (checked
        // by `new` for the pipe and by `add` for the table).
        unsafe {
            libc::FD_ZERO(&mut rset);
            libc::FD_ZERO(&mut wset);
            libc::FD_SET(pipe_fd, &mut rset);
            for r in self.table.list() {
                if r.interest.readable {
                    libc::FD_SET(r.fd, &mut rset);
                }
                if r.interest.writable {
                    libc::FD_SET(r.fd, &mut wset);
                }
                max_fd = max_fd.max(r.fd);
            }
        }
        let mut tv;
        let tvp = match timeout {
            None => ptr::null_mut(),
            Some(d) => {
                tv = timeval(d);
                &mut tv as *mut libc::timeval
            }
        };
        // SAFETY: the sets are valid; `tvp` is null or points at `tv`, which outlives the call.
        let r = unsafe {
            syscall!(select(
                max_fd + 1,
                &mut rset,
                &mut wset,
                ptr::null_mut(),
                tvp
            ))
        };
        match r {
            Ok(0) => return Ok(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                return Ok(self.report_closed(events))
            }
            Err(e) => return Err(e),
        }
        // SAFETY: `rset` is a valid set and `pipe_fd < FD_SETSIZE`.
        if unsafe { libc::FD_ISSET(pipe_fd, &rset) } {
            self.pipe.drain();
        }
        let mut resume = None;
        for i in self.table.scan_order() {
            let r = self.table.list()[i];
            // SAFETY: the sets are valid and every registered fd is < FD_SETSIZE.
            let (readable, writable) = unsafe {
                (
                    r.interest.readable && libc::FD_ISSET(r.fd, &rset),
                    r.interest.writable && libc::FD_ISSET(r.fd, &wset),
                )
            };
            if !readable && !writable {
                continue;
            }
            if events.is_full() {
                break;
            }
            events.push(Event {
                readable,
                writable,
                ..Event::new(r.token)
            });
            resume = Some(i);
        }
        if let (true, Some(i)) = (events.is_full(), resume) {
            self.table.resume_after(i);
        }
        Ok(events.len())
    }

    /// After `EBADF`: reports every registered fd that is no longer open, with `error` set.
    fn report_closed(&mut self, events: &mut Events) -> usize {
        for i in self.table.scan_order() {
            let r = self.table.list()[i];
            if events.is_full() {
                break;
            }
            if check_open(r.fd).is_err() {
                events.push(Event {
                    readable: true,
                    writable: true,
                    error: true,
                    ..Event::new(r.token)
                });
            }
        }
        events.len()
    }

    /// The wake-up shared with notifiers.
    pub(crate) fn notify_handle(&self) -> &Arc<NotifyHandle> {
        self.pipe.handle()
    }
}

/// `InvalidInput` naming the limit and the alternatives if `fd` does not fit in an `fd_set`.
fn check_fd_setsize(fd: RawFd) -> io::Result<()> {
    if (fd as usize) < libc::FD_SETSIZE {
        return Ok(());
    }
    let other = if Backend::Epoll.is_available() {
        Backend::Epoll
    } else {
        Backend::Kqueue
    };
    let other = if other.is_available() {
        format!("poll or {other}")
    } else {
        "poll".to_string()
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "select backend: fd {fd} >= FD_SETSIZE ({}); use GROVE_LOOP={other}",
            libc::FD_SETSIZE
        ),
    ))
}

/// `d` as a `timeval`, rounded up to the microsecond and clamped to [`MAX_TIMEOUT_SECS`].
pub(super) fn timeval(d: Duration) -> libc::timeval {
    let (mut secs, mut micros) = if d.as_secs() >= MAX_TIMEOUT_SECS {
        (MAX_TIMEOUT_SECS, 0)
    } else {
        (d.as_secs(), d.subsec_nanos().div_ceil(1000))
    };
    if micros == 1_000_000 {
        secs += 1;
        micros = 0;
    }
    libc::timeval {
        tv_sec: secs as libc::time_t,
        tv_usec: micros as libc::suseconds_t,
    }
}
