//! [`TcpListener`] and [`TcpStream`]: std's API shape, cooperative underneath.

use super::{each_addr, ToSocketAddrs};
use crate::fd::{self, Dir, Evented};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A TCP connection whose reads and writes park the calling greenlet instead of blocking the
/// thread. `Read` and `Write` are implemented for it and for `&TcpStream`, as for std's.
///
/// ```
/// use grove::net::{TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = grove::spawn(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf).unwrap();
///     conn.write_all(&buf).unwrap(); // echo
/// });
/// let mut c = TcpStream::connect(addr).unwrap();
/// c.write_all(b"hello").unwrap();
/// let mut back = [0; 5];
/// c.read_exact(&mut back).unwrap();
/// assert_eq!(&back, b"hello");
/// server.join().unwrap();
/// ```
pub struct TcpStream {
    ev: Evented<std::net::TcpStream>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(a) = self.local_addr() {
            d.field("local", &a);
        }
        if let Ok(a) = self.peer_addr() {
            d.field("peer", &a);
        }
        d.field("fd", &self.ev.raw()).finish()
    }
}

/// A non-blocking TCP socket for `addr`'s family.
pub(crate) fn tcp_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|e| with_addr(e, "create a socket for", addr))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl TcpStream {
    close_and_error!();
    io_timeouts!();

    /// Connects to the first of `addr`'s addresses that accepts (names are resolved on the
    /// thread pool; numeric addresses never leave this thread). Uses the default connect
    /// timeout: none.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_inner(&a, None))
    }

    /// Connects to `addr`, giving up after `timeout` (`ErrorKind::TimedOut`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: cannot connect with a zero timeout",
            ));
        }
        TcpStream::connect_inner(addr, Some(timeout))
    }

    fn connect_inner(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let s = tcp_socket(addr)?;
        match s.connect(&(*addr).into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(with_addr(e, "connect to", addr)),
        }
        let stream = TcpStream {
            ev: Evented::new(std::net::TcpStream::from(s))?,
        };
        // Writable once the handshake has ended, either way; SO_ERROR says which.
        loop {
            match stream.ev.inner().peer_addr() {
                Ok(_) => return Ok(stream),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(with_addr(e, "connect to", addr)),
            }
            if let Some(e) = stream.ev.inner().take_error()? {
                return Err(with_addr(e, "connect to", addr));
            }
            stream.ev.wait(Dir::Write, timeout).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("grove: connect to {addr} timed out after {timeout:?}"),
                    )
                } else {
                    e
                }
            })?;
            if let Some(e) = stream.ev.inner().take_error()? {
                return Err(with_addr(e, "connect to", addr));
            }
        }
    }

    /// Takes over a std stream (made non-blocking).
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            ev: Evented::new(s)?,
        })
    }

    /// Gives the std stream back (blocking again).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.ev.into_inner()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// Shuts down reading, writing or both (a blocked reader sees end of file).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.ev.inner().shutdown(how)
    }

    /// Reads without taking the data off the socket.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.peek(buf))
    }

    /// `TCP_NODELAY`: send small writes at once (on for the HTTP server).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.ev.inner().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.ev.inner().nodelay()
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.ev.inner().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.ev.inner().ttl()
    }

    /// Any other socket option, through socket2 (keepalive, linger, buffer sizes...).
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self.ev.inner())
    }

    /// Another handle to the same connection (a duplicated descriptor). Each handle checks
    /// concurrent use on its own.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        TcpStream::from_std(self.ev.inner().try_clone()?)
    }

    /// Writes all of `buf`; if it fails part way, the error carries how much was written
    /// ([`PartialWrite`](super::PartialWrite)).
    pub fn write_all_counted(&self, buf: &[u8]) -> io::Result<()> {
        fd::write_all(|b| self.ev.stream_write(b), buf)
    }
}

/// Adds what was being done, and to which address, to an OS error.
pub(crate) fn with_addr(e: io::Error, what: &str, addr: &SocketAddr) -> io::Error {
    io::Error::new(e.kind(), format!("grove: {what} {addr}: {e}"))
}

