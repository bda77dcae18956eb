//! [`Workers`]: one [`StreamServer`] per hub on `n` threads, sharing one address through
//! `SO_REUSEPORT` (the kernel spreads incoming connections over the listeners), and
//! [`ServerBuilder`], which configures either kind.

use super::{StreamServer, MAX_ACCEPT};
use crate::net::{TcpListener, TcpStream, ToSocketAddrs};
use crate::sync::mpsc;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Configures a stream server: the address, how many worker hubs, a handler pool per hub.
///
/// ```
/// use grove::server::StreamServer;
/// use std::io::Write;
///
/// let workers = StreamServer::builder("127.0.0.1:0")
///     .unwrap()
///     .workers(2)
///     .spawn_workers(|mut conn, _| {
///         let _ = conn.write_all(b"hi\n");
///     })
///     .unwrap();
/// let mut c = grove::net::TcpStream::connect(workers.local_addr()).unwrap();
/// let mut s = String::new();
/// std::io::Read::read_to_string(&mut c, &mut s).unwrap();
/// assert_eq!(s, "hi\n");
/// assert!(workers.stop(std::time::Duration::from_secs(1)));
/// ```
#[derive(Clone)]
pub struct ServerBuilder {
    addrs: Vec<SocketAddr>,
    /// A listener bound by the caller, used instead of binding `addrs` (one worker only).
    listener: Option<Arc<std::sync::Mutex<Option<TcpListener>>>>,
    workers: usize,
    pool: Option<usize>,
    max_accept: usize,
    on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("addrs", &self.addrs)
            .field("workers", &self.workers)
            .field("pool", &self.pool)
            .field("max_accept", &self.max_accept)
            .finish()
    }
}

impl StreamServer {
    /// A builder for a server on `addr` (resolved now).
    pub fn builder(addr: impl ToSocketAddrs) -> io::Result<ServerBuilder> {
        Ok(ServerBuilder {
            addrs: addr.to_socket_addrs()?,
            listener: None,
            workers: 1,
            pool: None,
            max_accept: MAX_ACCEPT,
            on_stop: None,
        })
    }
}

impl StreamServer {
    /// A builder for a server on a listener you bound yourself (one worker only).
    pub fn builder_on(listener: TcpListener) -> io::Result<ServerBuilder> {
        Ok(ServerBuilder {
            addrs: vec![listener.local_addr()?],
            listener: Some(Arc::new(std::sync::Mutex::new(Some(listener)))),
            workers: 1,
            pool: None,
            max_accept: MAX_ACCEPT,
            on_stop: None,
        })
    }
}

impl ServerBuilder {
    /// How many hubs (threads) serve, each with its own listener (default 1).
    pub fn workers(mut self, n: usize) -> ServerBuilder {
        self.workers = n.max(1);
        self
    }

    /// At most `n` handlers at once, per hub.
    pub fn pool(mut self, n: usize) -> ServerBuilder {
        self.pool = Some(n);
        self
    }

    /// At most `n` accepts per wake-up (default [`MAX_ACCEPT`]).
    pub fn max_accept(mut self, n: usize) -> ServerBuilder {
        self.max_accept = n.max(1);
        self
    }

    /// Runs `f` on each worker's hub when its server stops (see [`StreamServer::on_stop`]).
    pub fn on_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> ServerBuilder {
        self.on_stop = Some(Arc::new(f));
        self
    }

    fn make(&self, listener: TcpListener, handler: Box<super::Handler>) -> StreamServer {
        let s = StreamServer::make(listener, handler, self.pool, self.max_accept);
        if let Some(f) = self.on_stop.clone() {
            s.on_stop(move || f());
        }
        s
    }

    fn listeners(&self) -> io::Result<Vec<TcpListener>> {
        if let Some(l) = &self.listener {
            if self.workers != 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "grove: a server on a listener you bound serves from one hub; give an address for several workers",
                ));
            }
            let taken = l.lock().unwrap_or_else(|e| e.into_inner()).take();
            return taken.map(|l| vec![l]).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "grove: this builder's listener was used already",
                )
            });
        }
        if self.workers == 1 {
            return Ok(vec![TcpListener::bind(&self.addrs[..])?]);
        }
        // The first listener picks the port (for port 0); the others share it.
        let first = TcpListener::bind_reuse_port(&self.addrs[..])?;
        let addr = first.local_addr()?;
        let mut v = vec![first];
        for _ in 1..self.workers {
            v.push(TcpListener::bind_reuse_port(addr)?);
        }
        Ok(v)
    }

    /// A started server on this thread's hub (one worker only: for several, use
    /// [`spawn_workers`](Self::spawn_workers)).
    pub fn start(
        self,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        if self.workers != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: a server with several workers needs a Send + Sync handler: use spawn_workers",
            ));
        }
        let l = self.listeners()?.pop().expect("one listener");
        let s = self.make(l, Box::new(handler));
        s.start()?;
        Ok(s)
    }

    /// Starts `workers` threads, each running a hub with its own listener and server; the
    /// handler is shared by all of them.
    pub fn spawn_workers(
        self,
        handler: impl Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    ) -> io::Result<Workers> {
        let listeners = self.listeners()?;
        let local_addr = listeners[0].local_addr()?;
        let handler = Arc::new(handler);
        let (done_tx, done) = mpsc::channel();
        let mut threads = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (ctl, ctl_rx) = mpsc::channel::<Duration>();
            let h = handler.clone();
            let done_tx = done_tx.clone();
            let me = self.clone();
            let t = std::thread::Builder::new()
                .name(format!("grove-worker-{i}"))
                .spawn(move || {
                    let server = me.make(listener, Box::new(move |s, a| h(s, a)));
                    let r = run_worker(server, ctl_rx);
                    let _ = done_tx.send(r.is_ok());
                    r
                })?;
            threads.push((t, ctl));
        }
        Ok(Workers {
            local_addr,
            threads,
            done,
        })
    }
}

/// One worker thread: a server on this thread's hub until told to stop.
fn run_worker(server: StreamServer, ctl: mpsc::Receiver<Duration>) -> io::Result<bool> {
    server.start()?;
    match ctl.recv() {
        Ok(timeout) => Ok(server.stop(timeout)),
        // The `Workers` handle was dropped: serve on, detached.
        Err(_) => server.serve_forever().map(|()| true),
    }
}

/// Servers running on several hubs; see [`ServerBuilder::spawn_workers`]. Dropping it leaves
/// them serving (detached).
pub struct Workers {
    local_addr: SocketAddr,
    threads: Vec<(JoinHandle<io::Result<bool>>, mpsc::Sender<Duration>)>,
    done: mpsc::Receiver<bool>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("addr", &self.local_addr)
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl Workers {
    /// The address they listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many worker hubs run.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Stops every worker's server (see [`StreamServer::stop`]) and waits for the threads to
    /// end; the calling greenlet waits cooperatively. Returns whether every handler finished
    /// on its own.
    pub fn stop(self, timeout: Duration) -> bool {
        for (_, ctl) in &self.threads {
            let _ = ctl.send(timeout);
        }
        let mut all = true;
        for _ in 0..self.threads.len() {
            match self.done.recv() {
                Ok(ok) => all &= ok,
                Err(_) => break,
            }
        }
        for (t, _) in self.threads {
            all &= matches!(t.join(), Ok(Ok(true)));
        }
        all
    }
}
