//! # The I/O poller layer: one contract, four backends
//!
//! The hub blocks in a [`Poller`] until a file descriptor is ready, a timer is due, or another
//! thread wakes it. This module states what every backend guarantees; each backend lives in
//! its own file with the same item names (`Poller` with `new`, `add`, `modify`, `delete`,
//! `wait`, `notify_handle`; `NotifyHandle` with `notify`), in the style of mio and
//! smol-rs/polling, so that the files can be read side by side:
//!
//! | backend | file | platforms | wake-up |
//! |---|---|---|---|
//! | [`Backend::Epoll`] | `epoll.rs` | Linux, Android (default there) | an `eventfd` registered in the epoll set |
//! | [`Backend::Kqueue`] | `kqueue.rs` | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly (default there) | an `EVFILT_USER` event |
//! | [`Backend::Poll`] | `poll.rs` | every Unix (default elsewhere) | a self-pipe (`pipe.rs`) |
//! | [`Backend::Select`] | `select.rs` | every Unix; teaching only | a self-pipe (`pipe.rs`) |
//!
//! The backend is chosen by the caller ([`Poller::new`]) or by the environment variable
//! `GROVE_LOOP` (`epoll`, `kqueue`, `poll` or `select`; see [`Backend::from_env`]).
//!
//! ## The contract
//!
//! **Registration.** [`Poller::add`]`(fd, token, interest)` registers `fd`; the registration
//! stays until [`Poller::modify`] replaces its token and interest or [`Poller::delete`] removes
//! it. There is no one-shot mode and no re-arming: an event does not disarm anything. The
//! interest must name at least one direction (to stop watching, delete), and the token may be
//! any `usize` except `usize::MAX`, which is reserved for the wake-up; both are checked, with
//! `InvalidInput`. Every backend reports the same errors: adding a registered fd is
//! `AlreadyExists` (`EEXIST`), modifying or deleting an unregistered one is `NotFound`
//! (`ENOENT`), a descriptor that is not open is `EBADF`.
//!
//! **Level-triggered readiness.** [`Poller::wait`] reports every registered fd that is ready
//! *now*, in a direction of its interest, for as long as it stays ready: an fd with unread
//! data is reported by every `wait` until it is read dry (or deleted). A consumer therefore
//! never misses an event by reading only part of the data, and must delete (or narrow) the
//! interest of an fd it is not going to service, or it will be told again.
//!
//! **What an [`Event`] says.** Each event carries the token given at registration (or the
//! latest modify), and at most one event per fd per `wait`.
//! - `readable`: a read will not block: data, end of file, or a pending error.
//! - `writable`: a write will not block: buffer space, or a pending error, or a peer that has
//!   gone entirely (the write fails with `EPIPE`).
//! - `hup`: the peer hung up; reads return end of file once buffered data is consumed.
//! - `error`: an error is pending on the fd (reading or writing returns it).
//!
//! Hang-ups and errors are *folded into* `readable`/`writable`: whoever waits in a direction of
//! the interest is always woken by them and learns the outcome by doing its read or write, so a
//! consumer that looks only at `readable` and `writable` is correct. `hup` and `error` are
//! hints on top. Kernels differ in how much they tell, so: `readable` or `writable` may be set
//! for a direction outside the interest only together with `hup` or `error`; and the `select`
//! backend cannot tell hang-ups or errors apart from readiness, so it never sets `hup` or
//! `error` (it still sets `readable`/`writable`, which is what matters).
//!
//! **Waiting.** `wait(&mut events, timeout)` clears `events`, fills it with at most
//! [`Events::capacity`] events, and returns how many. More ready fds than that are reported by
//! the following waits (level triggering), and no fd is starved. `timeout`: `None` blocks until
//! an event or a wake-up, `Some(Duration::ZERO)` only looks. A timeout is rounded *up* to the
//! backend's resolution (nanoseconds for kqueue, and for epoll where the kernel has
//! `epoll_pwait2`, Linux 5.11 and later; microseconds for select; milliseconds for poll and for
//! epoll on older kernels), so a wait never returns before a timer that is due at the end of it; timeouts
//! longer than the backend can express (about 24 days for milliseconds) are clamped, and the
//! wait then returns `Ok(0)` early. `Ok(0)` means: timed out, woken by a notify, or
//! interrupted by a signal (`EINTR` is never an error, and is not retried: the caller rechecks
//! its timers and waits again).
//!
//! **Waking a wait from another thread.** [`Poller::notifier`] gives a [`Notifier`]
//! (`Send + Sync + Clone`, usable after the poller is gone). [`Notifier::notify`] makes the
//! poller's `wait` that is in progress, or if none is, the next one, return promptly. No
//! wake-up is lost, including one that races with entering `wait`: the wake-up object (eventfd,
//! `EVFILT_USER`, self-pipe) stays signalled until a `wait` consumes it. Wake-ups coalesce:
//! many notifies before a `wait` wake it at least once, and cost one system call between
//! drains, not one each. The wake-up is drained inside `wait` and is never reported as an
//! [`Event`]. Whatever the notifying thread wrote before `notify` is visible to the waiting
//! thread after the `wait` it caused returns (the consumed flag is an acquire/release pair).
//!
//! **Descriptors.** Every fd the layer creates (epoll, kqueue, eventfd, pipes) is
//! close-on-exec (atomically, except the kqueue fd and Apple's pipes, where `fcntl` follows
//! creation); eventfd and pipes are non-blocking.
//!
//! **Known differences (not hidden).**
//! - Regular files: epoll refuses them (`EPERM`); the others report them always ready.
//! - A pipe whose reader is gone: epoll and poll accept a writable registration and report
//!   `writable` with `error`; macOS's kqueue refuses it, and `add`/`modify` return `EPIPE`
//!   (what the write would return).
//! - Delete an fd before closing it. epoll and kqueue silently forget a closed fd; poll and
//!   select keep it in their table and report it with `error` set (poll's `POLLNVAL`, select's
//!   `EBADF`); kqueue, poll and select keep its number registered, so adding a new fd that
//!   reuses the number fails with `AlreadyExists` until the old one is deleted.
//! - select: fds `>= FD_SETSIZE` (1024) cannot be watched at all; [`Poller::add`] says so
//!   and names the alternatives. Its cost is linear in the highest fd.
//! - A poller is not inherited usefully across `fork` (kqueue fds are not inherited at all,
//!   an epoll set is shared with the child). Create pollers after forking.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue;
mod pipe;
mod poll;
mod select;
mod table;

