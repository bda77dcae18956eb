//! [`DatagramServer`]: a handler greenlet per UDP datagram (gevent's `DatagramServer`).

use super::{Handlers, ServerLoop};
use crate::net::{ToSocketAddrs, UdpSocket};
use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The most bytes one datagram may carry (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_536;

type DatagramHandler = dyn Fn(&[u8], SocketAddr, &UdpSocket);

struct Inner {
    socket: UdpSocket,
    handler: Box<DatagramHandler>,
    handlers: Handlers,
    recv_loop: ServerLoop,
    stopped: Cell<bool>,
}

/// A UDP server: one receive loop, and a greenlet per datagram running the handler, which
/// gets the data, the sender and the socket (to reply with `send_to`). With a pool, the loop
/// waits for a free slot before it reads the next datagram (the kernel buffers the rest).
///
/// ```
/// use grove::net::UdpSocket;
/// use grove::server::DatagramServer;
///
/// let server = DatagramServer::bind("127.0.0.1:0", |data, peer, sock| {
///     sock.send_to(&data.to_ascii_uppercase(), peer).unwrap();
/// })
/// .unwrap();
/// server.start().unwrap();
/// let c = UdpSocket::bind("127.0.0.1:0").unwrap();
/// c.send_to(b"shout", server.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 16];
/// let (n, _) = c.recv_from(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"SHOUT");
/// server.stop(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct DatagramServer {
    inner: Rc<Inner>,
}

impl fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServer")
            .field("addr", &self.local_addr().ok())
            .field("stopped", &self.inner.stopped.get())
            .finish()
    }
}

impl DatagramServer {
    /// A server on `socket`.
    pub fn new(
        socket: UdpSocket,
        handler: impl Fn(&[u8], SocketAddr, &UdpSocket) + 'static,
    ) -> DatagramServer {
        DatagramServer::make(socket, Box::new(handler), None)
    }

    /// Binds `addr` and makes a server on it.
    pub fn bind(
        addr: impl ToSocketAddrs,
        handler: impl Fn(&[u8], SocketAddr, &UdpSocket) + 'static,
    ) -> io::Result<DatagramServer> {
        Ok(DatagramServer::new(UdpSocket::bind(addr)?, handler))
    }

    fn make(
        socket: UdpSocket,
        handler: Box<DatagramHandler>,
        pool: Option<usize>,
    ) -> DatagramServer {
        DatagramServer {
            inner: Rc::new(Inner {
                socket,
                handler,
                handlers: Handlers::new(pool),
                recv_loop: ServerLoop::default(),
                stopped: Cell::new(false),
            }),
        }
    }

    /// Runs at most `n` handlers at once. Must be set before [`start`](Self::start).
    pub fn with_pool(self, n: usize) -> DatagramServer {
        let inner = Rc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("grove: set the pool before sharing or starting the server")
        });
        DatagramServer::make(inner.socket, inner.handler, Some(n))
    }

    /// The address it receives on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }

    /// Starts the receive loop in a greenlet of its own.
    pub fn start(&self) -> io::Result<()> {
        if self.inner.stopped.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "grove: the server was stopped; make a new one",
            ));
        }
        let inner = self.inner.clone();
        self.inner
            .recv_loop
            .start("datagram loop", move || recv_loop(&inner))
    }

    /// Starts (if needed) and waits until the server is stopped or its loop fails.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        self.inner.recv_loop.wait()
    }

    /// Stops receiving (the socket is closed), waits up to `timeout` for running handlers,
    /// then kills the rest. Returns whether all finished on their own.
    pub fn stop(&self, timeout: Duration) -> bool {
        self.inner.stopped.set(true);
        self.inner.socket.close();
        self.inner.recv_loop.kill();
        self.inner.handlers.stop(timeout)
    }
}

fn recv_loop(inner: &Rc<Inner>) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        if !inner.handlers.wait_room() {
            return Ok(());
        }
        let (n, peer) = match inner.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) if inner.stopped.get() => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = buf[..n].to_vec();
        let me = inner.clone();
        inner
            .handlers
            .spawn(peer, move || (me.handler)(&data, peer, &me.socket));
    }
}
