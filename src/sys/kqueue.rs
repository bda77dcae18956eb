//! The kqueue backend (macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly; the default there).
//!
//! - kqueue watches *filters*, not fds: readable is an `EVFILT_READ` filter on the fd,
//!   writable an `EVFILT_WRITE` filter, each added without `EV_CLEAR` (so level-triggered) and
//!   carrying the token in `udata`. `modify` adds the filters the new interest wants (which
//!   also updates their token) and deletes the ones it drops.
//! - Registration changes are submitted with `EV_RECEIPT`: the kernel answers each change with
//!   its own error code and does not hand out pending events in the same call.
//! - kqueue reports an fd's read and write filters as separate events; `wait` merges them into
//!   one [`Event`] per fd. `EV_EOF` on either filter is a hang-up (`fflags` then holds a
//!   pending socket error, if any).
//! - kqueue knows filters, not fds: `EV_ADD` on a registered fd silently updates it, and it
//!   cannot say which filters an fd has. So a table (`table.rs`) remembers each fd's interest,
//!   to give epoll's `EEXIST`/`ENOENT` and to know which filters `modify` must delete.
//! - `EPIPE` on registering `EVFILT_WRITE` (macOS, a pipe whose reader is gone) is returned
//!   to the caller, not ignored as mio does: a waiting writer would otherwise never be woken.
//! - Wake-up: an `EVFILT_USER` event (ident 0) added with `EV_CLEAR`; notify triggers it with
//!   `NOTE_TRIGGER`, and retrieving it in `wait` resets it. No extra fd.
//! - The kqueue fd is made close-on-exec with `fcntl` (kqueues are never inherited by a
//!   forked child anyway).
//! - `kevent` takes a `timespec`: nanosecond resolution, no rounding needed.
//!
//! `struct kevent` differs between systems (FreeBSD 12+ adds an `ext` array, NetBSD uses
//! wider integer fields), so events are built from `mem::zeroed()` and field by field.

use super::pipe::set_cloexec;
use super::table::Table;
use super::{Coalesce, Event, Events, Interest, MAX_TIMEOUT_SECS, NOTIFY_TOKEN};
use crate::syscall::syscall;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

/// The type of `kevent::filter` (`u32` on NetBSD).
#[cfg(target_os = "netbsd")]
type Filter = u32;
#[cfg(not(target_os = "netbsd"))]
type Filter = i16;

/// The type of `kevent::flags` (`u32` on NetBSD).
#[cfg(target_os = "netbsd")]
type Flags = u32;
#[cfg(not(target_os = "netbsd"))]
type Flags = u16;

/// A `struct kevent` with the given fields and every other field zero.
fn kevent(ident: usize, filter: Filter, flags: Flags, fflags: u32, udata: usize) -> libc::kevent {
    // SAFETY: `struct kevent` is integers, an integer array (FreeBSD's `ext`) and a raw
    // pointer (`udata`): all-zero is a valid value.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = ident as libc::uintptr_t;
    ev.filter = filter;
    ev.flags = flags;
    ev.fflags = fflags;
    ev.udata = udata as _;
    ev
}