pub(crate) use pipe::nonblocking_pipe;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The directions an fd is watched in. At least one must be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest {
    /// Report when a read would not block.
    pub readable: bool,
    /// Report when a write would not block.
    pub writable: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Writable only.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    /// Both directions.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    /// Whether neither direction is set (such an interest is rejected by `add` and `modify`).
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}

/// One ready fd, as reported by [`Poller::wait`]. See the module docs for what the flags mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// The token given at registration (or at the latest modify).
    pub token: usize,
    /// A read will not block (data, end of file, or a pending error).
    pub readable: bool,
    /// A write will not block (space, a pending error, or a vanished peer).
    pub writable: bool,
    /// The peer hung up (never set by the select backend).
    pub hup: bool,
    /// An error is pending on the fd (never set by the select backend).
    pub error: bool,
}

impl Event {
    /// An event for `token` with no flags set.
    pub(crate) fn new(token: usize) -> Event {
        Event {
            token,
            ..Event::default()
        }
    }

    /// Folds `other`'s flags into `self` (two kernel reports for the same fd).
    #[cfg_attr(
        not(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        )),
        allow(dead_code)
    )]
    pub(crate) fn merge(&mut self, other: Event) {
        self.readable |= other.readable;
        self.writable |= other.writable;
        self.hup |= other.hup;
        self.error |= other.error;
    }
}

/// A reusable buffer of [`Event`]s, filled by [`Poller::wait`].
#[derive(Clone, Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// The capacity used by [`Events::new`].
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A buffer that takes at most `capacity` events per wait (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// A buffer of [`Events::DEFAULT_CAPACITY`] events.
    pub fn new() -> Events {
        Events::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// The most events one wait reports.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events the last wait reported.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait reported nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forgets the events (wait does this itself).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Whether no more events fit (backends stop collecting).
    pub(crate) fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }

    /// Appends an event (backends check [`Events::is_full`] first).
    pub(crate) fn push(&mut self, event: Event) {
        debug_assert!(!self.is_full());
        self.list.push(event);
    }

    /// The most recently pushed event, for merging a second report of the same fd.
    #[cfg_attr(
        not(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        )),
        allow(dead_code)
    )]
    pub(crate) fn last_mut(&mut self) -> Option<&mut Event> {
        self.list.last_mut()
    }
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// A poller implementation. Every variant exists on every platform (so that `GROVE_LOOP` can
/// be parsed and reported everywhere); [`Backend::available`] says which ones work here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Linux's `epoll(7)`.
    Epoll,
    /// The BSDs' and macOS's `kqueue(2)`.
    Kqueue,
    /// POSIX `poll(2)`: portable, linear in the number of registered fds.
    Poll,
    /// POSIX `select(2)`: for teaching; fds must be below `FD_SETSIZE` (1024).
    Select,
}

/// The environment variable that chooses the backend.
pub const ENV_VAR: &str = "GROVE_LOOP";

impl Backend {
    /// Every backend, in the order of their names in messages.
    pub const ALL: [Backend; 4] = [
        Backend::Epoll,
        Backend::Kqueue,
        Backend::Poll,
        Backend::Select,
    ];

