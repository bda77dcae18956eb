//! The HTTP/1.1 server: gevent's pywsgi done right. One greenlet per connection runs a plain
//! blocking loop over the sans-I/O [`Conn`]: read into its buffer, take the next event, call
//! the handler, write what [`write_head`] and the [`BodyEncoder`] produce.
//!
//! # The connection loop
//!
//! ```text
//!   ┌─> wait for a request head ── idle (nothing buffered): keep-alive timeout; the
//!   │                              connection counts as idle, and a shutdown closes it
//!   │                            ── head begun: header timeout from its first byte (a client
//!   │                              sending a byte at a time is cut off there)
//!   │   Error -> answer its status (400, 413, 414, 417, 431, 505), close
//!   │   Request -> the handler runs; its body reads pull from the socket (body timeout;
//!   │              `100 Continue` on its first read if the client asked)
//!   │   a framing error while it read -> answer that error instead, close
//!   │   a panic -> 500, close (this connection only)
//!   │   the response: head and body in one write where they fit (writev for large
//!   │   bodies); a handler's header with CR, LF or NUL -> 500 instead, never injected
//!   └── keep-alive (and not shutting down)? next request : close
//! ```
//!
//! TCP_NODELAY is on, so a response leaves at once (no 40 ms delayed-ACK stall).
#![forbid(unsafe_code)]

use super::handler::{Body, Handler, ReasonPhrase, Request, Response, ResponseBody};
use super::log::{log_to_stderr, AccessRecord, RequestLine};
use super::{
    write_error, write_head, write_head_map, BodyEncoder, Conn, DateCache, Event, Framing, Head,
    HeadOptions, HttpError, Limits, ResponseContext,
};
use crate::hub::clock::unix_secs_coarse;
use crate::hub::event_loop::ElapsedSignal;
use crate::net::{TcpListener, TcpStream, ToSocketAddrs};
use crate::server::{ServerBuilder, StreamServer, Workers};
use crate::GreenletExit;
use http::StatusCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The access log hook.
type AccessLog = Arc<dyn Fn(&AccessRecord) + Send + Sync>;

/// Bodies up to this size are copied behind the head and sent in one `write`; larger ones
/// go out with the head in one `writev`, uncopied.
const COPY_BODY_MAX: usize = 16 * 1024;

/// A streamed body is sent whenever this much is buffered.
const STREAM_FLUSH: usize = 16 * 1024;

/// What every connection of one server shares (read-only).
struct Config {
    id: u64,
    limits: Limits,
    header_timeout: Duration,
    body_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    access_log: Option<AccessLog>,
}

static NEXT_SERVER: AtomicU64 = AtomicU64::new(1);

/// Configures an HTTP server: address, worker hubs, limits, timeouts, the access log.
///
/// ```
/// use grove::http::{HttpServer, Request, Response};
/// use std::io::{Read, Write};
///
/// let server = HttpServer::bind("127.0.0.1:0")
///     .unwrap()
///     .no_access_log()
///     .start(|req: Request| Response::new(format!("you asked for {}", req.uri()).into()))
///     .unwrap();
/// let mut c = grove::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
/// c.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut answer = String::new();
/// c.read_to_string(&mut answer).unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(answer.ends_with("you asked for /hi"));
/// assert!(server.shutdown(std::time::Duration::from_secs(1)));
/// ```
pub struct HttpServer {
    builder: ServerBuilder,
    workers: usize,
    limits: Limits,
    header_timeout: Duration,
    body_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    access_log: Option<AccessLog>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("builder", &self.builder)
            .field("limits", &self.limits)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("keep_alive_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .finish()
    }
}

