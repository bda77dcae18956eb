//! The per-connection state machine: bytes in, request events out, no I/O.
//!
//! A [`Conn`] owns one bounded buffer. The server reads from the socket into
//! [`read_buf`](Conn::read_buf) and reports the count with [`filled`](Conn::filled) (or copies
//! with [`feed`](Conn::feed)); [`next_event`](Conn::next_event) then yields what those bytes
//! complete. Any split of the input works, down to one byte at a time: the head scanner
//! resumes where it stopped and the body decoder keeps its state between calls.
//!
//! # The cycle of one request
//!
//! 1. [`Event::Request`] with the [`Head`]. The handler runs.
//! 2. If the handler reads the body: first [`body_read_started`](Conn::body_read_started); when
//!    it returns `true` the client sent `Expect: 100-continue` and the server writes
//!    [`write_continue`](super::write_continue) now (once per request, never otherwise). Then
//!    [`Event::Body`] slices (borrowed from the buffer: copy them out before the next call),
//!    then [`Event::BodyEnd`]. A request without a body yields `BodyEnd` at once.
//! 3. The server writes the response ([`response_context`](Conn::response_context) has what
//!    the response writer needs, including whether it may keep the connection open) and calls
//!    [`response_done`](Conn::response_done) with the keep-alive it wrote.
//! 4. Only then does the next pipelined request surface. Its bytes may arrive (and be
//!    buffered, up to the bound) at any time; they are not even parsed before, so an error in
//!    them cannot overtake the response to the request before.
//!
//! If the response is done before the body was read to its end, the rest of the body is
//! decoded and dropped before the next head, unless the client was still waiting for
//! `100 Continue` (it may never send the body): then the connection closes, and
//! [`keep_alive`](Conn::keep_alive) already said `false` while that was pending. A framing
//! error in that rest (a bad chunk, a body over the limit) closes the connection without an
//! [`Event::Error`]: its request has been answered already, and an error response now would
//! read, to a pipelining client, as the answer to its next request.
//!
//! # Errors and the end
//!
//! [`Event::Error`] is final: nothing more is ever surfaced on the connection, whatever is fed.
//! The server answers [`HttpError::status`] (if no response has started; see
//! [`write_error`](super::write_error)) and closes. [`feed_eof`](Conn::feed_eof) tells the
//! connection the client closed its side: between requests that is a clean end; inside a head
//! or a body it is [`HttpError::IncompleteHead`] / [`HttpError::IncompleteBody`].
//! [`is_finished`](Conn::is_finished) says the socket can be closed.
//!
//! # Memory
//!
//! The buffer never grows past [`Limits::max_buffer`]: a whole head plus one read chunk. A head
//! that does not fit is refused by the head limits before the buffer is full; body bytes are
//! handed out as they arrive; pipelined bytes beyond the bound are not read
//! ([`read_buf`](Conn::read_buf) is empty, [`wants_read`](Conn::wants_read) is `false`), which
//! is back-pressure on the client through TCP.
//!
//! # A server loop
//!
//! ```
//! # use grove::http::{Conn, Event, Limits, HeadOptions, write_head};
//! # use std::io::{Read, Write};
//! # fn serve(mut sock: impl Read + Write) -> std::io::Result<()> {
//! let mut conn = Conn::new(Limits::default());
//! let mut out = Vec::new();
//! loop {
//!     match conn.next_event() {
//!         Some(Event::Request(head)) => {
//!             // A handler would run here, reading the body through the same conn.
//!             while let Some(Event::Body(_)) = conn.next_event() {}
//!             let ctx = conn.response_context().unwrap();
//!             out.clear();
//!             let headers = http::HeaderMap::new();
//!             let opts = HeadOptions { content_length: Some(2), ..HeadOptions::default() };
//!             let mut body = write_head(&mut out, &ctx, http::StatusCode::OK, &headers, &opts)
//!                 .expect("valid headers");
//!             body.encode(b"ok", &mut out).unwrap();
//!             body.finish(&mut out).unwrap();
//!             sock.write_all(&out)?;
//!             conn.response_done(body.keep_alive());
//!             let _ = head;
//!         }
//!         Some(Event::Error(e)) => {
//!             out.clear();
//!             grove::http::write_error(&mut out, &e, None);
//!             sock.write_all(&out)?;
//!             return Ok(());
//!         }
//!         Some(_) => {}
//!         // wants_read is asked in the arm, not in a guard: the event borrows the conn.
//!         None => {
//!             if !conn.wants_read() {
//!                 return Ok(()); // finished
//!             }
//!             match sock.read(conn.read_buf())? {
//!                 0 => conn.feed_eof(),
//!                 n => conn.filled(n),
//!             }
//!         }
//!     }
//! }
//! # }
//! # let mut io = std::io::Cursor::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
//! # struct Rw(std::io::Cursor<Vec<u8>>, Vec<u8>);
//! # impl Read for Rw { fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> { self.0.read(b) } }
//! # impl Write for Rw { fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.1.write(b) }
//! #   fn flush(&mut self) -> std::io::Result<()> { Ok(()) } }
//! # let mut rw = Rw(io, Vec::new());
//! # serve(&mut rw).unwrap();
//! # assert!(rw.1.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! # assert!(rw.1.ends_with(b"\r\n\r\nok"));
//! ```
#![forbid(unsafe_code)]