    /// The name used by `GROVE_LOOP`: `"epoll"`, `"kqueue"`, `"poll"` or `"select"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
            Backend::Poll => "poll",
            Backend::Select => "select",
        }
    }

    /// Whether this backend exists on this platform.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Epoll => cfg!(any(target_os = "linux", target_os = "android")),
            Backend::Kqueue => cfg!(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            )),
            Backend::Poll | Backend::Select => true,
        }
    }

    /// The backends this platform has, the default first.
    pub fn available() -> Vec<Backend> {
        let default = Backend::default_for_platform();
        let mut list = vec![default];
        list.extend(
            Backend::ALL
                .into_iter()
                .filter(|b| *b != default && b.is_available()),
        );
        list
    }

    /// epoll on Linux and Android; kqueue on macOS, iOS, FreeBSD, NetBSD, OpenBSD and
    /// DragonFly; poll elsewhere.
    pub fn default_for_platform() -> Backend {
        if Backend::Epoll.is_available() {
            Backend::Epoll
        } else if Backend::Kqueue.is_available() {
            Backend::Kqueue
        } else {
            Backend::Poll
        }
    }

    /// The backend named by `GROVE_LOOP`, or [`Backend::default_for_platform`] if it is unset
    /// or empty. An unknown name is `InvalidInput`, a backend this platform lacks is
    /// `Unsupported`; both messages list the valid values and the platform's default.
    pub fn from_env() -> io::Result<Backend> {
        Backend::from_env_value(std::env::var_os(ENV_VAR).as_deref())
    }

    /// [`Backend::from_env`] on a given value of the variable.
    fn from_env_value(value: Option<&OsStr>) -> io::Result<Backend> {
        let Some(value) = value else {
            return Ok(Backend::default_for_platform());
        };
        let Some(text) = value.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{ENV_VAR}={value:?} is not valid UTF-8; {}",
                    Backend::valid_values()
                ),
            ));
        };
        if text.trim().is_empty() {
            return Ok(Backend::default_for_platform());
        }
        let backend: Backend = text
            .parse()
            .map_err(|e: io::Error| io::Error::new(e.kind(), format!("{ENV_VAR}={text:?}: {e}")))?;
        if !backend.is_available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{ENV_VAR}={text:?}: {}", backend.unavailable()),
            ));
        }
        Ok(backend)
    }

    /// "valid values are epoll, kqueue, poll, select (this platform has ...; default ...)".
    fn valid_values() -> String {
        let all: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
        let here: Vec<&str> = Backend::available().iter().map(|b| b.name()).collect();
        format!(
            "valid values are {} (this platform has {}; default {})",
            all.join(", "),
            here.join(", "),
            Backend::default_for_platform().name()
        )
    }

    /// The message for a backend this platform lacks.
    fn unavailable(self) -> String {
        let here: Vec<&str> = Backend::available().iter().map(|b| b.name()).collect();
        format!(
            "the {} backend is not available on this platform (this platform has {}; default {})",
            self.name(),
            here.join(", "),
            Backend::default_for_platform().name()
        )
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    /// Parses a backend name, ignoring ASCII case and surrounding whitespace. Unknown names are
    /// `InvalidInput` naming the valid values and the platform's default.
    fn from_str(s: &str) -> io::Result<Backend> {
        let t = s.trim();
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown poller backend {t:?}: {}", Backend::valid_values()),
                )
            })
    }
}

/// The token reserved for the wake-up (epoll stores it in the wake-up's event data).
pub(crate) const NOTIFY_TOKEN: usize = usize::MAX;

/// The argument checks every backend makes in `add` and `modify`, before any system call.
pub(crate) fn check_registration(fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    if token == NOTIFY_TOKEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "poller token usize::MAX is reserved for the wake-up",
        ));
    }
    if interest.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "poller interest must be readable, writable or both (to stop watching an fd, delete it)",
        ));
    }
    Ok(())
}

/// A timeout in whole milliseconds for `epoll_wait` and `poll`: `-1` for `None`, rounded up
/// (1 ns waits 1 ms, never 0), clamped to `c_int::MAX` (about 24.8 days).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Timeouts beyond this many seconds are clamped (macOS rejects larger ones with `EINVAL`).
pub(crate) const MAX_TIMEOUT_SECS: u64 = 100_000_000;

/// The coalescing flag of a wake-up: set by the first notify after a drain, cleared by the
/// drain. Only the notify that sets it signals the kernel object.
#[derive(Debug)]
pub(crate) struct Coalesce(AtomicBool);

impl Coalesce {
    /// A cleared flag.
    pub(crate) fn new() -> Coalesce {
        Coalesce(AtomicBool::new(false))
    }

    /// Sets the flag; true if it was clear, and the caller must signal the kernel object.
    /// (Release: what the notifier wrote before is published to the drain's acquire.)
    pub(crate) fn arm(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// Clears the flag after signalling failed, so that a later notify tries again.
    pub(crate) fn disarm(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Clears the flag; called by `wait` *after* it drained the kernel object. A swap, not a
    /// store: a notify that found the flag set (and so did not signal) synchronises with this
    /// wait, which is the one that answers it.
    pub(crate) fn reset(&self) {
        self.0.swap(false, Ordering::AcqRel);
    }
}

/// Dispatches `$body` to the backend poller inside `$inner`, bound to `$p`.
macro_rules! dispatch {
    ($inner:expr, $p:ident => $body:expr) => {
        match $inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll($p) => $body,
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            Inner::Kqueue($p) => $body,
            Inner::Poll($p) => $body,
            Inner::Select($p) => $body,
        }
    };
}

/// The backend poller, one variant per backend this platform has.
enum Inner {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::Poller),
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    Kqueue(kqueue::Poller),
    Poll(poll::Poller),
    Select(select::Poller),
}

/// An I/O poller: a set of registered fds, a blocking [`wait`](Poller::wait) for their
/// readiness, and a cross-thread wake-up. See the module docs for the contract.
///
/// Used by one thread at a time (`&mut self`); `Send`, so it can be created on one thread and
/// moved to another. Other threads wake it through a [`Notifier`].
pub struct Poller {
    inner: Inner,
    /// Calls to `add`, `modify` and `delete` so far, successful or not.
    changes: u64,
}