impl HttpServer {
    /// A server for `addr` (resolved now, bound when started), with the defaults: one hub,
    /// no connection limit, [`Limits::default`], a 10 s header timeout, 30 s body and write
    /// timeouts, a 60 s keep-alive idle timeout, the Common Log Format on stderr.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<HttpServer> {
        Ok(HttpServer {
            builder: StreamServer::builder(addr)?,
            workers: 1,
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            access_log: Some(Arc::new(log_to_stderr)),
        })
    }

    /// A server on a listener you bound yourself (served from this hub; for several workers
    /// give an address to [`bind`](Self::bind)).
    pub fn from_listener(listener: TcpListener) -> io::Result<HttpServer> {
        let mut s = HttpServer::bind(listener.local_addr()?)?;
        s.builder = StreamServer::builder_on(listener)?;
        Ok(s)
    }

    /// Serve from `n` hubs on `n` threads, each accepting on its own `SO_REUSEPORT` listener
    /// (start with [`spawn_workers`](Self::spawn_workers)).
    pub fn workers(mut self, n: usize) -> HttpServer {
        self.workers = n.max(1);
        self.builder = self.builder.workers(n);
        self
    }

    /// At most `n` connections served at once per hub; while `n` are open, no more are
    /// accepted (they wait in the kernel's backlog).
    pub fn pool(mut self, n: usize) -> HttpServer {
        self.builder = self.builder.pool(n);
        self
    }

    /// The limits on what a client may send (request line, headers, body...).
    pub fn limits(mut self, limits: Limits) -> HttpServer {
        self.limits = limits;
        self
    }

    /// How long a request head may take to arrive, from its first byte.
    pub fn header_timeout(mut self, d: Duration) -> HttpServer {
        self.header_timeout = d;
        self
    }

    /// How long each read of a request body may wait.
    pub fn body_timeout(mut self, d: Duration) -> HttpServer {
        self.body_timeout = d;
        self
    }

    /// How long a kept-alive connection may stay idle between requests.
    pub fn keep_alive_timeout(mut self, d: Duration) -> HttpServer {
        self.idle_timeout = d;
        self
    }

    /// How long each write of a response may wait for the client to take data.
    pub fn write_timeout(mut self, d: Duration) -> HttpServer {
        self.write_timeout = d;
        self
    }

    /// Calls `f` for every response (instead of the default Common Log Format on stderr).
    pub fn access_log(mut self, f: impl Fn(&AccessRecord) + Send + Sync + 'static) -> HttpServer {
        self.access_log = Some(Arc::new(f));
        self
    }

    /// No access log.
    pub fn no_access_log(mut self) -> HttpServer {
        self.access_log = None;
        self
    }

    fn config(&self) -> Arc<Config> {
        Arc::new(Config {
            id: NEXT_SERVER.fetch_add(1, Ordering::Relaxed),
            limits: self.limits.clone(),
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            access_log: self.access_log.clone(),
        })
    }

    /// Starts serving on this thread's hub (one worker) and returns at once.
    pub fn start(self, handler: impl Handler + 'static) -> io::Result<Running> {
        if self.workers > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: an HTTP server with several workers needs a Send + Sync handler: use spawn_workers",
            ));
        }
        let cfg = self.config();
        let id = cfg.id;
        let handler = Rc::new(handler);
        let server = self
            .builder
            .on_stop(move || stop_hub(id))
            .start(move |sock, peer| serve_connection(&cfg, &*handler, sock, peer))?;
        Ok(Running { server })
    }

    /// Starts on this thread's hub and serves until the server is shut down (from another
    /// greenlet) or fails.
    pub fn serve_forever(self, handler: impl Handler + 'static) -> io::Result<()> {
        self.start(handler)?.server.serve_forever()
    }

    /// Starts the worker hubs (see [`workers`](Self::workers)); the handler is shared by all.
    pub fn spawn_workers(
        self,
        handler: impl Handler + Send + Sync + 'static,
    ) -> io::Result<RunningWorkers> {
        let cfg = self.config();
        let id = cfg.id;
        let handler = Arc::new(handler);
        let workers = self
            .builder
            .on_stop(move || stop_hub(id))
            .spawn_workers(move |sock, peer| serve_connection(&cfg, &*handler, sock, peer))?;
        Ok(RunningWorkers { workers })
    }
}

/// A running server on this thread's hub.
#[derive(Debug, Clone)]
pub struct Running {
    server: StreamServer,
}