use super::body::BodyDecoder;
use super::parse::{BodyKind, Head, HeadScanner, Reuse};
use super::response::ResponseContext;
use super::{HttpError, Limits};
use http::{HeaderMap, Method, Version};

/// What the bytes fed so far complete.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // see `Request`
pub enum Event<'a> {
    /// A request head. (Not boxed, though it is larger than the other events: an event is
    /// moved once or twice, and an allocation per request costs more than that.)
    Request(Head),
    /// Body data, decoded (chunk framing removed), borrowed from the connection's buffer.
    Body(&'a [u8]),
    /// The end of the current request's body (at once for a request without one).
    BodyEnd,
    /// The request or the connection is broken; nothing follows this.
    Error(HttpError),
}

/// The per-connection HTTP/1.1 state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    buf: Vec<u8>,
    /// The first byte not yet consumed.
    start: usize,
    /// The end of the bytes filled in.
    end: usize,
    state: State,
    scanner: HeadScanner,
    current: Option<Current>,
    eof: bool,
    /// What building the heads before left for the next one: the header map handed back by
    /// [`recycle_headers`](Conn::recycle_headers), and the fields the client sent last.
    reuse: Reuse,
}

/// The most fields a map handed to [`Conn::recycle_headers`] may have room for and still be
/// kept: a connection does not hold on to a large map between requests.
const RECYCLE_MAX_CAPACITY: usize = 64;

#[derive(Debug)]
enum State {
    /// Waiting for (or scanning) the next head; no request is being answered.
    Head,
    /// A request surfaced; its body is being read (done: `BodyEnd` is next).
    Body(BodyDecoder),
    /// The body is over; waiting for `response_done`.
    Answering,
    /// The response was done before the body was read: dropping the rest of it.
    Discard(BodyDecoder),
    /// Closed cleanly: no keep-alive, or the client went away between requests.
    Closed,
    /// An error was surfaced.
    Failed,
}

/// What the connection remembers of the request being answered.
#[derive(Clone, Copy, Debug)]
struct Current {
    version: Version,
    head_request: bool,
    keep_alive: bool,
    expect_continue: bool,
    continue_sent: bool,
    has_body: bool,
}

impl Conn {
    /// A connection with nothing read yet, bounded by `limits`. Allocates nothing until the
    /// first [`read_buf`](Conn::read_buf).
    pub fn new(limits: Limits) -> Self {
        Conn {
            limits,
            buf: Vec::new(),
            start: 0,
            end: 0,
            state: State::Head,
            scanner: HeadScanner::new(),
            current: None,
            eof: false,
            reuse: Reuse::default(),
        }
    }

