//! The poll backend: POSIX `poll(2)`, on every Unix (the default where there is neither epoll
//! nor kqueue).
//!
//! - The kernel keeps no registrations: the table (`table.rs`) does, and every `wait` builds
//!   the `pollfd` array from it (the self-pipe first), so a wait costs time linear in the
//!   number of registered fds.
//! - Readable is `POLLIN` (plus `POLLRDHUP` on Linux and Android, to see a peer's half-close as
//!   a hang-up), writable is `POLLOUT`; `POLLHUP`, `POLLERR` and `POLLNVAL` are always reported
//!   by the kernel and are folded into both directions.
//! - Wake-up: the self-pipe (`pipe.rs`).
//! - `poll` takes whole milliseconds; the timeout is rounded up.

pub(crate) use super::pipe::NotifyHandle;
use super::pipe::SelfPipe;
use super::table::{check_open, Table};
use super::{timeout_ms, Event, Events, Interest};
use crate::syscall::syscall;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// The peer shut down its writing side (Linux only; elsewhere the kernel says `POLLHUP`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const POLLRDHUP: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const POLLRDHUP: libc::c_short = 0;

/// A registration table, the self-pipe, and a reusable `pollfd` array.
#[derive(Debug)]
pub(crate) struct Poller {
    /// fd -> (token, interest).
    table: Table,
    /// The wake-up; its read end is `fds[0]`.
    pipe: SelfPipe,
    /// Rebuilt on every wait: the self-pipe, then the table in order.
    fds: Vec<libc::pollfd>,
}

impl Poller {
    /// An empty poller with its self-pipe.
    pub(crate) fn new() -> io::Result<Poller> {
        Ok(Poller {
            table: Table::default(),
            pipe: SelfPipe::new()?,
            fds: Vec::new(),
        })
    }

    /// Registers `fd` (arguments already checked by the caller; `EBADF` if it is not open).
    pub(crate) fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        check_open(fd)?;
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
        self.fds.clear();
        self.fds.push(libc::pollfd {
            fd: self.pipe.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for r in self.table.list() {
            let mut mask = 0;
            if r.interest.readable {
                mask |= libc::POLLIN | POLLRDHUP;
            }
            if r.interest.writable {
                mask |= libc::POLLOUT;
            }
            self.fds.push(libc::pollfd {
                fd: r.fd,
                events: mask,
                revents: 0,
            });
        }
        // SAFETY: `fds` holds `fds.len()` valid, writable pollfds.
        let r = unsafe {
            syscall!(poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms(timeout)
            ))
        };
        match r {
            Ok(0) => return Ok(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        if self.fds[0].revents != 0 {
            self.pipe.drain();
        }
        let mut resume = None;
        for i in self.table.scan_order() {
            let revents = self.fds[i + 1].revents;
            if revents == 0 {
                continue;
            }
            if events.is_full() {
                break;
            }
            events.push(fold(self.table.list()[i].token, revents));
            resume = Some(i);
        }
        if let (true, Some(i)) = (events.is_full(), resume) {
            self.table.resume_after(i);
        }
        Ok(events.len())
    }

    /// The wake-up shared with notifiers.
    pub(crate) fn notify_handle(&self) -> &Arc<NotifyHandle> {
        self.pipe.handle()
    }
}

/// poll's bits as an [`Event`]: `POLLRDHUP` (peer shut down writing) is a readable hang-up;
/// `POLLHUP`, `POLLERR` and `POLLNVAL` (not an open fd) wake both directions.
fn fold(token: usize, revents: libc::c_short) -> Event {
    let has = |flag: libc::c_short| revents & flag != 0;
    let hup = has(libc::POLLHUP);
    let error = has(libc::POLLERR) || has(libc::POLLNVAL);
    let mut ev = Event::new(token);
    ev.readable = has(libc::POLLIN) || has(libc::POLLPRI) || has(POLLRDHUP) || hup || error;
    ev.writable = has(libc::POLLOUT) || hup || error;
    ev.hup = hup || has(POLLRDHUP);
    ev.error = error;
    ev
}