impl Running {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.server.handlers()
    }

    /// Graceful shutdown: stops accepting, closes idle keep-alive connections at once, lets
    /// requests in flight finish (their responses say `Connection: close`) for up to
    /// `timeout`, then kills what is left. Returns whether everything finished in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.server.stop(timeout)
    }

    /// Waits until the server is shut down from another greenlet.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.server.serve_forever()
    }
}

/// Servers running on several hubs.
#[derive(Debug)]
pub struct RunningWorkers {
    workers: Workers,
}

impl RunningWorkers {
    /// The address they listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.workers.local_addr()
    }

    /// Graceful shutdown of every hub's server (see [`Running::shutdown`]).
    pub fn shutdown(self, timeout: Duration) -> bool {
        self.workers.stop(timeout)
    }
}

/// One server's state on one hub: its open connections (a shutdown closes the idle ones),
/// whether it is shutting down, the cached `Date`.
#[derive(Default)]
struct HubState {
    stopping: Cell<bool>,
    /// Ticks of the idle reaper (see [`reap_idle`]): the coarse clock idle connections are
    /// timed by.
    tick: Cell<u64>,
    reaper: Cell<bool>,
    /// Open connections, in slots (a connection keeps its slot for its whole life, so waiting
    /// for the next request costs no table update: only its `idle` flag changes).
    conns: RefCell<Vec<Option<Rc<ConnIo>>>>,
    free: RefCell<Vec<usize>>,
    date: RefCell<DateCache>,
}

impl HubState {
    fn enter(&self, c: &Rc<ConnIo>) -> usize {
        let mut conns = self.conns.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => {
                conns[i] = Some(c.clone());
                i
            }
            None => {
                conns.push(Some(c.clone()));
                conns.len() - 1
            }
        }
    }

    fn leave(&self, slot: usize) {
        self.conns.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
    }
}

/// Frees a connection's slot when its loop ends, however it ends.
struct Slot<'a>(&'a HubState, usize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

thread_local! {
    static HUBS: RefCell<HashMap<u64, Rc<HubState>>> = RefCell::new(HashMap::new());
    /// Servers stopped on this hub: a connection accepted before the stop whose greenlet
    /// starts after it must find its server stopping, not make a fresh state that is not
    /// (it would serve keep-alive and start a reaper nothing ends). Eight bytes a server.
    /// (Today `StreamServer::stop` lets queued handlers start before the stop hooks run, so
    /// this is a guard for any other order, such as a worker hub's.)
    static STOPPED: RefCell<std::collections::HashSet<u64>> =
        RefCell::new(std::collections::HashSet::new());
}

fn hub_state(id: u64) -> Rc<HubState> {
    if STOPPED.with(|s| s.borrow().contains(&id)) {
        let st = HubState::default();
        st.stopping.set(true);
        return Rc::new(st);
    }
    HUBS.with(|h| h.borrow_mut().entry(id).or_default().clone())
}

/// A server's `on_stop` on this hub: no more keep-alive, idle connections closed now.
fn stop_hub(id: u64) {
    STOPPED.with(|s| s.borrow_mut().insert(id));
    let st = HUBS.with(|h| h.borrow_mut().remove(&id));
    let Some(st) = st else { return };
    st.stopping.set(true);
    let idle: Vec<Rc<ConnIo>> = st
        .conns
        .borrow()
        .iter()
        .flatten()
        .filter(|c| c.idle.get())
        .cloned()
        .collect();
    for c in idle {
        c.sock.close();
    }
}

/// One connection: the socket and the protocol state, shared by the connection loop and the
/// request body the handler reads.
pub(crate) struct ConnIo {
    sock: TcpStream,
    conn: RefCell<Conn>,
    body_timeout: Duration,
    /// The current request's body has been read to its end.
    body_done: Cell<bool>,
    /// A framing error met while the handler read the body: answered instead of its response.
    failed: Cell<Option<HttpError>>,
    /// The socket failed or timed out while the handler read: close after the response.
    broken: Cell<bool>,
    /// Waiting for the next request with nothing of it received: a shutdown closes it.
    idle: Cell<bool>,
    /// The reaper's tick when it began waiting so.
    idle_since: Cell<u64>,
}