    /// Takes `map` (emptied) to hold the next request's header fields, so that its
    /// allocations are used again instead of a new map's: a server hands in the header map of
    /// each response once it has written it. A map with room for more than 64 fields is
    /// dropped instead.
    pub fn recycle_headers(&mut self, mut map: HeaderMap) {
        if map.capacity() > 0 && map.capacity() <= RECYCLE_MAX_CAPACITY {
            map.clear();
            self.reuse.map = Some(map);
        }
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Where to read the next bytes from the socket: free space at the end of the buffer, at
    /// most [`Limits::read_chunk`] bytes (empty when the buffer is full or the connection
    /// takes no more input). Report what was read with [`filled`](Conn::filled).
    pub fn read_buf(&mut self) -> &mut [u8] {
        if !self.takes_input() {
            return &mut [];
        }
        self.compact();
        let want = self
            .end
            .saturating_add(self.limits.read_chunk.max(1))
            .min(self.limits.max_buffer());
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let end = self.end.min(want);
        &mut self.buf[end..want]
    }

    /// `n` bytes were read into [`read_buf`](Conn::read_buf). More than it offered is taken
    /// as what it offered.
    pub fn filled(&mut self, n: usize) {
        if self.takes_input() {
            self.end = self.end.saturating_add(n).min(self.buf.len());
        }
    }

    /// Copy bytes in (for callers that read elsewhere); returns how many were taken, which is
    /// fewer than `data.len()` when the buffer is full: call [`next_event`](Conn::next_event)
    /// and feed the rest later.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let space = self.read_buf();
        let n = space.len().min(data.len());
        space[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// The client closed its side (a read returned 0).
    pub fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Whether more bytes would let [`next_event`](Conn::next_event) make progress, once it
    /// has returned `None`: a head or a body is incomplete and the buffer has room. `false`
    /// while a response is awaited, after an error, after the end, and when the buffer is full.
    pub fn wants_read(&self) -> bool {
        let waiting = match &self.state {
            State::Head | State::Discard(_) => true,
            State::Body(dec) => !dec.is_done(),
            State::Answering | State::Closed | State::Failed => false,
        };
        waiting && !self.eof && self.end - self.start < self.limits.max_buffer()
    }

    /// Whether nothing more will ever be surfaced: the connection ended cleanly or failed.
    /// The server closes the socket.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed)
    }

    /// Bytes received and not yet consumed (pipelined requests, body not yet asked for).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The memory the buffer holds (at most [`Limits::max_buffer`]).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.len()
    }

