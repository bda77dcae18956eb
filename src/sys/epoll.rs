//! The epoll backend (Linux, Android; the default there).
//!
//! - Registration is `epoll_ctl` with level-triggered events (no `EPOLLET`, no
//!   `EPOLLONESHOT`): `EPOLLIN | EPOLLRDHUP` for readable, `EPOLLOUT` for writable. The kernel
//!   keeps the table, so `EEXIST`, `ENOENT` and `EBADF` come from it directly.
//! - The token is the event's 64-bit `data`; the wake-up uses the reserved token `usize::MAX`.
//! - Wake-up: an `eventfd(EFD_CLOEXEC | EFD_NONBLOCK)` registered for `EPOLLIN`. Notify adds 1
//!   to its counter, `wait` reads the counter back to 0.
//! - Timeouts: `epoll_wait` takes whole milliseconds, so a timeout with a fraction of a
//!   millisecond goes to `epoll_pwait2` (Linux 5.11), which takes a `timespec`: a sleep of
//!   200 µs then wakes after about 200 µs, not after 1 ms. A kernel without it (`ENOSYS`,
//!   also what valgrind and older qemu-user answer) is asked once; from then on this poller
//!   rounds up to whole milliseconds.

use super::{timeout_ms, Coalesce, Event, Events, Interest, MAX_TIMEOUT_SECS, NOTIFY_TOKEN};
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
    /// Whether to try `epoll_pwait2` for sub-millisecond timeouts: until it says `ENOSYS`.
    pwait2: bool,
}

/// The number of `epoll_pwait2`: 441 in both the x86_64 table and the generic one aarch64
/// uses (libc does not name it for every target, Android's among them).
const SYS_EPOLL_PWAIT2: libc::c_long = 441;

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
            pwait2: true,
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
        let fine = match timeout {
            Some(d) if self.pwait2 && d.subsec_nanos() % 1_000_000 != 0 => Some(d),
            _ => None,
        };
        let r = match fine.map(|d| self.pwait2(cap, d)) {
            Some(Err(e)) if e.raw_os_error() == Some(libc::ENOSYS) => {
                self.pwait2 = false;
                None
            }
            r => r,
        };
        let r = r.unwrap_or_else(|| {
            // SAFETY: `epfd` is open; `buf` holds `cap` writable epoll_events.
            unsafe {
                syscall!(epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    cap as libc::c_int,
                    timeout_ms(timeout)
                ))
            }
        });
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

    /// `epoll_pwait2` with the timeout `d` (clamped like every backend's) and no signal mask.
    fn pwait2(&mut self, cap: usize, d: Duration) -> io::Result<libc::c_int> {
        let ts = libc::timespec {
            tv_sec: d.as_secs().min(MAX_TIMEOUT_SECS) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `epfd` is open; `buf` holds `cap` writable epoll_events; `ts` is a valid
        // timespec that outlives the call; a null sigmask means "leave the mask alone" (its
        // size argument is then ignored).
        // (`syscall` returns a C long: `check` takes it as the ssize_t it is on these targets.)
        let n = crate::syscall::check(unsafe {
            libc::syscall(
                SYS_EPOLL_PWAIT2,
                self.epfd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                cap as libc::c_int,
                &ts as *const libc::timespec,
                core::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        } as libc::ssize_t)?;
        Ok(n as libc::c_int)
    }

    /// Whether this poller still uses `epoll_pwait2` for sub-millisecond timeouts (the
    /// kernel has not answered `ENOSYS`).
    #[cfg(test)]
    pub(crate) fn fine_timeouts(&self) -> bool {
        self.pwait2
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