impl ConnIo {
    /// Reads once from the socket into the connection's buffer (end of file included).
    /// `timeout`: `None` waits for as long as it takes (the idle wait, which the reaper
    /// times).
    fn fill(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut conn = self.conn.borrow_mut();
        self.sock
            .set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        match (&self.sock).read(conn.read_buf())? {
            0 => conn.feed_eof(),
            n => conn.filled(n),
        }
        Ok(())
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all_counted(bytes)
    }

    /// Ends a connection answered with an error before its request was read to the end
    /// (a 413 before a large body, say): the client may still be sending. Closing now would
    /// make the kernel answer its next bytes with a reset, and a client that writes its
    /// whole body before it reads (most do) would see the reset instead of the answer. So:
    /// shut down the sending side (the answer is complete), then read and drop what still
    /// comes, until the client closes or goes quiet for [`LINGER_QUIET`], for at most
    /// [`LINGER_MAX`] in all. (Apache's "lingering close"; nginx's `lingering_close`.)
    fn linger_close(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let end = Instant::now() + LINGER_MAX;
        let mut buf = [0u8; 2048];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero()
                || self
                    .sock
                    .set_read_timeout(Some(left.min(LINGER_QUIET)))
                    .is_err()
            {
                return;
            }
            match (&self.sock).read(&mut buf) {
                Ok(1..) => {}
                Ok(0) | Err(_) => return,
            }
        }
    }

    /// The handler's `Read` of the request body.
    pub(crate) fn read_body(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.body_done.get() {
            return Ok(0);
        }
        let send_continue = self.conn.borrow_mut().body_read_started();
        if send_continue {
            let mut out = Vec::with_capacity(32);
            super::write_continue(&mut out);
            self.send(&out).inspect_err(|_| self.broken.set(true))?;
        }
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                match conn.next_event_max(buf.len()) {
                    Some(Event::Body(data)) => {
                        let n = data.len();
                        buf[..n].copy_from_slice(data);
                        return Ok(n);
                    }
                    Some(Event::BodyEnd) | Some(Event::Request(_)) => {
                        self.body_done.set(true);
                        return Ok(0);
                    }
                    Some(Event::Error(e)) => {
                        self.failed.set(Some(e));
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    None => {}
                }
                if !conn.wants_read() {
                    self.body_done.set(true);
                    return Ok(0);
                }
            }
            self.fill(Some(self.body_timeout))
                .inspect_err(|_| self.broken.set(true))?;
        }
    }
}

/// The idle reaper of one server on one hub: every tick (a quarter of the keep-alive
/// timeout, at most a second) it closes the connections that have been waiting for their next
/// request for the whole timeout. One cheap greenlet instead of a timer armed and cancelled for
/// every request; a connection is closed between one and about one and a quarter timeouts
/// after its last response. Ends when the server stops.
fn reap_idle(hub: &HubState, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let ticks = (timeout.as_nanos() / tick.as_nanos()).max(1) as u64;
    while !hub.stopping.get() {
        crate::sleep(tick);
        let now = hub.tick.get() + 1;
        hub.tick.set(now);
        let expired: Vec<Rc<ConnIo>> = hub
            .conns
            .borrow()
            .iter()
            .flatten()
            .filter(|c| c.idle.get() && now - c.idle_since.get() >= ticks)
            .cloned()
            .collect();
        for c in expired {
            c.sock.close();
        }
    }
}

/// How waiting for the next request ended.
#[allow(clippy::large_enum_variant)] // moved once per request: cheaper than a box
enum Next {
    Request(Head),
    Error(HttpError),
    /// The client closed, timed out between requests, or the server is shutting down.
    Close,
}