impl Poller {
    /// A poller of the given backend: `Unsupported` if this platform lacks it, or the error of
    /// creating its kernel objects (for example `EMFILE`).
    pub fn new(backend: Backend) -> io::Result<Poller> {
        let inner = match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => Inner::Epoll(epoll::Poller::new()?),
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            Backend::Kqueue => Inner::Kqueue(kqueue::Poller::new()?),
            Backend::Poll => Inner::Poll(poll::Poller::new()?),
            Backend::Select => Inner::Select(select::Poller::new()?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    other.unavailable(),
                ))
            }
        };
        Ok(Poller { inner, changes: 0 })
    }

    /// A poller of the backend `GROVE_LOOP` names, or of the platform's default.
    pub fn with_default() -> io::Result<Poller> {
        Poller::new(Backend::from_env()?)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll(_) => Backend::Epoll,
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            Inner::Kqueue(_) => Backend::Kqueue,
            Inner::Poll(_) => Backend::Poll,
            Inner::Select(_) => Backend::Select,
        }
    }

    /// Registers `fd`: events for it carry `token`. Errors: `AlreadyExists` if registered,
    /// `EBADF` if not open, `InvalidInput` for an empty interest or the reserved token
    /// `usize::MAX`; select: `fd >= FD_SETSIZE`.
    pub fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        check_registration(fd, token, interest)?;
        self.changes += 1;
        dispatch!(&mut self.inner, p => p.add(fd, token, interest))
    }

    /// Replaces the token and interest of a registered `fd` (`NotFound` if it is not).
    pub fn modify(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        check_registration(fd, token, interest)?;
        self.changes += 1;
        dispatch!(&mut self.inner, p => p.modify(fd, token, interest))
    }

    /// Unregisters `fd` (`NotFound` if it is not registered). Do this before closing it.
    pub fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        self.changes += 1;
        dispatch!(&mut self.inner, p => p.delete(fd))
    }

    /// How many registration changes (`add`, `modify`, `delete` calls, each one system call
    /// on epoll and kqueue) this poller has been asked for: what a loop that keeps its
    /// registrations across waits should keep low.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Waits for readiness, a wake-up or the timeout (`None`: no timeout), fills `events`
    /// (cleared first) and returns how many there are. `Ok(0)` on timeout, wake-up or signal.
    pub fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        dispatch!(&mut self.inner, p => p.wait(events, timeout))
    }

    /// Wakes this poller's current or next `wait` (same as `self.notifier().notify()`).
    pub fn notify(&self) -> io::Result<()> {
        dispatch!(&self.inner, p => p.notify_handle().notify())
    }

    /// A handle that wakes this poller from any thread.
    pub fn notifier(&self) -> Notifier {
        let inner = match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Epoll(p) => NotifierInner::Epoll(Arc::clone(p.notify_handle())),
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            Inner::Kqueue(p) => NotifierInner::Kqueue(Arc::clone(p.notify_handle())),
            Inner::Poll(p) => NotifierInner::Pipe(Arc::clone(p.notify_handle())),
            Inner::Select(p) => NotifierInner::Pipe(Arc::clone(p.notify_handle())),
        };
        Notifier { inner }
    }
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// The wake-up object a [`Notifier`] signals.
#[derive(Clone, Debug)]
enum NotifierInner {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(Arc<epoll::NotifyHandle>),
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    Kqueue(Arc<kqueue::NotifyHandle>),
    /// poll and select share the self-pipe.
    Pipe(Arc<pipe::NotifyHandle>),
}

/// Wakes a [`Poller`]'s `wait` from any thread. Cheap to clone; keeps the wake-up object alive,
/// so notifying after the poller is dropped is harmless (it wakes nobody).
#[derive(Clone, Debug)]
pub struct Notifier {
    inner: NotifierInner,
}

