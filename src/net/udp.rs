//! [`UdpSocket`]: std's API shape, cooperative underneath.

use super::tcp::{fd_traits, with_addr};
use super::{each_addr, ToSocketAddrs};
use crate::fd::{Dir, Evented};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A UDP socket whose receives (and, rarely, sends) park the calling greenlet.
///
/// ```
/// use grove::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let a_addr = a.local_addr().unwrap();
/// let echo = grove::spawn(move || {
///     let mut buf = [0; 16];
///     let (n, from) = a.recv_from(&mut buf).unwrap(); // parks until the datagram comes
///     a.send_to(&buf[..n], from).unwrap();
/// });
/// b.send_to(b"ping", a_addr).unwrap();
/// let mut buf = [0; 16];
/// let (n, _) = b.recv_from(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"ping");
/// echo.join().unwrap();
/// ```
pub struct UdpSocket {
    ev: Evented<std::net::UdpSocket>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(a) = self.local_addr() {
            d.field("addr", &a);
        }
        d.field("fd", &self.ev.raw()).finish()
    }
}

impl UdpSocket {
    close_and_error!();
    io_timeouts!();

    /// Binds to the first of `addr`'s addresses that works.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::bind_with(&a, false))
    }

    /// Binds with `SO_REUSEPORT` (several sockets, e.g. one per worker hub, share the port).
    pub fn bind_reuse_port(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::bind_with(&a, true))
    }

    fn bind_with(addr: &SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))?;
        if reuse_port {
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
        }
        s.bind(&(*addr).into())
            .map_err(|e| with_addr(e, "bind", addr))?;
        UdpSocket::from_std(std::net::UdpSocket::from(s))
    }

    /// Takes over a std socket (made non-blocking).
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            ev: Evented::new(s)?,
        })
    }

    /// Another handle to the same socket (a duplicated descriptor), as std's `try_clone`.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.ev.inner().try_clone()?)
    }

    /// Gives the std socket back (blocking again).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.ev.into_inner()
    }

    /// Sets the default destination (and the only source `recv` accepts).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| {
            self.ev
                .inner()
                .connect(a)
                .map_err(|e| super::tcp::with_addr(e, "connect to", &a))
        })
    }

    /// Sends to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Write, self.ev.write_timeout(), |s| s.send(buf))
    }

    /// Receives from the connected address.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.recv(buf))
    }

    /// Sends `buf` to `addr` (a name is resolved first, on the thread pool).
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let to = super::resolve_first(addr)?;
        self.ev
            .io(Dir::Write, self.ev.write_timeout(), |s| s.send_to(buf, to))
    }

    /// Receives a datagram and its source.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.recv_from(buf))
    }

    /// Receives without taking the datagram off the socket.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.peek(buf))
    }

    /// Like [`recv_from`](Self::recv_from), without taking the datagram.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.peek_from(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().peer_addr()
    }

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.ev.inner().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.ev.inner().broadcast()
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.ev.inner().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.ev.inner().ttl()
    }

    /// Joins an IPv4 multicast group on `interface`.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.ev.inner().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.ev.inner().leave_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group on interface number `interface`.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.ev.inner().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.ev.inner().leave_multicast_v6(group, interface)
    }

    /// Any other socket option, through socket2.
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self.ev.inner())
    }
}

fd_traits!(UdpSocket, std::net::UdpSocket);