/// Waits for the next request head; see the module docs for the timeouts. Not inlined: see
/// [`answer`].
#[inline(never)]
fn next_request(cfg: &Config, hub: &HubState, c: &Rc<ConnIo>) -> Next {
    let mut head_began: Option<Instant> = None;
    loop {
        let idle = {
            let mut conn = c.conn.borrow_mut();
            match conn.next_event() {
                Some(Event::Request(h)) => return Next::Request(h),
                Some(Event::Error(e)) => return Next::Error(e),
                Some(_) => continue,
                None => {}
            }
            if conn.is_finished() || !conn.wants_read() {
                return Next::Close;
            }
            conn.buffered().is_empty() && head_began.is_none()
        };
        let timeout = if idle {
            if hub.stopping.get() {
                return Next::Close;
            }
            // No timer per wait: the reaper closes connections idle for too many ticks.
            c.idle.set(true);
            c.idle_since.set(hub.tick.get());
            None
        } else {
            let began = *head_began.get_or_insert_with(Instant::now);
            match cfg.header_timeout.checked_sub(began.elapsed()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Next::Error(HttpError::HeaderTimeout),
            }
        };
        let r = c.fill(timeout);
        c.idle.set(false);
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut && !idle => {
                return Next::Error(HttpError::HeaderTimeout)
            }
            Err(_) => return Next::Close,
        }
    }
}

/// Serves one connection until it closes.
fn serve_connection(cfg: &Config, handler: &dyn Handler, sock: TcpStream, peer: SocketAddr) {
    let hub = hub_state(cfg.id);
    if hub.stopping.get() {
        return;
    }
    let _ = sock.set_nodelay(true);
    let _ = sock.set_write_timeout(Some(cfg.write_timeout));
    let c = Rc::new(ConnIo {
        sock,
        conn: RefCell::new(Conn::new(cfg.limits.clone())),
        body_timeout: cfg.body_timeout,
        body_done: Cell::new(false),
        failed: Cell::new(None),
        broken: Cell::new(false),
        idle: Cell::new(false),
        idle_since: Cell::new(0),
    });
    let _slot = Slot(&hub, hub.enter(&c));
    if !hub.reaper.replace(true) {
        let (h, idle) = (hub.clone(), cfg.idle_timeout);
        let _ = crate::Builder::new()
            .name("http idle reaper")
            .spawn(move || reap_idle(&h, idle));
    }
    let mut out = Vec::with_capacity(512);
    loop {
        let head = match next_request(cfg, &hub, &c) {
            Next::Request(h) => h,
            Next::Error(e) => {
                let (time, started) = (SystemTime::now(), Instant::now());
                out.clear();
                let bytes = write_error(&mut out, &e, Some(hub.date.borrow_mut().get(time)));
                if c.send(&out).is_ok() {
                    c.linger_close();
                }
                // Logged like any response, with no request line to name (see `log`).
                if let Some(f) = &cfg.access_log {
                    f(&AccessRecord {
                        peer,
                        request: None,
                        status: e.status(),
                        bytes: bytes as u64,
                        time,
                        elapsed: started.elapsed(),
                    });
                }
                return;
            }
            Next::Close => return,
        };
        if !answer(cfg, handler, &hub, &c, head, peer, &mut out) {
            return;
        }
    }
}

