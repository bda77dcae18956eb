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
