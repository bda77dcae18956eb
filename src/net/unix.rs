//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`], with std's API
//! shape (and std's `SocketAddr` for their addresses), cooperative underneath.

use super::tcp::{fd_traits, stream_io};
use crate::fd::{self, Dir, Evented};
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{self as std_unix, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// `e` with what was being done and to which path (the Unix twin of `tcp::with_addr`).
fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("grove: {what} {}: {e}", path.display()))
}

/// The error of a Unix-domain connect that ran out of time.
fn connect_timed_out(path: &Path, timeout: Option<Duration>) -> io::Error {
    let e = io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out after {timeout:?}"),
    );
    with_path(e, "connect to", path)
}

/// A Unix-domain stream whose reads and writes park the calling greenlet.
///
/// ```
/// use grove::net::UnixStream;
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// let g = grove::spawn(move || {
///     let mut s = String::new();
///     b.read_to_string(&mut s).unwrap(); // parks until `a` is closed
///     s
/// });
/// a.write_all(b"over a socketpair").unwrap();
/// drop(a);
/// assert_eq!(g.get().unwrap(), "over a socketpair");
/// ```
pub struct UnixStream {
    ev: Evented<std_unix::UnixStream>,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.ev.raw())
            .finish()
    }
}

impl UnixStream {
    close_and_error!();
    io_timeouts!();

    /// Connects to the socket at `path`, cooperatively: a listener whose backlog is full
    /// makes the connect wait (other greenlets run meanwhile) until there is room, as a
    /// blocking connect would. No timeout; see [`connect_timeout`](Self::connect_timeout).
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        UnixStream::connect_inner(path.as_ref(), None)
    }

    /// [`connect`](Self::connect), giving up after `timeout` (`ErrorKind::TimedOut`).
    pub fn connect_timeout(path: impl AsRef<Path>, timeout: Duration) -> io::Result<UnixStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: cannot connect with a zero timeout",
            ));
        }
        UnixStream::connect_inner(path.as_ref(), Some(timeout))
    }

    fn connect_inner(path: &Path, timeout: Option<Duration>) -> io::Result<UnixStream> {
        use socket2::{Domain, SockAddr, Socket, Type};
        let context = |e: io::Error| with_path(e, "connect to", path);
        let addr = SockAddr::unix(path).map_err(context)?;
        // socket2 makes it close-on-exec (atomically where the platform can).
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(context)?;
        s.set_nonblocking(true).map_err(context)?;
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        // A full backlog is EAGAIN with nothing in progress (Linux): the connect is made
        // again after a pause, doubling up to PAUSE_MAX, since the listener's socket tells
        // nobody when room appears. Elsewhere the connect may be in progress instead.
        const PAUSE_MAX: Duration = Duration::from_millis(50);
        let mut pause = Duration::from_millis(1);
        let in_progress = loop {
            match s.connect(&addr) {
                Ok(()) => break false,
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left =
                        deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Err(connect_timed_out(path, timeout));
                    }
                    crate::sleep(left.map_or(pause, |l| l.min(pause)));
                    pause = (pause * 2).min(PAUSE_MAX);
                }
                Err(e) => return Err(context(e)),
            }
        };
        let stream = UnixStream::from_std(std_unix::UnixStream::from(OwnedFd::from(s)))?;
        if in_progress {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            stream.ev.wait(Dir::Write, left).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    connect_timed_out(path, timeout)
                } else {
                    context(e)
                }
            })?;
            if let Some(e) = stream.ev.inner().take_error().map_err(context)? {
                return Err(context(e));
            }
        }
        Ok(stream)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std_unix::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Takes over a std stream (made non-blocking).
    pub fn from_std(s: std_unix::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            ev: Evented::new(s)?,
        })
    }

    /// Gives the std stream back (blocking again).
    pub fn into_std(self) -> io::Result<std_unix::UnixStream> {
        self.ev.into_inner()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().peer_addr()
    }

    /// Shuts down reading, writing or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.ev.inner().shutdown(how)
    }

    /// Another handle to the same connection (a duplicated descriptor).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        UnixStream::from_std(self.ev.inner().try_clone()?)
    }

    /// Writes all of `buf`; a failure part way carries how much was written.
    pub fn write_all_counted(&self, buf: &[u8]) -> io::Result<()> {
        fd::write_all(|b| self.ev.stream_write(b), buf)
    }
}

stream_io!(UnixStream);
fd_traits!(UnixStream, std_unix::UnixStream);

/// A Unix-domain listening socket whose `accept` parks the calling greenlet.
pub struct UnixListener {
    ev: Evented<std_unix::UnixListener>,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.ev.raw())
            .finish()
    }
}

impl UnixListener {
    close_and_error!();

    /// Binds a new socket at `path` (which must not exist).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let l = std_unix::UnixListener::bind(path).map_err(|e| with_path(e, "bind", path))?;
        UnixListener::from_std(l)
    }

    /// Takes over a std listener (made non-blocking).
    pub fn from_std(l: std_unix::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            ev: Evented::new(l)?,
        })
    }

    /// Another handle to the same listening socket (a duplicated descriptor), as std's
    /// `try_clone`.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        UnixListener::from_std(self.ev.inner().try_clone()?)
    }

    /// Gives the std listener back (blocking again).
    pub fn into_std(self) -> io::Result<std_unix::UnixListener> {
        self.ev.into_inner()
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self
            .ev
            .io(Dir::Read, self.ev.read_timeout(), |l| l.accept())?;
        Ok((UnixStream::from_std(s)?, a))
    }

    /// Connections as they arrive.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// A timeout for each accept.
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.ev.set_timeout(Dir::Read, t)
    }
}

fd_traits!(UnixListener, std_unix::UnixListener);

/// A Unix-domain datagram socket whose receives park the calling greenlet.
pub struct UnixDatagram {
    ev: Evented<std_unix::UnixDatagram>,
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.ev.raw())
            .finish()
    }
}

impl UnixDatagram {
    close_and_error!();
    io_timeouts!();

    /// A socket bound to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let s = std_unix::UnixDatagram::bind(path).map_err(|e| with_path(e, "bind", path))?;
        UnixDatagram::from_std(s)
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::unbound()?)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std_unix::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Takes over a std socket (made non-blocking).
    pub fn from_std(s: std_unix::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            ev: Evented::new(s)?,
        })
    }

    /// Another handle to the same socket (a duplicated descriptor), as std's `try_clone`.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(self.ev.inner().try_clone()?)
    }

    /// Gives the std socket back (blocking again).
    pub fn into_std(self) -> io::Result<std_unix::UnixDatagram> {
        self.ev.into_inner()
    }

    /// Sets the default destination.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        self.ev
            .inner()
            .connect(path)
            .map_err(|e| with_path(e, "connect to", path))
    }

    /// Sends to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Write, self.ev.write_timeout(), |s| s.send(buf))
    }

    /// Receives a datagram.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.recv(buf))
    }

    /// Sends to `path`.
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.ev.io(Dir::Write, self.ev.write_timeout(), |s| {
            s.send_to(buf, path)
        })
    }

    /// Receives a datagram and its source.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.ev
            .io(Dir::Read, self.ev.read_timeout(), |s| s.recv_from(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().local_addr()
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ev.inner().peer_addr()
    }

    /// Shuts down reading, writing or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.ev.inner().shutdown(how)
    }
}

fd_traits!(UnixDatagram, std_unix::UnixDatagram);