/// Answers one request: runs the handler, sends its response, logs it. Whether the connection
/// stays open for the next one.
///
/// Not inlined, nor is [`next_request`]: the two frames then take turns at the same place on
/// the connection's stack, below the frame of [`serve_connection`], instead of one large frame
/// holding both. Each connection's stack is its own memory, which the other connections' turns
/// push out of the cache, so every line a request touches on it tends to be a miss. Split, the
/// wait for the next request sits 2.3 kB deep instead of 3.2 kB, and under a cache simulator
/// (cachegrind, 48 kB L1, the hello-world bench at 64 connections) a request misses L1 50
/// times on writes and 28 on reads instead of 62 and 34.
#[inline(never)]
fn answer(
    cfg: &Config,
    handler: &dyn Handler,
    hub: &HubState,
    c: &Rc<ConnIo>,
    head: Head,
    peer: SocketAddr,
    out: &mut Vec<u8>,
) -> bool {
    // What the access log needs, taken only when there is one (clocks cost tens of ns).
    let log = cfg.access_log.as_ref().map(|_| {
        let line = RequestLine {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version,
        };
        (line, Instant::now(), SystemTime::now())
    });
    c.body_done.set(false);
    let req: Request = head.into_request(Body::from_conn(c.clone()));
    let resp = match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req))) {
        Ok(r) => Ok(r),
        Err(p) if p.is::<GreenletExit>() || p.is::<ElapsedSignal>() => panic::resume_unwind(p),
        Err(p) => Err(crate::greenlet::panic_message(&*p)),
    };
    let outcome = respond(c, hub, resp, out);
    if let (Some(f), Some((line, started, time))) = (&cfg.access_log, log) {
        f(&AccessRecord {
            peer,
            request: Some(line),
            status: outcome.status,
            bytes: outcome.bytes,
            time,
            elapsed: started.elapsed(),
        });
    }
    let keep = outcome.keep_alive && !c.broken.get();
    c.conn.borrow_mut().response_done(keep);
    keep
}

/// How long [`ConnIo::linger_close`] drains a client that keeps sending, at most.
const LINGER_MAX: Duration = Duration::from_secs(2);
/// How long a client may go quiet before [`ConnIo::linger_close`] closes.
const LINGER_QUIET: Duration = Duration::from_millis(100);

/// What was sent for one request.
struct Outcome {
    status: StatusCode,
    bytes: u64,
    keep_alive: bool,
}

/// Sends the response (or the error that replaces it).
fn respond(
    c: &ConnIo,
    hub: &HubState,
    resp: Result<Response, String>,
    out: &mut Vec<u8>,
) -> Outcome {
    let close = |status: StatusCode| Outcome {
        status,
        bytes: 0,
        keep_alive: false,
    };
    out.clear();
    if let Some(e) = c.failed.take() {
        // The body the handler read was malformed: the error is the answer.
        let bytes = write_error(
            out,
            &e,
            Some(hub.date.borrow_mut().get_secs(unix_secs_coarse())),
        );
        if c.send(out).is_ok() {
            c.linger_close(); // the rest of the broken body may still be coming
        }
        return Outcome {
            bytes: bytes as u64,
            ..close(e.status())
        };
    }
    let mut ctx = c
        .conn
        .borrow()
        .response_context()
        .expect("a request is being answered");
    if hub.stopping.get() || c.broken.get() {
        ctx.keep_alive = false;
    }
    let resp = match resp {
        Ok(r) => r,
        Err(message) => {
            crate::spawn::report_caught_panic(&format!("in an HTTP handler: {message}"));
            return internal_error(c, hub, &ctx, out, "the handler panicked");
        }
    };
    let (parts, body) = resp.into_parts();
    let reason = parts.extensions.get::<ReasonPhrase>().map(|r| r.0.as_str());
    let written = {
        let mut date = hub.date.borrow_mut();
        let opts = HeadOptions {
            reason,
            content_length: body.len().map(|n| n as u64),
            date: Some(date.get_secs(unix_secs_coarse())),
        };
        write_head_map(out, &ctx, parts.status, &parts.headers, &opts)
    };
    let enc = match written {
        Ok(enc) => enc,
        Err(e) => {
            eprintln!("grove: the HTTP handler's response was refused ({e}); answering 500");
            return internal_error(c, hub, &ctx, out, "the handler's response was invalid");
        }
    };
    let status = parts.status;
    // Written: the map's allocations can hold the next request's fields.
    c.conn.borrow_mut().recycle_headers(parts.headers);
    let (sent, keep) = match body {
        ResponseBody::Empty => (c.send(out).map(|()| 0), enc.keep_alive()),
        ResponseBody::Bytes(b) => (send_bytes(c, out, enc.framing(), &b), enc.keep_alive()),
        ResponseBody::Stream(f) => {
            let mut w = BodyWriter {
                c,
                enc,
                buf: std::mem::take(out),
                sent: 0,
            };
            let r = match panic::catch_unwind(AssertUnwindSafe(|| f(&mut w))) {
                Ok(r) => r,
                Err(p) if p.is::<GreenletExit>() || p.is::<ElapsedSignal>() => {
                    panic::resume_unwind(p)
                }
                Err(p) => {
                    let m = crate::greenlet::panic_message(&*p);
                    crate::spawn::report_caught_panic(&format!("in an HTTP body stream: {m}"));
                    Err(io::Error::other("the body stream panicked"))
                }
            };
            let r = r.and_then(|()| w.finish());
            let keep = r.is_ok() && w.enc.keep_alive();
            *out = std::mem::take(&mut w.buf);
            (r.map(|()| w.sent), keep)
        }
    };
    match sent {
        Ok(bytes) => Outcome {
            status,
            bytes,
            keep_alive: keep && ctx.keep_alive,
        },
        // Part of the response may be out: the connection cannot be reused.
        Err(_) => close(status),
    }
}

