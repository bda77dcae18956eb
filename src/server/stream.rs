//! [`StreamServer`]: accept connections and run a handler for each in its own greenlet
//! (gevent's `StreamServer`).

use super::{AcceptError, Backoff, Handlers, ServerLoop, MAX_ACCEPT};
use crate::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The handler a server runs for each connection, in a greenlet of its own.
pub type Handler = dyn Fn(TcpStream, SocketAddr);

struct Inner {
    listener: TcpListener,
    handler: Box<Handler>,
    handlers: Handlers,
    max_accept: usize,
    accept_loop: ServerLoop,
    stopped: Cell<bool>,
    /// Run when `stop` begins, after the listener is closed (a protocol closes its idle
    /// connections there).
    on_stop: RefCell<Vec<Box<dyn Fn()>>>,
}

/// A TCP server: one accept loop greenlet, and one greenlet per connection running the
/// handler. Clones share the server.
///
/// # Rules
///
/// * At most [`MAX_ACCEPT`] connections are accepted per wake-up of the accept loop, then the
///   loop lets the handlers run.
/// * With a pool ([`with_pool`](Self::with_pool)), the loop stops accepting while the pool
///   is full: waiting connections stay in the kernel's backlog.
/// * Accept errors are classified: a connection aborted before it was accepted is skipped at
///   once; running out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`)
///   backs off, 10 ms doubling to 1 s, without burning CPU, until an accept succeeds again;
///   anything else is reported once on stderr and backed off the same way.
/// * [`stop`](Self::stop) closes the listener at once (the accept loop ends), runs the
///   [`on_stop`](Self::on_stop) hooks, waits for running handlers up to its timeout, then
///   kills the rest.
///
/// ```
/// use grove::server::StreamServer;
/// use std::io::{Read, Write};
///
/// let server = StreamServer::bind("127.0.0.1:0", |mut conn, _peer| {
///     let mut buf = [0; 64];
///     while let Ok(n @ 1..) = conn.read(&mut buf) {
///         conn.write_all(&buf[..n]).unwrap(); // echo
///     }
/// })
/// .unwrap();
/// server.start().unwrap();
/// let mut c = grove::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
/// c.write_all(b"ping").unwrap();
/// let mut back = [0; 4];
/// c.read_exact(&mut back).unwrap();
/// assert_eq!(&back, b"ping");
/// server.stop(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct StreamServer {
    inner: Rc<Inner>,
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("addr", &self.local_addr().ok())
            .field("handlers", &self.inner.handlers.len())
            .field("stopped", &self.inner.stopped.get())
            .finish()
    }
}

impl StreamServer {
    /// A server on `listener` running `handler` for each connection.
    pub fn new(
        listener: TcpListener,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> StreamServer {
        StreamServer::make(listener, Box::new(handler), None, MAX_ACCEPT)
    }

    /// Binds `addr` and makes a server on it.
    pub fn bind(
        addr: impl ToSocketAddrs,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        Ok(StreamServer::new(TcpListener::bind(addr)?, handler))
    }

    pub(crate) fn make(
        listener: TcpListener,
        handler: Box<Handler>,
        pool: Option<usize>,
        max_accept: usize,
    ) -> StreamServer {
        StreamServer {
            inner: Rc::new(Inner {
                listener,
                handler,
                handlers: Handlers::new(pool),
                max_accept: max_accept.max(1),
                accept_loop: ServerLoop::default(),
                stopped: Cell::new(false),
                on_stop: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Runs at most `n` handlers at once; while `n` run, the server stops accepting. Must be
    /// set before [`start`](Self::start).
    pub fn with_pool(self, n: usize) -> StreamServer {
        let inner = Rc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("grove: set the pool before sharing or starting the server")
        });
        StreamServer::make(inner.listener, inner.handler, Some(n), inner.max_accept)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.listener.local_addr()
    }

    /// How many handlers are running.
    pub fn handlers(&self) -> usize {
        self.inner.handlers.len()
    }

    /// Runs `f` when [`stop`](Self::stop) begins, right after the listener is closed and
    /// before the wait for handlers: where a protocol tells its idle connections to end
    /// (the HTTP server closes idle keep-alive connections there).
    pub fn on_stop(&self, f: impl Fn() + 'static) {
        self.inner.on_stop.borrow_mut().push(Box::new(f));
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    /// Starts the accept loop in a greenlet of its own and returns at once. Starting a
    /// started server does nothing; a stopped one cannot start again.
    pub fn start(&self) -> io::Result<()> {
        if self.inner.stopped.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "grove: the server was stopped; make a new one",
            ));
        }
        let inner = self.inner.clone();
        self.inner
            .accept_loop
            .start("accept loop", move || accept_loop(&inner))
    }

    /// Starts (if needed) and waits until the server is stopped (from another greenlet) or
    /// its accept loop fails.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        self.inner.accept_loop.wait()
    }

    /// Stops: closes the listener now (no more connections), waits up to `timeout` for the
    /// running handlers to finish, then kills those still running. Returns whether all
    /// finished on their own.
    pub fn stop(&self, timeout: Duration) -> bool {
        self.inner.stopped.set(true);
        self.inner.listener.close();
        self.inner.accept_loop.kill();
        let hooks = std::mem::take(&mut *self.inner.on_stop.borrow_mut());
        for f in &hooks {
            f();
        }
        self.inner.handlers.stop(timeout)
    }
}

/// The accept loop: see the rules on [`StreamServer`].
fn accept_loop(inner: &Rc<Inner>) -> io::Result<()> {
    let mut backoff = Backoff::new();
    loop {
        if !inner.handlers.wait_room() {
            return Ok(());
        }
        let mut accepted = 0;
        let mut must_wait = false;
        while accepted < inner.max_accept {
            if inner.handlers.is_full() {
                break;
            }
            match inner.listener.try_accept() {
                Ok((conn, peer)) => {
                    accepted += 1;
                    backoff.reset();
                    spawn_handler(inner, conn, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    must_wait = true;
                    break;
                }
                Err(_) if inner.stopped.get() || inner.listener.is_closed() => return Ok(()),
                Err(e) => match AcceptError::classify(&e) {
                    AcceptError::Retry => continue,
                    AcceptError::Resources => {
                        backoff.sleep();
                        break;
                    }
                    AcceptError::Other => {
                        backoff.report_once(&e);
                        backoff.sleep();
                        break;
                    }
                },
            }
        }
        if inner.stopped.get() {
            return Ok(());
        }
        if must_wait {
            match inner.listener.wait_acceptable(None) {
                Ok(()) => {}
                Err(_) if inner.stopped.get() || inner.listener.is_closed() => return Ok(()),
                Err(e) => return Err(e),
            }
        } else {
            // A full batch: let the handlers run before accepting more.
            crate::yield_now();
        }
    }
}

fn spawn_handler(inner: &Rc<Inner>, conn: TcpStream, peer: SocketAddr) {
    let me = inner.clone();
    inner.handlers.spawn(peer, move || (me.handler)(conn, peer));
}