    /// The next event, with body data of any length available. See
    /// [`next_event_max`](Conn::next_event_max).
    pub fn next_event(&mut self) -> Option<Event<'_>> {
        self.next_event_max(usize::MAX)
    }

    /// The next event the buffered bytes complete, with at most `max` bytes of body data (for
    /// a `read(&mut [u8])` that copies into a slice of that size; 0 is taken as 1). `None`:
    /// nothing yet (see [`wants_read`](Conn::wants_read)), or a response is awaited, or the
    /// connection is finished.
    pub fn next_event_max(&mut self, max: usize) -> Option<Event<'_>> {
        loop {
            match &mut self.state {
                State::Closed | State::Failed | State::Answering => return None,
                State::Head => {
                    let input = &self.buf[self.start..self.end];
                    match self.scanner.scan(input, &self.limits) {
                        Err(e) => return Some(self.fail(e)),
                        Ok(None) => {
                            if self.eof {
                                if input.iter().all(|&b| b == b'\r' || b == b'\n') {
                                    self.state = State::Closed;
                                    return None;
                                }
                                return Some(self.fail(HttpError::IncompleteHead));
                            }
                            return None;
                        }
                        Ok(Some(n)) => {
                            let head = match self.scanner.finish_reusing(
                                &input[..n],
                                &self.limits,
                                &mut self.reuse,
                            ) {
                                Ok(head) => head,
                                Err(e) => return Some(self.fail(e)),
                            };
                            self.start += n;
                            self.scanner.reset();
                            self.current = Some(Current {
                                version: head.version,
                                head_request: head.method == Method::HEAD,
                                keep_alive: head.keep_alive,
                                expect_continue: head.expect_continue,
                                continue_sent: false,
                                has_body: !matches!(
                                    head.body,
                                    BodyKind::None | BodyKind::Length(0)
                                ),
                            });
                            self.state = State::Body(BodyDecoder::new(head.body, &self.limits));
                            return Some(Event::Request(head));
                        }
                    }
                }
                State::Body(dec) => {
                    if dec.is_done() {
                        self.state = State::Answering;
                        return Some(Event::BodyEnd);
                    }
                    let input = &self.buf[self.start..self.end];
                    if input.is_empty() {
                        if self.eof {
                            return Some(self.fail(HttpError::IncompleteBody));
                        }
                        return None;
                    }
                    match dec.decode(input, max) {
                        Err(e) => return Some(self.fail(e)),
                        Ok(d) => {
                            let (a, b) = (self.start + d.data.start, self.start + d.data.end);
                            self.start += d.consumed;
                            if a < b {
                                return Some(Event::Body(&self.buf[a..b]));
                            }
                            if !d.done {
                                // Partial framing consumed; nothing more to decode yet.
                                if self.eof {
                                    return Some(self.fail(HttpError::IncompleteBody));
                                }
                                return None;
                            }
                        }
                    }
                }
                State::Discard(dec) => {
                    if dec.is_done() {
                        self.state = State::Head;
                        continue;
                    }
                    let input = &self.buf[self.start..self.end];
                    if input.is_empty() {
                        if self.eof {
                            self.state = State::Closed;
                        }
                        return None;
                    }
                    match dec.decode(input, usize::MAX) {
                        // Answered already: close, with no error to answer (module docs).
                        Err(_) => {
                            self.state = State::Closed;
                            return None;
                        }
                        Ok(d) => {
                            self.start += d.consumed;
                            if d.consumed == 0 && !d.done {
                                return None;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The handler is about to read the body. `true` exactly once per request, when the
    /// client sent `Expect: 100-continue` and the body is still to come: the server writes
    /// `100 Continue` ([`write_continue`](super::write_continue)) before reading.
    pub fn body_read_started(&mut self) -> bool {
        match (&self.state, &mut self.current) {
            (State::Body(dec), Some(cur))
                if !dec.is_done() && cur.has_body && cur.expect_continue && !cur.continue_sent =>
            {
                cur.continue_sent = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the response to the current request may leave the connection open: the client
    /// asked for keep-alive, nothing failed, and the client is not waiting for a
    /// `100 Continue` it was never sent (its body may never come, so it cannot be skipped).
    pub fn keep_alive(&self) -> bool {
        let Some(cur) = &self.current else {
            return false;
        };
        let continue_pending = match &self.state {
            State::Body(dec) => !dec.is_done() && cur.expect_continue && !cur.continue_sent,
            _ => false,
        };
        cur.keep_alive && !continue_pending && !matches!(self.state, State::Failed)
    }

    /// What the response writer needs to know about the current request (`None` between
    /// requests). Ask when writing the response head: `keep_alive` is
    /// [`keep_alive`](Conn::keep_alive) as of then.
    pub fn response_context(&self) -> Option<ResponseContext> {
        self.current.as_ref().map(|cur| ResponseContext {
            version: cur.version,
            head_request: cur.head_request,
            keep_alive: self.keep_alive(),
        })
    }

    /// The response to the current request has been written, saying `keep_alive` (as the
    /// response writer decided, [`BodyEncoder::keep_alive`](super::BodyEncoder::keep_alive)).
    /// With keep-alive the next request may now surface (after the rest of an unread body is
    /// dropped); without it the connection is finished. Ignored between requests.
    pub fn response_done(&mut self, keep_alive: bool) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let keep = keep_alive && cur.keep_alive;
        self.state = match core::mem::replace(&mut self.state, State::Closed) {
            State::Failed => State::Failed,
            _ if !keep => State::Closed,
            State::Body(dec) if dec.is_done() => State::Head,
            State::Body(_) if cur.expect_continue && !cur.continue_sent => State::Closed,
            State::Body(dec) => State::Discard(dec),
            State::Answering | State::Head => State::Head,
            other @ (State::Discard(_) | State::Closed) => other,
        };
    }

    /// The bytes received after the current point, for a server that takes the connection
    /// over (a CONNECT tunnel, an upgrade).
    pub fn into_buffered(mut self) -> Vec<u8> {
        self.buf.truncate(self.end);
        self.buf.drain(..self.start);
        self.buf
    }

    fn takes_input(&self) -> bool {
        !self.eof && !self.is_finished()
    }

    fn fail(&mut self, e: HttpError) -> Event<'static> {
        self.state = State::Failed;
        Event::Error(e)
    }

    /// Move the unconsumed bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        if self.start < self.end {
            self.buf.copy_within(self.start..self.end, 0);
        }
        self.end -= self.start;
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the connection surfaces for `input` fed in pieces of `step` bytes, with
    /// `response_done(true)` after each `BodyEnd`. Body data is merged into one `Body` per
    /// request.
    #[derive(Debug, PartialEq, Eq)]
    #[allow(clippy::large_enum_variant)]
    enum Ev {
        Req(Head),
        Body(Vec<u8>),
        End,
        Err(HttpError),
    }

    fn run(conn: &mut Conn, input: &[u8], step: usize, eof: bool) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut pos = 0;
        let mut body = Vec::new();
        loop {
            let ev = match conn.next_event() {
                Some(Event::Request(h)) => Some(Ev::Req(h)),
                Some(Event::Body(d)) => Some(Ev::Body(d.to_vec())),
                Some(Event::BodyEnd) => Some(Ev::End),
                Some(Event::Error(e)) => Some(Ev::Err(e)),
                None => None,
            };
            match ev {
                Some(Ev::Body(d)) => body.extend_from_slice(&d),
                Some(Ev::End) => {
                    if !body.is_empty() {
                        evs.push(Ev::Body(std::mem::take(&mut body)));
                    }
                    evs.push(Ev::End);
                    conn.response_done(true);
                }
                Some(ev) => evs.push(ev),
                None if pos < input.len() => {
                    let n = conn.feed(&input[pos..(pos + step).min(input.len())]);
                    pos += n;
                    if n == 0 {
                        break;
                    }
                }
                None if eof && conn.wants_read() => conn.feed_eof(),
                None => break,
            }
        }
        evs
    }

    fn events(input: &[u8], step: usize) -> Vec<Ev> {
        run(&mut Conn::new(Limits::default()), input, step, false)
    }

    fn method_of(ev: &Ev) -> &str {
        match ev {
            Ev::Req(h) => h.method.as_str(),
            _ => panic!("not a request: {ev:?}"),
        }
    }

    const TWO: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
        PUT /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";

    #[test]
    fn pipelined_requests_in_any_split() {
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let evs = events(TWO, step);
            assert_eq!(evs.len(), 6, "step {step}: {evs:?}");
            assert_eq!(method_of(&evs[0]), "POST");
            assert_eq!(evs[1], Ev::Body(b"hello".to_vec()));
            assert_eq!(evs[2], Ev::End);
            assert_eq!(method_of(&evs[3]), "PUT");
            assert_eq!(evs[4], Ev::Body(b"abc".to_vec()));
            assert_eq!(evs[5], Ev::End);
        }
    }

    #[test]
    fn request_without_body_ends_at_once() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        assert_eq!(c.next_event(), None);
        assert!(!c.wants_read(), "waiting for the response");
    }

    #[test]
    fn next_head_waits_for_the_response() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(h)) if h.target == "/1"));
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        assert_eq!(c.next_event(), None);
        assert_eq!(c.next_event(), None);
        c.response_done(true);
        assert!(matches!(c.next_event(), Some(Event::Request(h)) if h.target == "/2"));
    }

    #[test]
    fn a_recycled_header_map_holds_only_the_next_requests_fields() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: y\r\nAccept: a\r\nAccept: b\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        // The response's map, as a handler filled it, goes back to the connection.
        let mut sent = HeaderMap::new();
        sent.insert("x-response-only", "1".parse().unwrap());
        sent.append(http::header::ACCEPT, "stale".parse().unwrap());
        c.recycle_headers(sent);
        c.response_done(true);
        let Some(Event::Request(h)) = c.next_event() else {
            panic!("the second request");
        };
        assert_eq!(h.headers.len(), 3, "{:?}", h.headers);
        assert_eq!(h.headers["host"], "y");
        let accept: Vec<_> = h.headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["a", "b"]);
        assert!(!h.headers.contains_key("x-response-only"));
        // Too large a map is not kept (the next head gets a map of its own either way).
        let mut big = HeaderMap::with_capacity(RECYCLE_MAX_CAPACITY + 1);
        big.insert("x", "1".parse().unwrap());
        c.recycle_headers(big);
        assert!(c.reuse.map.is_none());
    }

    #[test]
    fn an_error_in_a_pipelined_head_waits_for_the_response() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        assert_eq!(c.next_event(), None);
        c.response_done(true);
        assert_eq!(c.next_event(), Some(Event::Error(HttpError::BareLf)));
    }

    #[test]
    fn nothing_surfaces_after_an_error() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(
            c.next_event(),
            Some(Event::Error(HttpError::ConflictingContentLength))
        );
        assert!(c.is_finished());
        assert!(!c.wants_read());
        assert_eq!(c.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        assert!(c.read_buf().is_empty());
        c.response_done(true);
        assert_eq!(c.next_event(), None);
        assert!(!c.body_read_started());
        assert!(!c.keep_alive());
    }

    #[test]
    fn nothing_surfaces_after_a_body_framing_error() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.next_event(), Some(Event::Body(&b"abc"[..])));
        assert_eq!(
            c.next_event(),
            Some(Event::Error(HttpError::MissingChunkCrlf))
        );
        c.response_done(true);
        assert_eq!(c.next_event(), None);
        assert!(c.is_finished());
    }

    #[test]
    fn smuggled_request_after_a_bad_body_never_surfaces() {
        // The classic: a front end that believes the Content-Length forwards the second
        // request inside the first one's body; we refuse the first outright.
        let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
        let evs = events(input, 1);
        assert_eq!(
            evs,
            vec![Ev::Err(HttpError::ContentLengthWithTransferEncoding)]
        );
    }

    #[test]
    fn connection_close_ends_after_the_response() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(h)) if !h.keep_alive));
        assert!(!c.keep_alive());
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        c.response_done(true);
        assert_eq!(c.next_event(), None);
        assert!(c.is_finished());
    }

    #[test]
    fn server_side_close_ends_after_the_response() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert!(c.keep_alive());
        c.response_done(false);
        assert_eq!(c.next_event(), None);
        assert!(c.is_finished());
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let evs = events(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", 5);
        assert_eq!(evs.len(), 2);
        let evs = events(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
            5,
        );
        assert_eq!(evs.len(), 4);
    }

    #[test]
    fn unread_body_is_dropped_before_the_next_request() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        c.response_done(true);
        assert_eq!(c.next_event(), None);
        assert!(c.wants_read());
        c.feed(b"loGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(h)) if h.target == "/next"));
    }

    #[test]
    fn unread_chunked_body_with_an_error_closes_without_an_error_to_answer() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        c.feed(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        c.response_done(true);
        // The request was answered: no second answer, no next request, just the end.
        assert_eq!(c.next_event(), None);
        assert!(c.is_finished());
        assert!(!c.wants_read());
        assert_eq!(c.next_event(), None);
    }

    #[test]
    fn continue_is_due_once_when_the_body_is_read() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(h)) if h.expect_continue));
        assert!(!c.keep_alive(), "a 100 is pending: the body may never come");
        assert!(c.body_read_started());
        assert!(!c.body_read_started());
        assert!(c.keep_alive());
        assert_eq!(c.next_event(), None);
        c.feed(b"ok");
        assert_eq!(c.next_event(), Some(Event::Body(&b"ok"[..])));
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        assert!(!c.body_read_started());
    }

    #[test]
    fn continue_is_not_due_without_expect() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert!(!c.body_read_started());
    }

    #[test]
    fn continue_is_not_due_without_a_body() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert!(!c.body_read_started());
        assert!(c.keep_alive());
    }

    #[test]
    fn response_without_reading_an_expected_body_closes() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        let ctx = c.response_context().unwrap();
        assert!(!ctx.keep_alive);
        c.response_done(true);
        assert!(c.is_finished());
    }

    #[test]
    fn eof_between_requests_is_a_clean_end() {
        let mut c = Conn::new(Limits::default());
        let evs = run(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n", 4, true);
        assert_eq!(evs.len(), 2);
        assert!(c.is_finished());
    }

    #[test]
    fn eof_inside_a_head_is_an_error() {
        let mut c = Conn::new(Limits::default());
        let evs = run(&mut c, b"GET / HTTP/1.1\r\nHo", 4, true);
        assert_eq!(evs, vec![Ev::Err(HttpError::IncompleteHead)]);
    }

    #[test]
    fn eof_inside_a_body_is_an_error() {
        let mut c = Conn::new(Limits::default());
        let evs = run(
            &mut c,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc",
            4,
            true,
        );
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1], Ev::Err(HttpError::IncompleteBody));
        let mut c = Conn::new(Limits::default());
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab";
        let evs = run(&mut c, chunked, 4, true);
        assert_eq!(evs.last(), Some(&Ev::Err(HttpError::IncompleteBody)));
    }

    #[test]
    fn next_event_max_limits_body_slices() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.next_event_max(2), Some(Event::Body(&b"he"[..])));
        assert_eq!(c.next_event_max(2), Some(Event::Body(&b"ll"[..])));
        assert_eq!(c.next_event_max(0), Some(Event::Body(&b"o"[..])));
        assert_eq!(c.next_event_max(2), Some(Event::BodyEnd));
    }

    #[test]
    fn buffer_stays_bounded_under_a_flood_of_pipelined_requests() {
        let limits = Limits {
            max_request_line: 64,
            max_header_bytes: 128,
            read_chunk: 32,
            ..Limits::default()
        };
        let cap = limits.max_buffer();
        let mut c = Conn::new(limits);
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            {
                c.feed(req);
                c.next_event()
            },
            Some(Event::Request(_))
        ));
        // The server is busy answering: the client keeps sending.
        let mut taken = 0;
        for _ in 0..1000 {
            taken += c.feed(req);
        }
        assert!(c.buffer_capacity() <= cap);
        assert_eq!(
            taken, cap,
            "the buffer filled up to the bound, then took nothing"
        );
        assert!(c.read_buf().is_empty());
        // Answering frees room.
        assert_eq!(c.next_event(), Some(Event::BodyEnd));
        c.response_done(true);
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert!(!c.read_buf().is_empty());
    }

    #[test]
    fn oversized_head_fails_before_the_buffer_is_full() {
        let limits = Limits {
            max_request_line: 64,
            max_header_bytes: 128,
            read_chunk: 16,
            ..Limits::default()
        };
        let cap = limits.max_buffer();
        let mut c = Conn::new(limits);
        let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        input.resize(10_000, b'a');
        let evs = run(&mut c, &input, 7, false);
        assert_eq!(evs, vec![Ev::Err(HttpError::HeadersTooLarge)]);
        assert!(c.buffer_capacity() <= cap);
    }

    #[test]
    fn huge_body_streams_through_a_small_buffer() {
        let limits = Limits {
            read_chunk: 100,
            ..Limits::default()
        };
        let cap = limits.max_buffer();
        let mut c = Conn::new(limits);
        let mut input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".to_vec();
        input.resize(input.len() + 1_000_000, b'z');
        let evs = run(&mut c, &input, 4096, false);
        assert_eq!(evs.len(), 3);
        assert!(matches!(&evs[1], Ev::Body(b) if b.len() == 1_000_000));
        assert!(c.buffer_capacity() <= cap);
    }

    #[test]
    fn read_buf_and_filled_work_like_feed() {
        let mut c = Conn::new(Limits::default());
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let buf = c.read_buf();
        assert!(buf.len() >= req.len());
        buf[..req.len()].copy_from_slice(req);
        c.filled(req.len());
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        // Claiming more than was offered cannot overrun.
        let offered = c.read_buf().len();
        c.filled(usize::MAX);
        assert_eq!(c.buffered().len(), offered);
    }

    #[test]
    fn response_context_describes_the_request() {
        let mut c = Conn::new(Limits::default());
        assert!(c.response_context().is_none());
        c.feed(b"HEAD / HTTP/1.0\r\n\r\n");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        let ctx = c.response_context().unwrap();
        assert_eq!(ctx.version, Version::HTTP_10);
        assert!(ctx.head_request);
        assert!(!ctx.keep_alive);
    }

    #[test]
    fn into_buffered_returns_what_follows() {
        let mut c = Conn::new(Limits::default());
        c.feed(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03tls");
        assert!(matches!(c.next_event(), Some(Event::Request(_))));
        assert_eq!(c.into_buffered(), b"\x16\x03tls");
    }
}