/// The head in `out` and a body of known length: one write if small (the body copied behind
/// the head), else one writev.
fn send_bytes(c: &ConnIo, out: &mut Vec<u8>, framing: Framing, body: &[u8]) -> io::Result<u64> {
    if framing == Framing::Empty || body.is_empty() {
        return c.send(out).map(|()| 0);
    }
    if out.len() + body.len() <= COPY_BODY_MAX {
        out.extend_from_slice(body);
        return c.send(out).map(|()| body.len() as u64);
    }
    let mut bufs = [IoSlice::new(out), IoSlice::new(body)];
    let mut slices = &mut bufs[..];
    while !slices.is_empty() {
        let n = (&c.sock).write_vectored(slices)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "grove: the client accepted no more bytes",
            ));
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(body.len() as u64)
}

/// A 500 in place of a response that could not be sent as the handler made it; closes.
fn internal_error(
    c: &ConnIo,
    hub: &HubState,
    ctx: &ResponseContext,
    out: &mut Vec<u8>,
    why: &'static str,
) -> Outcome {
    let ctx = ResponseContext {
        keep_alive: false,
        ..*ctx
    };
    out.clear();
    let body = format!("500 Internal Server Error: {why}\n");
    let mut date = hub.date.borrow_mut();
    let opts = HeadOptions {
        reason: None,
        content_length: Some(body.len() as u64),
        date: Some(date.get_secs(unix_secs_coarse())),
    };
    let headers = [("content-type", "text/plain; charset=utf-8")];
    if let Ok(mut enc) = write_head(out, &ctx, StatusCode::INTERNAL_SERVER_ERROR, headers, &opts) {
        let _ = enc.encode(body.as_bytes(), out);
        let _ = enc.finish(out);
        let _ = c.send(out);
    }
    Outcome {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        bytes: body.len() as u64,
        keep_alive: false,
    }
}

/// Where a streamed response body goes: `Write` to it. Data is framed (chunked for HTTP/1.1
/// clients, as is for HTTP/1.0 ones, or counted against your `Content-Length`) and sent in
/// pieces of about 16 KiB, the first together with the head; `flush` sends what is buffered
/// now. Writing to a response that carries no body (HEAD, 204, 304) is accepted and dropped.
pub struct BodyWriter<'a> {
    c: &'a ConnIo,
    enc: BodyEncoder,
    /// The head (until the first send), then framed data not sent yet.
    buf: Vec<u8>,
    sent: u64,
}

impl fmt::Debug for BodyWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("framing", &self.enc.framing())
            .field("sent", &self.sent)
            .finish()
    }
}

impl BodyWriter<'_> {
    fn finish(&mut self) -> io::Result<()> {
        self.enc
            .finish(&mut self.buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.flush()
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.enc
            .encode(data, &mut self.buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if self.enc.framing() != Framing::Empty {
            self.sent += data.len() as u64;
        }
        if self.buf.len() >= STREAM_FLUSH {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.c.send(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}
