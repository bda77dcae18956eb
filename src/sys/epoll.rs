//! The epoll backend (Linux, Android; the default there).
//!
//! - Registration is `epoll_ctl` with level-triggered events (no `EPOLLET`, no
//!   `EPOLLONESHOT`): `EPOLLIN | EPOLLRDHUP` for readable, `EPOLLOUT` for writable. The kernel
//!   keeps the table, so `EEXIST`, `ENOENT` and `EBADF` come from it directly.
//! - The token is the event's 64-bit `data`; the wake-up uses the reserved token `usize::MAX`.
//! - Wake-up: an `eventfd(EFD_CLOEXEC | EFD_NONBLOCK)` registered for `EPOLLIN`. Notify adds 1
//!   to its counter, `wait` reads the counter back to 0.
//! - `epoll_wait` takes whole milliseconds; the timeout is rounded up.

use super::{timeout_ms, Coalesce, Event, Events, Interest, NOTIFY_TOKEN};
use crate::syscall::syscall;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// The eventfd every notifier of one epoll poller signals.
#[derive(Debug)]
pub(crate) struct NotifyHandle {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`, registered in the epoll set.
    efd: OwnedFd,
    /// Whether the counter is (about to be) non-zero and not yet drained.
    pending: Coalesce,
}

impl NotifyHandle {
    /// Wakes the poller's current or next `wait`. Callable from any thread; coalesces.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if !self.pending.arm() {
            return Ok(());
        }
        let one: u64 = 1;
        loop {
            // SAFETY: `efd` is an open eventfd owned by self; the buffer is 8 valid bytes, the
            // size an eventfd write requires.
            let r =
                unsafe { syscall!(write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8)) };
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The counter is at its maximum: certainly readable already.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    self.pending.disarm();
                    return Err(e);
                }
            }
        }
    }

    /// Resets the counter to 0, then re-arms the coalescing flag.
    fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: `efd` is an open eventfd owned by self; `count` is 8 writable bytes. The fd
        // is non-blocking: an empty counter is EAGAIN, which is fine.
        let _ = unsafe {
            syscall!(read(
                self.efd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                8
            ))
        };
        self.pending.reset();
    }
}

/// An epoll set with its wake-up eventfd and a reusable kernel event buffer.
#[derive(Debug)]
pub(crate) struct Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    epfd: OwnedFd,
    /// The wake-up, shared with every notifier.
    notify: Arc<NotifyHandle>,
    /// What `epoll_wait` fills; grown to the caller's [`Events::capacity`].
    buf: Vec<libc::epoll_event>,
}

impl Poller {
    /// A new epoll set with its eventfd registered.
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; we own the returned fd.
        let epfd = unsafe { OwnedFd::from_raw_fd(syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: eventfd takes no pointers; we own the returned fd.
        let efd = unsafe {
            OwnedFd::from_raw_fd(syscall!(eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK
            ))?)
        };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: NOTIFY_TOKEN as u64,
        };
        // SAFETY: both fds are open and owned by us; `ev` is a valid epoll_event.
        unsafe {
            syscall!(epoll_ctl(
                epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                efd.as_raw_fd(),
                &mut ev
            ))
        }?;
        Ok(Poller {
            epfd,
            notify: Arc::new(NotifyHandle {
                efd,
                pending: Coalesce::new(),
            }),
            buf: Vec::new(),
        })
    }

    /// `epoll_ctl(op)` with the event mask for `interest` and `token` as data.
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        let mut events = 0;
        if interest.readable {
            events |= libc::EPOLLIN | libc::EPOLLRDHUP;
        }
        if interest.writable {
            events |= libc::EPOLLOUT;
        }
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: token as u64,
        };
        // SAFETY: `epfd` is open; `ev` is a valid epoll_event; a bad `fd` is EBADF.
        unsafe { syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev)) }?;
        Ok(())
    }

    /// Registers `fd` (arguments already checked by the caller).
    pub(crate) fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Replaces the token and interest of `fd`.
    pub(crate) fn modify(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Unregisters `fd`.
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        // Kernels before 2.6.9 require a non-null event even for EPOLL_CTL_DEL.
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `epfd` is open; `ev` is a valid epoll_event; a bad `fd` is EBADF.
        unsafe {
            syscall!(epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                &mut ev
            ))
        }?;
        Ok(())
    }

    /// Waits (see the contract in the module docs) and fills `events` (already cleared).
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let cap = events.capacity().min(libc::c_int::MAX as usize);
        self.buf
            .resize(cap, libc::epoll_event { events: 0, u64: 0 });
        // SAFETY: `epfd` is open; `buf` holds `cap` writable epoll_events.
        let r = unsafe {
            syscall!(epoll_wait(
                self.epfd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                cap as libc::c_int,
                timeout_ms(timeout)
            ))
        };
        let n = match r {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        for ev in &self.buf[..n] {
            // Copies out of the (packed on x86_64) struct; no reference to a packed field.
            let (bits, data) = (ev.events, ev.u64);
            if data == NOTIFY_TOKEN as u64 {
                self.notify.drain();
                continue;
            }
            events.push(fold(data as usize, bits));
        }
        Ok(events.len())
    }

    /// The wake-up shared with notifiers.
    pub(crate) fn notify_handle(&self) -> &Arc<NotifyHandle> {
        &self.notify
    }
}

/// epoll's bits as an [`Event`]: `EPOLLRDHUP` (peer shut down writing) is a readable hang-up;
/// `EPOLLHUP` (both directions gone) and `EPOLLERR` wake both directions.
fn fold(token: usize, bits: u32) -> Event {
    let has = |flag: libc::c_int| bits & flag as u32 != 0;
    let hup = has(libc::EPOLLHUP);
    let error = has(libc::EPOLLERR);
    let mut ev = Event::new(token);
    ev.readable =
        has(libc::EPOLLIN) || has(libc::EPOLLPRI) || has(libc::EPOLLRDHUP) || hup || error;
    ev.writable = has(libc::EPOLLOUT) || hup || error;
    ev.hup = hup || has(libc::EPOLLRDHUP);
    ev.error = error;
    ev
}