impl Notifier {
    /// Makes the poller's current `wait`, or its next one, return promptly. Coalesces; never
    /// blocks. Errors only if signalling the kernel object fails (which does not happen while
    /// it is open, and the notifier keeps it open).
    pub fn notify(&self) -> io::Result<()> {
        match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            NotifierInner::Epoll(h) => h.notify(),
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            NotifierInner::Kqueue(h) => h.notify(),
            NotifierInner::Pipe(h) => h.notify(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The contract, checked under every backend this platform has. Every wait is bounded:
    //! nothing here can hang, and no upper bound on a wait is tighter than [`GENEROUS`].

    use super::*;
    use crate::syscall::syscall;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    /// The upper bound for "promptly".
    const GENEROUS: Duration = Duration::from_secs(2);
    /// The timeout of a wait that is expected to be woken (so a broken wake-up fails, not hangs).
    const BOUND: Duration = Duration::from_secs(5);
    const SHORT: Duration = Duration::from_millis(50);

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [-1; 2];
        // SAFETY: pipe writes two fds into the array; we own them from here on.
        unsafe { syscall!(pipe(fds.as_mut_ptr())) }.unwrap();
        // SAFETY: just created, owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// Runs `f` once per backend of this platform, with a fresh poller.
    fn each(f: impl Fn(Backend, &mut Poller)) {
        let all = Backend::available();
        assert!(all.len() >= 3, "{all:?}");
        for b in all {
            let mut p = Poller::new(b).unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!(p.backend(), b);
            f(b, &mut p);
        }
    }

    fn wait(p: &mut Poller, timeout: Duration) -> Vec<Event> {
        let mut ev = Events::with_capacity(16);
        let n = p.wait(&mut ev, Some(timeout)).unwrap();
        assert_eq!(n, ev.len());
        ev.iter().copied().collect()
    }

    /// Asserts that a wait of `SHORT` reports nothing and does not return early.
    fn assert_quiet(b: Backend, p: &mut Poller, what: &str) {
        let t0 = Instant::now();
        let got = wait(p, SHORT);
        let took = t0.elapsed();
        assert!(got.is_empty(), "{b}: {what}: {got:?}");
        assert!(took >= SHORT, "{b}: {what}: returned after {took:?}");
        assert!(took < GENEROUS, "{b}: {what}: returned after {took:?}");
    }

    #[test]
    fn readable_after_write_with_token() {
        each(|b, p| {
            let (a, mut c) = pair();
            p.add(a.as_raw_fd(), 7, Interest::READABLE).unwrap();
            assert!(
                wait(p, Duration::ZERO).is_empty(),
                "{b}: nothing written yet"
            );
            c.write_all(b"hi").unwrap();
            let got = wait(p, GENEROUS);
            assert_eq!(
                got,
                [Event {
                    token: 7,
                    readable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            // Level-triggered: still ready until read dry, with no re-arming.
            assert_eq!(wait(p, Duration::ZERO).len(), 1, "{b}: level-triggered");
            let mut buf = [0; 8];
            assert_eq!((&a).read(&mut buf).unwrap(), 2);
            assert!(wait(p, Duration::ZERO).is_empty(), "{b}: read dry");
            p.delete(a.as_raw_fd()).unwrap();
        });
    }

    #[test]
    fn writable_readiness_is_level_triggered() {
        each(|b, p| {
            let (a, c) = pair();
            p.add(a.as_raw_fd(), 8, Interest::WRITABLE).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 8,
                    writable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            // Fill the socket: no longer writable.
            let chunk = [0u8; 4096];
            while (&a).write(&chunk).is_ok() {}
            assert!(wait(p, Duration::ZERO).is_empty(), "{b}: full");
            // Drain the peer: writable again.
            let mut buf = [0u8; 4096];
            while (&c).read(&mut buf).is_ok() {}
            let got = wait(p, GENEROUS);
            assert!(
                got.len() == 1 && got[0].writable && got[0].token == 8,
                "{b}: {got:?}"
            );
            p.delete(a.as_raw_fd()).unwrap();
        });
    }

    #[test]
    fn one_event_per_fd_for_both_directions() {
        each(|b, p| {
            let (a, mut c) = pair();
            c.write_all(b"x").unwrap();
            p.add(a.as_raw_fd(), 3, Interest::BOTH).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 3,
                    readable: true,
                    writable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            p.delete(a.as_raw_fd()).unwrap();
        });
    }

    #[test]
    fn nothing_ready_honours_the_timeout() {
        each(|b, p| {
            // With no registration at all, and with an idle one.
            assert_quiet(b, p, "empty poller");
            let (a, _c) = pair();
            p.add(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
            assert_quiet(b, p, "idle socket");
            // Sub-millisecond remainders round up: never early.
            for d in [
                Duration::from_micros(1500),
                Duration::from_nanos(1),
                Duration::from_millis(20),
            ] {
                let t0 = Instant::now();
                assert!(wait(p, d).is_empty(), "{b}");
                let took = t0.elapsed();
                assert!(
                    took >= d && took < GENEROUS,
                    "{b}: timeout {d:?} returned after {took:?}"
                );
            }
            p.delete(a.as_raw_fd()).unwrap();
        });
    }

    /// Where the kernel has `epoll_pwait2`, a sub-millisecond timeout is not rounded up to a
    /// millisecond. The fastest of twenty 200 µs waits is compared with 1 ms: a wait rounded
    /// up cannot take less, and one busy machine cannot slow all twenty down that much.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn epoll_honours_a_sub_millisecond_timeout_where_the_kernel_can() {
        let mut p = Poller::new(Backend::Epoll).unwrap();
        let d = Duration::from_micros(200);
        let mut fastest = Duration::MAX;
        for _ in 0..20 {
            let t0 = Instant::now();
            assert!(wait(&mut p, d).is_empty());
            let took = t0.elapsed();
            assert!(took >= d, "returned early: {took:?}");
            fastest = fastest.min(took);
        }
        let Inner::Epoll(e) = &p.inner else {
            unreachable!()
        };
        if e.fine_timeouts() {
            assert!(
                fastest < Duration::from_millis(1),
                "a 200 µs wait took at least {fastest:?}"
            );
        } else {
            // No epoll_pwait2 here (an old kernel, valgrind, qemu-user): whole milliseconds.
            assert!(fastest >= Duration::from_millis(1), "{fastest:?}");
        }
    }

    #[test]
    fn modify_changes_interest_and_token() {
        each(|b, p| {
            let (a, mut c) = pair();
            let fd = a.as_raw_fd();
            p.add(fd, 1, Interest::READABLE).unwrap();
            assert!(wait(p, Duration::ZERO).is_empty(), "{b}");
            p.modify(fd, 2, Interest::WRITABLE).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 2,
                    writable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            c.write_all(b"x").unwrap();
            p.modify(fd, 3, Interest::READABLE).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 3,
                    readable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            p.modify(fd, 4, Interest::BOTH).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 4,
                    readable: true,
                    writable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            p.delete(fd).unwrap();
        });
    }

    #[test]
    fn delete_stops_events() {
        each(|b, p| {
            let (a, mut c) = pair();
            let fd = a.as_raw_fd();
            p.add(fd, 5, Interest::BOTH).unwrap();
            c.write_all(b"x").unwrap();
            assert_eq!(wait(p, GENEROUS).len(), 1, "{b}");
            p.delete(fd).unwrap();
            assert_quiet(b, p, "after delete");
            // And it can be added again.
            p.add(fd, 6, Interest::READABLE).unwrap();
            assert_eq!(
                wait(p, GENEROUS),
                [Event {
                    token: 6,
                    readable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            p.delete(fd).unwrap();
        });
    }

    #[test]
    fn registration_errors_are_the_same_everywhere() {
        each(|b, p| {
            let (a, _c) = pair();
            let fd = a.as_raw_fd();
            let kind = |r: io::Result<()>| r.unwrap_err().kind();
            assert_eq!(
                kind(p.modify(fd, 1, Interest::READABLE)),
                io::ErrorKind::NotFound,
                "{b}"
            );
            assert_eq!(kind(p.delete(fd)), io::ErrorKind::NotFound, "{b}");
            p.add(fd, 1, Interest::READABLE).unwrap();
            assert_eq!(
                kind(p.add(fd, 1, Interest::READABLE)),
                io::ErrorKind::AlreadyExists,
                "{b}"
            );
            let empty = Interest {
                readable: false,
                writable: false,
            };
            assert_eq!(
                kind(p.modify(fd, 1, empty)),
                io::ErrorKind::InvalidInput,
                "{b}"
            );
            assert_eq!(
                kind(p.modify(fd, usize::MAX, Interest::READABLE)),
                io::ErrorKind::InvalidInput,
                "{b}"
            );
            p.delete(fd).unwrap();
            assert_eq!(kind(p.delete(fd)), io::ErrorKind::NotFound, "{b}");
            for bad in [-1, 999_999] {
                let e = p.add(bad, 1, Interest::READABLE).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{b}: fd {bad}: {e}");
            }
        });
    }

    #[test]
    fn peer_close_is_readable_hangup_without_busy_loop() {
        each(|b, p| {
            let (a, mut c) = pair();
            let fd = a.as_raw_fd();
            p.add(fd, 9, Interest::READABLE).unwrap();
            c.write_all(b"bye").unwrap();
            drop(c);
            let got = wait(p, GENEROUS);
            assert_eq!(got.len(), 1, "{b}: {got:?}");
            let e = got[0];
            assert!(e.token == 9 && e.readable, "{b}: {e:?}");
            assert_eq!(e.hup, b != Backend::Select, "{b}: {e:?}");
            // The reader sees the data, then end of file.
            let mut buf = [0; 8];
            assert_eq!((&a).read(&mut buf).unwrap(), 3);
            assert_eq!((&a).read(&mut buf).unwrap(), 0);
            // Still reported (level-triggered: end of file persists) until deleted.
            assert!(
                wait(p, Duration::ZERO)
                    .iter()
                    .all(|e| e.token == 9 && e.readable),
                "{b}"
            );
            p.delete(fd).unwrap();
            assert_quiet(b, p, "after EOF and delete");
        });
    }

    #[test]
    fn pipe_writer_close_is_readable_hangup() {
        each(|b, p| {
            let (r, w) = pipe();
            p.add(r.as_raw_fd(), 11, Interest::READABLE).unwrap();
            assert!(wait(p, Duration::ZERO).is_empty(), "{b}");
            drop(w);
            let got = wait(p, GENEROUS);
            assert_eq!(got.len(), 1, "{b}: {got:?}");
            assert!(got[0].token == 11 && got[0].readable, "{b}: {got:?}");
            assert_eq!(got[0].hup, b != Backend::Select, "{b}: {got:?}");
            p.delete(r.as_raw_fd()).unwrap();
            assert_quiet(b, p, "after delete");
        });
    }

    #[test]
    fn notify_from_another_thread_wakes_a_blocked_wait() {
        each(|b, p| {
            let n = p.notifier();
            let t = thread::spawn(move || {
                thread::sleep(SHORT);
                n.notify().unwrap();
            });
            let t0 = Instant::now();
            let got = wait(p, BOUND);
            let took = t0.elapsed();
            t.join().unwrap();
            assert!(got.is_empty(), "{b}: the wake-up is not an event: {got:?}");
            assert!(took < GENEROUS, "{b}: woken after {took:?}");
        });
    }

    #[test]
    fn notify_wakes_a_wait_without_timeout() {
        for b in Backend::available() {
            let mut p = Poller::new(b).unwrap();
            let n = p.notifier();
            let (tx, rx) = mpsc::channel();
            // The poller moves to a thread that blocks with no timeout; if the wake-up were
            // lost, this test fails after BOUND instead of hanging (the thread is leaked).
            thread::spawn(move || {
                let mut ev = Events::with_capacity(4);
                let r = p.wait(&mut ev, None).map(|n| (n, ev.len()));
                let _ = tx.send(r);
            });
            thread::sleep(SHORT);
            n.notify().unwrap();
            let r = rx
                .recv_timeout(BOUND)
                .unwrap_or_else(|_| panic!("{b}: wait(None) was not woken"));
            assert_eq!(r.unwrap(), (0, 0), "{b}");
        }
    }

    #[test]
    fn notify_before_wait_is_not_lost_and_coalesces() {
        each(|b, p| {
            for _ in 0..3 {
                p.notify().unwrap();
                p.notifier().notify().unwrap();
            }
            let t0 = Instant::now();
            assert!(wait(p, BOUND).is_empty(), "{b}");
            assert!(t0.elapsed() < GENEROUS, "{b}: pending wake-up lost");
            assert_quiet(b, p, "six notifies are one wake-up");
            // A ready fd and a wake-up together: only the fd is reported.
            let (a, mut c) = pair();
            p.add(a.as_raw_fd(), 12, Interest::READABLE).unwrap();
            c.write_all(b"x").unwrap();
            p.notify().unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                seen.extend(wait(p, GENEROUS));
            }
            assert!(seen.iter().all(|e| e.token == 12), "{b}: {seen:?}");
            p.delete(a.as_raw_fd()).unwrap();
            let _ = wait(p, Duration::ZERO);
            assert_quiet(b, p, "wake-up drained");
        });
    }

    #[test]
    fn notify_racing_with_entering_wait_is_not_lost() {
        each(|b, p| {
            let n = p.notifier();
            let (go, rx) = mpsc::channel::<()>();
            let t = thread::spawn(move || {
                while rx.recv().is_ok() {
                    n.notify().unwrap();
                }
            });
            for i in 0..300 {
                go.send(()).unwrap();
                let t0 = Instant::now();
                let got = wait(p, BOUND);
                assert!(
                    got.is_empty() && t0.elapsed() < GENEROUS,
                    "{b}: round {i}: lost wake-up"
                );
            }
            drop(go);
            t.join().unwrap();
        });
    }

    #[test]
    fn ten_thousand_notifies_from_four_threads_coalesce() {
        each(|b, p| {
            let done = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let n = p.notifier();
                    let done = done.clone();
                    thread::spawn(move || {
                        for _ in 0..2500 {
                            n.notify().unwrap();
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let t0 = Instant::now();
            let mut wakes = 0;
            while done.load(Ordering::SeqCst) < 4 {
                assert!(t0.elapsed() < BOUND, "{b}: notifiers did not finish");
                let mut ev = Events::with_capacity(4);
                p.wait(&mut ev, Some(Duration::from_millis(100))).unwrap();
                assert!(ev.is_empty(), "{b}");
                wakes += 1;
            }
            for t in threads {
                t.join().unwrap();
            }
            assert!(wakes <= 10_000, "{b}");
            // Whatever is still pending is one wake-up at most, then quiet.
            let _ = wait(p, Duration::ZERO);
            assert_quiet(b, p, "after the storm");
            // And the wake-up still works.
            p.notifier().notify().unwrap();
            let t0 = Instant::now();
            assert!(wait(p, BOUND).is_empty() && t0.elapsed() < GENEROUS, "{b}");
        });
    }

    #[test]
    fn notifier_outlives_its_poller() {
        for b in Backend::available() {
            let p = Poller::new(b).unwrap();
            let n = p.notifier();
            drop(p);
            n.notify().unwrap();
            n.clone().notify().unwrap();
        }
        fn send_sync_clone<T: Send + Sync + Clone>() {}
        send_sync_clone::<Notifier>();
        fn send<T: Send>() {}
        send::<Poller>();
    }

    extern "C" fn on_sigusr2(_: libc::c_int) {}

    #[test]
    fn a_signal_is_ok_zero_not_an_error() {
        // SAFETY: installs a handler that does nothing (async-signal-safe) for SIGUSR2, which
        // nothing else in the test binary uses; no SA_RESTART, so waits see EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigusr2 as *const () as libc::sighandler_t;
            syscall!(sigemptyset(&mut action.sa_mask)).unwrap();
            syscall!(sigaction(libc::SIGUSR2, &action, std::ptr::null_mut())).unwrap();
        }
        for b in Backend::available() {
            let finished = Arc::new(AtomicBool::new(false));
            let (tx, rx) = mpsc::channel();
            let f = finished.clone();
            let t = thread::spawn(move || {
                let mut p = Poller::new(b).unwrap();
                // SAFETY: pthread_self has no preconditions.
                tx.send(unsafe { libc::pthread_self() }).unwrap();
                let mut ev = Events::with_capacity(4);
                let t0 = Instant::now();
                let r = p.wait(&mut ev, Some(BOUND));
                f.store(true, Ordering::SeqCst);
                (r.map_err(|e| e.to_string()), t0.elapsed())
            });
            let tid = rx.recv().unwrap();
            while !finished.load(Ordering::SeqCst) {
                // SAFETY: `tid` is a live thread: it is joined only after `finished` is set.
                unsafe { libc::pthread_kill(tid, libc::SIGUSR2) };
                thread::sleep(Duration::from_millis(20));
            }
            let (r, took) = t.join().unwrap();
            assert_eq!(r, Ok(0), "{b}");
            assert!(
                took < GENEROUS,
                "{b}: EINTR retried instead of returned ({took:?})"
            );
        }
    }

    #[test]
    fn capacity_limits_a_wait_and_nothing_starves() {
        each(|b, p| {
            let pairs: Vec<_> = (0..5).map(|_| pair()).collect();
            for (i, (a, c)) in pairs.iter().enumerate() {
                (&*c).write_all(b"x").unwrap();
                p.add(a.as_raw_fd(), 100 + i, Interest::READABLE).unwrap();
            }
            let mut ev = Events::with_capacity(2);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..3 {
                assert_eq!(p.wait(&mut ev, Some(GENEROUS)).unwrap(), 2, "{b}");
                seen.extend(ev.iter().map(|e| e.token));
            }
            assert_eq!(seen.len(), 5, "{b}: starved: saw only {seen:?}");
            for (a, _) in &pairs {
                p.delete(a.as_raw_fd()).unwrap();
            }
        });
    }

    /// An fd numbered at least `min`: raises the soft `RLIMIT_NOFILE` if needed, or `None`.
    fn high_fd(of: RawFd, min: RawFd) -> Option<OwnedFd> {
        // SAFETY: getrlimit/setrlimit read and write a valid rlimit.
        unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut rl)).ok()?;
            let want = (min as libc::rlim_t) + 16;
            if rl.rlim_cur < want {
                if rl.rlim_max < want {
                    return None;
                }
                rl.rlim_cur = want;
                syscall!(setrlimit(libc::RLIMIT_NOFILE, &rl)).ok()?;
            }
        }
        // SAFETY: F_DUPFD_CLOEXEC takes the lowest free fd >= min (it closes nothing); we own it.
        let fd = unsafe { syscall!(fcntl(of, libc::F_DUPFD_CLOEXEC, min)) }.ok()?;
        // SAFETY: just created, owned by nobody else.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    #[test]
    fn select_rejects_fds_beyond_fd_setsize_and_names_the_alternatives() {
        let (a, _c) = pair();
        let Some(high) = high_fd(a.as_raw_fd(), 1100) else {
            eprintln!("skipped: cannot raise RLIMIT_NOFILE to 1116");
            return;
        };
        let fd = high.as_raw_fd();
        assert!(fd >= 1100);
        let mut p = Poller::new(Backend::Select).unwrap();
        let e = p.add(fd, 1, Interest::READABLE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let other = if cfg!(any(target_os = "linux", target_os = "android")) {
            "epoll"
        } else {
            "kqueue"
        };
        assert_eq!(
            e.to_string(),
            format!("select backend: fd {fd} >= FD_SETSIZE (1024); use GROVE_LOOP=poll or {other}")
        );
        // The other backends take it.
        for b in Backend::available()
            .into_iter()
            .filter(|b| *b != Backend::Select)
        {
            let mut p = Poller::new(b).unwrap();
            p.add(fd, 2, Interest::WRITABLE).unwrap();
            assert_eq!(
                wait(&mut p, GENEROUS),
                [Event {
                    token: 2,
                    writable: true,
                    ..Event::default()
                }],
                "{b}"
            );
            p.delete(fd).unwrap();
        }
    }

    #[test]
    fn grove_loop_parsing() {
        let default = Backend::default_for_platform();
        let parse = |v: Option<&str>| Backend::from_env_value(v.map(OsStr::new));
        assert_eq!(parse(None).unwrap(), default);
        assert_eq!(parse(Some("")).unwrap(), default);
        for b in Backend::available() {
            assert_eq!(parse(Some(b.name())).unwrap(), b);
            assert_eq!(
                parse(Some(&format!(" {} ", b.name().to_uppercase()))).unwrap(),
                b
            );
            assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
        }
        let e = parse(Some("iocp")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        for needle in [
            "GROVE_LOOP",
            "\"iocp\"",
            "epoll, kqueue, poll, select",
            &format!("default {default}"),
        ] {
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
        assert_eq!(
            "nope".parse::<Backend>().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // A real backend this platform lacks is Unsupported, and says what it has.
        let missing = if Backend::Epoll.is_available() {
            Backend::Kqueue
        } else {
            Backend::Epoll
        };
        let e = parse(Some(missing.name())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains(&format!("default {default}")), "{e}");
        assert_eq!(
            Poller::new(missing).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        // The list: default first, poll and select everywhere.
        let all = Backend::available();
        assert_eq!(all[0], default);
        assert!(all.contains(&Backend::Poll) && all.contains(&Backend::Select));
        if cfg!(target_os = "linux") {
            assert_eq!(all, [Backend::Epoll, Backend::Poll, Backend::Select]);
        }
    }

    #[test]
    fn timeouts_round_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1_000_001))), 2);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
        let tv = |d| {
            let t = select::timeval(d);
            (t.tv_sec as u64, t.tv_usec as u64)
        };
        assert_eq!(tv(Duration::from_nanos(1)), (0, 1));
        assert_eq!(tv(Duration::from_nanos(999_999_001)), (1, 0));
        assert_eq!(tv(Duration::from_micros(1_500_000)), (1, 500_000));
        assert_eq!(tv(Duration::MAX), (MAX_TIMEOUT_SECS, 0));
        assert_eq!(Events::with_capacity(0).capacity(), 1);
    }
}
