//! Cooperative sockets (gevent's `gevent.socket`): std's types and method names, so existing
//! blocking code, and crates generic over `Read`/`Write`, run on them unchanged, while a
//! blocked read, write, accept or connect parks only the calling greenlet.
//!
//! | type | file | std's counterpart |
//! |---|---|---|
//! | [`TcpListener`], [`TcpStream`] | `tcp.rs` | `std::net` |
//! | [`UdpSocket`] | `udp.rs` | `std::net` |
//! | [`UnixListener`], [`UnixStream`], [`UnixDatagram`] | `unix.rs` | `std::os::unix::net` |
//! | [`lookup_host`], [`ToSocketAddrs`] | `resolve.rs` | `std::net::ToSocketAddrs` |
//!
//! What every socket here guarantees (the rules are in `fd.rs`, which they all share):
//!
//! * Read, write, accept and connect timeouts (`set_read_timeout`, `connect_timeout`...);
//!   expiry is `ErrorKind::TimedOut`. `write_all` that fails part way says how much was sent
//!   ([`PartialWrite`]).
//! * `close(&self)` wakes every greenlet blocked on the socket with a clear error
//!   (`ErrorKind::NotConnected`); two greenlets waiting to read (or write) the same socket is
//!   an error (`ErrorKind::ResourceBusy`), never interleaved data.
//! * No `SIGPIPE` (sends use `MSG_NOSIGNAL`, or `SO_NOSIGPIPE` on Apple platforms); `EINTR`
//!   is retried inside; every descriptor is close-on-exec.
//! * Fairness: an operation that can complete at once does not switch, but after a bounded
//!   run of such operations the greenlet yields, so one busy connection cannot starve others.
//! * Conversions from and to the std types (`from_std`, `into_std`, `TryFrom`), raw fds, and
//!   every other socket option through [socket2](https://docs.rs/socket2) (`socket()`).

/// The read/write timeout methods every connected socket type has, over its `ev`.
macro_rules! io_timeouts {
    () => {
        /// A timeout for each read (`None`: wait forever); expiry is `ErrorKind::TimedOut`.
        /// A zero duration is refused, as std refuses it.
        pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.ev.set_timeout(Dir::Read, t)
        }

        /// A timeout for each write (`None`: wait forever).
        pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.ev.set_timeout(Dir::Write, t)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.ev.read_timeout())
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.ev.write_timeout())
        }
    };
}

/// `close` and `take_error`, which every socket type has, over its `ev`.
macro_rules! close_and_error {
    () => {
        /// Closes it now, for every greenlet using it: those waiting on it wake with
        /// `ErrorKind::NotConnected`, as does every later operation. (The descriptor is
        /// freed when the value is dropped.)
        pub fn close(&self) {
            self.ev.close()
        }

        /// Reads and clears the pending socket error (`SO_ERROR`).
        pub fn take_error(&self) -> io::Result<Option<io::Error>> {
            self.ev.inner().take_error()
        }
    };
}

mod resolve;
mod tcp;
mod udp;
mod unix;

pub use crate::fd::PartialWrite;
pub use resolve::{lookup_host, ToSocketAddrs};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::net::SocketAddr;

/// Runs `f` on each of `addr`'s addresses until one succeeds; the last error otherwise.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let addrs = addr.to_socket_addrs()?;
    let mut last = None;
    for a in addrs {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "grove: the name resolved to no address",
        )
    }))
}

/// The first of `addr`'s addresses.
pub(crate) fn resolve_first(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    each_addr(addr, Ok)
}