/// Submits up to two registration changes, each with `EV_RECEIPT`, and checks each receipt.
/// `ignore(errno, change)` says which failures are not errors (a filter already gone, on
/// delete).
fn apply(
    kq: RawFd,
    changes: &[libc::kevent],
    ignore: impl Fn(i32, &libc::kevent) -> bool,
) -> io::Result<()> {
    debug_assert!(changes.len() <= 2);
    if changes.is_empty() {
        return Ok(());
    }
    let mut out = [kevent(0, 0, 0, 0, 0); 2];
    let n = changes.len();
    // SAFETY: `kq` is an open kqueue; `changes` holds `n` valid kevents and `out` room for
    // `n` receipts; a null timeout is fine: with EV_RECEIPT on every change the call returns
    // as soon as the changes are applied.
    let got = unsafe {
        syscall!(kevent(
            kq,
            changes.as_ptr(),
            n as _,
            out.as_mut_ptr(),
            n as _,
            ptr::null()
        ))
    }?;
    // Receipts come back in the order of the changes (each change is applied in turn).
    for (receipt, change) in out[..got as usize].iter().zip(changes) {
        if receipt.flags & libc::EV_ERROR != 0 && receipt.data != 0 {
            let errno = receipt.data as i32;
            if !ignore(errno, change) {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
    }
    Ok(())
}

/// The changes that take `fd` from interest `old` (possibly empty) to `new` (possibly empty).
fn changes(fd: RawFd, token: usize, old: Interest, new: Interest) -> ([libc::kevent; 2], usize) {
    let mut list = [kevent(0, 0, 0, 0, 0); 2];
    let mut n = 0;
    for (filter, was, want) in [
        (libc::EVFILT_READ, old.readable, new.readable),
        (libc::EVFILT_WRITE, old.writable, new.writable),
    ] {
        let flags = if want {
            libc::EV_ADD | libc::EV_ENABLE | libc::EV_RECEIPT
        } else if was {
            libc::EV_DELETE | libc::EV_RECEIPT
        } else {
            continue;
        };
        list[n] = kevent(fd as usize, filter, flags, 0, token);
        n += 1;
    }
    (list, n)
}

/// No interest at all (the "old" side of an add, the "new" side of a delete).
const NONE: Interest = Interest {
    readable: false,
    writable: false,
};

/// The kqueue itself, with its `EVFILT_USER` wake-up: notifiers trigger it through the fd.
#[derive(Debug)]
pub(crate) struct NotifyHandle {
    /// The kqueue (close-on-exec); the poller waits on it, notifiers trigger on it.
    kq: OwnedFd,
    /// Whether the user event is (about to be) triggered and not yet retrieved.
    pending: Coalesce,
}

impl NotifyHandle {
    /// Wakes the poller's current or next `wait`. Callable from any thread; coalesces.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if !self.pending.arm() {
            return Ok(());
        }
        let trigger = kevent(
            0,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_RECEIPT,
            libc::NOTE_TRIGGER,
            NOTIFY_TOKEN,
        );
        let r = apply(self.kq.as_raw_fd(), &[trigger], |_, _| false);
        if r.is_err() {
            self.pending.disarm();
        }
        r
    }

    /// The user event was retrieved (which reset it, `EV_CLEAR`): re-arm the coalescing flag.
    fn drain(&self) {
        self.pending.reset();
    }
}

/// A kqueue, its registration table and a reusable kernel event buffer.
#[derive(Debug)]
pub(crate) struct Poller {
    /// The kqueue and its wake-up, shared with every notifier.
    notify: Arc<NotifyHandle>,
    /// fd -> (token, interest).
    table: Table,
    /// What `kevent` fills; grown to the caller's [`Events::capacity`].
    buf: KeventBuf,
}

/// The kernel event buffer. `struct kevent` holds a raw pointer (`udata`), which makes it
/// neither `Send` nor `Sync`; ours only ever holds a token there.
#[derive(Debug, Default)]
struct KeventBuf(Vec<libc::kevent>);

// SAFETY: `udata` carries an integer token and is never dereferenced; everything else in a
// kevent is plain integers. Moving the buffer to another thread moves only data.
unsafe impl Send for KeventBuf {}