macro_rules! stream_io {
    ($t:ty) => {
        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.ev.stream_read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                self.ev.stream_read_vectored(bufs)
            }
        }

        impl Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.ev.stream_read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                self.ev.stream_read_vectored(bufs)
            }
        }

        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.ev.stream_write(buf)
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.ev.stream_write_vectored(bufs)
            }
            /// Writes all of `buf`; a failure part way carries how much was written
            /// ([`PartialWrite`](crate::net::PartialWrite)).
            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                crate::fd::write_all(|b| self.ev.stream_write(b), buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Write for &$t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.ev.stream_write(buf)
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.ev.stream_write_vectored(bufs)
            }
            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                crate::fd::write_all(|b| self.ev.stream_write(b), buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use stream_io;

stream_io!(TcpStream);

macro_rules! fd_traits {
    ($t:ty, $std:ty) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.ev.as_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.ev.raw()
            }
        }

        impl IntoRawFd for $t {
            /// Gives up the descriptor (left non-blocking).
            fn into_raw_fd(self) -> RawFd {
                let fd = self.ev.raw();
                std::mem::forget(self);
                fd
            }
        }

        impl FromRawFd for $t {
            /// # Safety
            ///
            /// `fd` must be an open descriptor of the right kind of socket, owned by the
            /// caller and handed over (it is closed when the value drops).
            unsafe fn from_raw_fd(fd: RawFd) -> Self {
                // SAFETY: forwarded to the caller.
                let inner = unsafe { <$std>::from_raw_fd(fd) };
                Self::from_std(inner).expect("grove: cannot make the descriptor non-blocking")
            }
        }

        impl From<$t> for OwnedFd {
            fn from(s: $t) -> OwnedFd {
                // SAFETY: `into_raw_fd` hands over ownership of an open descriptor.
                unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) }
            }
        }

        impl TryFrom<$std> for $t {
            type Error = io::Error;
            fn try_from(s: $std) -> io::Result<Self> {
                Self::from_std(s)
            }
        }
    };
}
pub(crate) use fd_traits;

fd_traits!(TcpStream, std::net::TcpStream);

/// A TCP listening socket whose `accept` parks the calling greenlet.
pub struct TcpListener {
    ev: Evented<std::net::TcpListener>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(a) = self.local_addr() {
            d.field("addr", &a);
        }
        d.field("fd", &self.ev.raw()).finish()
    }
}

/// The backlog grove listens with (the kernel caps it at `net.core.somaxconn`).
pub(crate) const BACKLOG: i32 = 1024;

impl TcpListener {
    close_and_error!();

    /// Binds to the first of `addr`'s addresses that works, with `SO_REUSEADDR` as std does.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::bind_with(&a, false))
    }

    /// Binds with `SO_REUSEPORT` as well, so that several listeners (one per worker hub)
    /// can share the address and the kernel spreads connections over them.
    pub fn bind_reuse_port(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::bind_with(&a, true))
    }

    fn bind_with(addr: &SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let s = tcp_socket(addr)?;
        s.set_reuse_address(true)?;
        if reuse_port {
            s.set_reuse_port(true)?;
        }
        s.bind(&(*addr).into())
            .map_err(|e| with_addr(e, "bind", addr))?;
        s.listen(BACKLOG)
            .map_err(|e| with_addr(e, "listen on", addr))?;
        Ok(TcpListener {
            ev: Evented::new(std::net::TcpListener::from(s))?,
        })
    }

    /// Takes over a std listener (made non-blocking).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            ev: Evented::new(l)?,
        })
    }

    /// Another handle to the same listening socket (a duplicated descriptor), as std's
    /// `try_clone`: accepts on either take from the same queue.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        TcpListener::from_std(self.ev.inner().try_clone()?)
    }

    /// Gives the std listener back (blocking again).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.ev.into_inner()
    }

    /// The address it listens on (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// Waits for a connection (at most the read timeout, if one is set).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self
            .ev
            .io(Dir::Read, self.ev.read_timeout(), |l| l.accept())?;
        Ok((TcpStream::from_std(s)?, a))
    }

    /// Takes a connection only if one is waiting now (`ErrorKind::WouldBlock` otherwise).
    pub(crate) fn try_accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.ev.check_open()?;
        let (s, a) = loop {
            match self.ev.inner().accept() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        Ok((TcpStream::from_std(s)?, a))
    }

    /// Waits until a connection is waiting (or the listener is closed, or `timeout`).
    pub(crate) fn wait_acceptable(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.ev.wait(Dir::Read, timeout)
    }

    /// Connections as they arrive (each `accept`'s result).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    /// A timeout for each accept (`None`: wait forever).
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.ev.set_timeout(Dir::Read, t)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.ev.is_closed()
    }

    /// `IP_TTL` for accepted connections.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.ev.inner().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.ev.inner().ttl()
    }

    /// Any other socket option, through socket2.
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self.ev.inner())
    }
}

fd_traits!(TcpListener, std::net::TcpListener);