impl Poller {
    /// A new kqueue with its `EVFILT_USER` wake-up added.
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: kqueue takes no arguments; we own the returned fd.
        let kq = unsafe { OwnedFd::from_raw_fd(syscall!(kqueue())?) };
        set_cloexec(kq.as_raw_fd())?;
        let user = kevent(
            0,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT,
            0,
            NOTIFY_TOKEN,
        );
        apply(kq.as_raw_fd(), &[user], |_, _| false)?;
        Ok(Poller {
            notify: Arc::new(NotifyHandle {
                kq,
                pending: Coalesce::new(),
            }),
            table: Table::default(),
            buf: KeventBuf::default(),
        })
    }

    /// The kqueue's fd.
    fn kq(&self) -> RawFd {
        self.notify.kq.as_raw_fd()
    }

    /// Registers `fd` (arguments already checked by the caller).
    pub(crate) fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        if self.table.get(fd).is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let (list, n) = changes(fd, token, NONE, interest);
        // `EPIPE` (an `EVFILT_WRITE` on a pipe whose reader is gone, macOS) is returned, not
        // ignored: ignoring it would leave a writer waiting for an event that never comes,
        // while the error is exactly what its write would return.
        if let Err(e) = apply(self.kq(), &list[..n], |_, _| false) {
            // Undo a filter that may have been added before the other failed.
            let (undo, m) = changes(fd, token, interest, NONE);
            let _ = apply(self.kq(), &undo[..m], |_, _| true);
            return Err(e);
        }
        self.table.add(fd, token, interest)
    }

    /// Replaces the token and interest of `fd`.
    pub(crate) fn modify(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        let old = self
            .table
            .get(fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?
            .interest;
        let (list, n) = changes(fd, token, old, interest);
        apply(self.kq(), &list[..n], |errno, change| {
            change.flags & libc::EV_DELETE != 0 && errno == libc::ENOENT
        })?;
        self.table.modify(fd, token, interest).map(drop)
    }

    /// Unregisters `fd`. Filters the kernel already dropped (the fd was closed) are not an
    /// error.
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let old = self.table.delete(fd)?;
        let (list, n) = changes(fd, old.token, old.interest, NONE);
        apply(self.kq(), &list[..n], |errno, _| {
            errno == libc::ENOENT || errno == libc::EBADF
        })
    }

    /// Waits (see the contract in the module docs) and fills `events` (already cleared).
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let cap = events.capacity().min(libc::c_int::MAX as usize);
        self.buf.0.resize(cap, kevent(0, 0, 0, 0, 0));
        let ts = timeout.map(timespec);
        let tsp = ts
            .as_ref()
            .map_or(ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: the kqueue is open; `buf` holds `cap` writable kevents; `tsp` is null or
        // points at `ts`, which outlives the call.
        let r = unsafe {
            syscall!(kevent(
                self.kq(),
                ptr::null(),
                0,
                self.buf.0.as_mut_ptr(),
                cap as _,
                tsp
            ))
        };
        let n = match r {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        // One Event per fd: bring an fd's read and write reports together, then merge them.
        let raw = &mut self.buf.0[..n];
        raw.sort_unstable_by_key(|e| (e.ident, e.filter));
        let mut last_fd = None;
        for e in raw.iter() {
            if e.filter == libc::EVFILT_USER {
                self.notify.drain();
                continue;
            }
            let ev = fold(e);
            if last_fd == Some(e.ident) {
                if let Some(prev) = events.last_mut() {
                    prev.merge(ev);
                }
            } else if events.is_full() {
                break;
            } else {
                events.push(ev);
                last_fd = Some(e.ident);
            }
        }
        Ok(events.len())
    }

    /// The wake-up shared with notifiers.
    pub(crate) fn notify_handle(&self) -> &Arc<NotifyHandle> {
        &self.notify
    }
}

/// One kernel report as an [`Event`]: its filter's direction; `EV_EOF` is a hang-up, with a
/// socket error in `fflags` if there is one; errors wake both directions.
fn fold(e: &libc::kevent) -> Event {
    let eof = e.flags & libc::EV_EOF != 0;
    let error = e.flags & libc::EV_ERROR != 0 || (eof && e.fflags != 0);
    let mut ev = Event::new(e.udata as usize);
    ev.readable = e.filter == libc::EVFILT_READ || error;
    ev.writable = e.filter == libc::EVFILT_WRITE || error;
    ev.hup = eof;
    ev.error = error;
    ev
}

/// `d` as a `timespec`, clamped to [`MAX_TIMEOUT_SECS`].
fn timespec(d: Duration) -> libc::timespec {
    // SAFETY: a timespec is integers (plus padding on some targets): all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if d.as_secs() >= MAX_TIMEOUT_SECS {
        ts.tv_sec = MAX_TIMEOUT_SECS as libc::time_t;
    } else {
        ts.tv_sec = d.as_secs() as libc::time_t;
        ts.tv_nsec = d.subsec_nanos() as _;
    }
    ts
}
