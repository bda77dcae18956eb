//! Parsing a request head: the request line and the header section, up to and including the
//! empty line that ends them, into a [`Head`] with the body framing already decided.
//!
//! Two passes. [`HeadScanner`] walks the bytes once, resumably (a connection feeds it more
//! bytes as they arrive and it never looks at a byte twice), finds where the head ends and
//! enforces the line rules and the limits as early as it can: bare LF, bare CR, obs-fold,
//! whitespace before a colon, the request-line, header-byte and header-count limits, the
//! request line's shape and version. When the head is complete, [`httparse`] tokenises it
//! (checking every byte of the names and values) and the fields go into an [`http::HeaderMap`];
//! then the framing rules below turn the fields into a [`BodyKind`], a keep-alive decision and
//! whether the client waits for `100 Continue`.
//!
//! # What httparse accepts that we do not
//!
//! httparse (1.10, default config, which is strict about obs-fold and spaces before colons in
//! requests) still accepts a bare LF as a line ending everywhere, and bare LF empty lines before
//! the request line. The scanner rejects every LF not preceded by CR ([`HttpError::BareLf`])
//! before httparse sees the bytes. It also names the errors httparse only reports as "invalid
//! header name" ([`HttpError::ObsFold`], [`HttpError::SpaceBeforeColon`]) and tells an unknown
//! version (505) from a malformed one (400).
//!
//! # Framing (RFC 9112 6, smuggling-proof)
//!
//! - `Transfer-Encoding` in HTTP/1.0: 400 ([`HttpError::TransferEncodingInHttp10`]).
//! - `Transfer-Encoding` and `Content-Length` together: 400.
//! - `Transfer-Encoding` (all its fields, as one list, empty members skipped): the last coding
//!   must be `chunked` (any case, no parameters), else 400 ([`HttpError::ChunkedNotFinal`]:
//!   `identity`, `gzip`, `chunked, gzip`); `chunked` twice is 400; codings before the final
//!   `chunked` (`gzip, chunked`) are 501 ([`HttpError::UnsupportedTransferCoding`]), since the
//!   server decodes none; a member that is not a token, or no member at all, is 400.
//! - `Content-Length`: every member of every field is `1*DIGIT` fitting a u64 (no sign,
//!   underscore, hex, inner whitespace, empty member); all equal as numbers (so `5, 5` and two
//!   `5` fields are one length), else 400; above [`Limits::max_body`] is 413 before any body is
//!   read.
//! - Neither: no body ([`BodyKind::None`]); requests are never close-delimited.
//!
//! Keep-alive: HTTP/1.1 unless `Connection` has `close`; HTTP/1.0 only when `Connection` has
//! `keep-alive` (and not `close`). `Expect`: `100-continue` (any case) sets
//! [`Head::expect_continue`] for HTTP/1.1 (RFC 9110 10.1.1: ignored in 1.0); any other
//! expectation is 417. HTTP/1.1 requires exactly one `Host`; HTTP/1.0 at most one.
#![forbid(unsafe_code)]

use super::{is_tchar, list_members, trim_ows, HttpError, Limits};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use std::mem::MaybeUninit;

/// How the request body is framed, decided from the head alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// Exactly this many bytes follow the head (`Content-Length`; may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head: what the handler sees, plus the framing decisions the connection
/// and the response writer need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The request method.
    pub method: Method,
    /// The request target: origin-form (`/path?q`), absolute-form, authority-form (CONNECT)
    /// or `*` (OPTIONS).
    pub target: Uri,
    /// [`Version::HTTP_10`] or [`Version::HTTP_11`].
    pub version: Version,
    /// The header fields, names lowercased, repeated fields kept in order. Values have their
    /// leading and trailing whitespace removed.
    pub headers: HeaderMap,
    /// The body framing.
    pub body: BodyKind,
    /// Whether the client asked for the connection to stay open after this request.
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1): it may wait for
    /// `100 Continue` before sending the body.
    pub expect_continue: bool,
}

impl Head {
    /// The head as an [`http::Request`] with `body` (method, target, version and headers; the
    /// framing fields are the server's business and are dropped).
    pub fn into_request<B>(self, body: B) -> http::Request<B> {
        let mut req = http::Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.target;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

/// Parse a request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet (and nothing seen so far is wrong or over a
/// limit): call again with more bytes. `Ok(Some((head, n)))`: the head took `buf[..n]`; the
/// body, if any, starts at `buf[n]`. `Err`: the request is refused with
/// [`HttpError::status`]. Each call scans from the start; a connection that receives a head in
/// pieces keeps a [`HeadScanner`] instead, which never rescans.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, HttpError> {
    let mut scanner = HeadScanner::new();
    match scanner.scan(buf, limits)? {
        None => Ok(None),
        Some(n) => Ok(Some((scanner.finish(&buf[..n], limits)?, n))),
    }
}

/// Finds the end of a request head, resumably, enforcing the line rules and the limits on
/// the way.
///
/// Give [`scan`](HeadScanner::scan) a buffer that starts at the head and grows between calls
/// (the same bytes, more at the end): each call looks only at the new bytes. When it returns
/// `Some(n)`, [`finish`](HeadScanner::finish) with `&buf[..n]` builds the [`Head`]. For the
/// next head, start a new scanner (or [`reset`](HeadScanner::reset) this one).
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadScanner {
    /// The next byte to look at.
    pos: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Where the header section starts, once the request line is over.
    header_start: Option<usize>,
    /// Spaces seen in the request line so far.
    spaces: usize,
    /// In a field line: the colon was seen.
    colon: bool,
    /// In a field line, before the colon: whitespace was seen after the name.
    name_ws: bool,
    /// Field lines seen.
    fields: usize,
    /// The head ended here (`scan` returned it).
    end: Option<usize>,
    /// The head was found by the fast path (see [`scan`](HeadScanner::scan)): the byte
    /// rules were not all checked, so an error from the parse is named by a full scan.
    fast: bool,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start over, for the next head.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// How many bytes of the head have been looked at.
    pub fn scanned(&self) -> usize {
        self.pos
    }

    /// Look at the bytes of `buf` not seen before. `Ok(Some(n))` when the head is complete and
    /// takes `buf[..n]`; `Ok(None)` when more bytes are needed. The same `buf` (grown) must be
    /// passed each time; after `Some` or `Err`, later calls repeat the answer's position or
    /// scan nothing new.
    pub fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        if let Some(end) = self.end {
            return Ok(Some(end));
        }
        if self.pos == 0 {
            if let Some(end) = self.fast_path(buf, limits) {
                return Ok(Some(end));
            }
        }
        // Work on a copy in locals (which the compiler keeps in registers: nothing else can
        // see it), and store the state back once.
        let mut st = *self;
        let r = st.scan_bytes(buf, limits);
        *self = st;
        r
    }

    /// The common case, a whole head already in `buf` and nothing odd about its line endings:
    /// one pass checks that every CR is followed by LF and every LF preceded by CR (the rules
    /// httparse is laxer about), counts the lines and checks the limits; the parse in
    /// [`finish`](HeadScanner::finish) checks everything else (and if it fails, a full scan
    /// names the error exactly as the byte-by-byte path would). `None`: use the byte path.
    fn fast_path(&mut self, buf: &[u8], limits: &Limits) -> Option<usize> {
        let scan_to = buf.len().min(limits.max_head_bytes());
        let window = &buf[..scan_to];
        if window.first().is_none_or(|&b| b == b'\r' || b == b'\n') {
            return None; // empty lines first (or nothing): the byte path handles them
        }
        let mut lines = 0usize;
        let mut first_nl = None;
        let mut i = 0;
        while let Some(off) = find_cr_or_lf(&window[i..]) {
            let at = i + off;
            if window[at] == b'\n' || window.get(at + 1) != Some(&b'\n') {
                return None; // a bare LF or CR (or the head ends mid-line ending)
            }
            lines += 1;
            let nl = at + 2; // the start of the next line
            let Some(rl) = first_nl else {
                first_nl = Some(nl);
                i = nl;
                continue;
            };
            if window.get(nl + 1) == Some(&b'\n') && window[nl] == b'\r' {
                // An empty line: the end of the head.
                let end = nl + 2;
                let fields = lines - 1;
                if rl - 2 > limits.max_request_line
                    || end - rl > limits.max_header_bytes
                    || fields > limits.max_headers
                {
                    return None; // over a limit: the byte path says which, and where
                }
                *self = HeadScanner {
                    pos: end,
                    line_start: end,
                    header_start: Some(rl),
                    fields,
                    end: Some(end),
                    fast: true,
                    ..HeadScanner::default()
                };
                return Some(end);
            }
            i = nl;
        }
        None
    }

    #[inline(always)]
    fn scan_bytes(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        while self.pos < buf.len() {
            if self.header_start.is_none() && self.spaces >= 1 && buf[self.pos - 1] != b'\r' {
                // In the request line, past the method: the target and the version are checked
                // as a whole when the line ends (`check_request_line`), so only a space, CR or
                // LF (or the length limit) matters here; jump to the next of them.
                let end = buf.len().min(limits.max_request_line);
                let rest = &buf[self.pos..end.max(self.pos)];
                let skip = rest
                    .iter()
                    .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                self.pos += skip;
                if self.pos == buf.len() {
                    break;
                }
            }
            if self.colon && buf[self.pos - 1] != b'\r' {
                // Inside a field value: nothing but CR and LF matters to the scan (the value's
                // bytes are validated when the head is built), so jump to the next of them.
                let rest = &buf[self.pos..];
                let skip = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                let hs = self
                    .header_start
                    .expect("a colon is only seen in a field line");
                if self.pos + skip - hs > limits.max_header_bytes {
                    return Err(HttpError::HeadersTooLarge);
                }
                self.pos += skip;
                if self.pos == buf.len() {
                    break;
                }
            }
            let i = self.pos;
            let b = buf[i];
            let prev = if i > 0 { Some(buf[i - 1]) } else { None };
            if prev == Some(b'\r') && b != b'\n' {
                return Err(HttpError::BareCr);
            }
            if let Some(hs) = self.header_start {
                if i + 1 - hs > limits.max_header_bytes {
                    return Err(HttpError::HeadersTooLarge);
                }
            }
            match b {
                b'\n' => {
                    if prev != Some(b'\r') {
                        return Err(HttpError::BareLf);
                    }
                    let line = &buf[self.line_start..i - 1];
                    match self.header_start {
                        None if line.is_empty() => {
                            // An empty line before the request line (RFC 9112 2.2: ignore
                            // at least one). They count against the request-line limit.
                            if i + 1 > limits.max_request_line {
                                return Err(HttpError::BadRequestLine);
                            }
                        }
                        None => {
                            check_request_line(line)?;
                            self.header_start = Some(i + 1);
                        }
                        Some(_) if line.is_empty() => {
                            self.pos = i + 1;
                            self.end = Some(i + 1);
                            return Ok(Some(i + 1));
                        }
                        Some(_) => {
                            if !self.colon {
                                return Err(HttpError::BadHeaderName);
                            }
                        }
                    }
                    self.line_start = i + 1;
                    self.colon = false;
                    self.name_ws = false;
                    self.spaces = 0;
                }
                b'\r' => {}
                _ if self.header_start.is_none() => {
                    if i >= limits.max_request_line {
                        return Err(if self.spaces >= 1 {
                            HttpError::TargetTooLong
                        } else {
                            HttpError::BadRequestLine
                        });
                    }
                    if b == b' ' {
                        self.spaces += 1;
                    } else if self.spaces == 0 && !is_tchar(b) {
                        // Not a method: fail at once (a TLS hello, a stray binary).
                        return Err(HttpError::BadRequestLine);
                    }
                }
                _ => {
                    if i == self.line_start {
                        if b == b' ' || b == b'\t' {
                            return Err(HttpError::ObsFold);
                        }
                        self.fields += 1;
                        if self.fields > limits.max_headers {
                            return Err(HttpError::TooManyHeaders);
                        }
                    }
                    if !self.colon {
                        match b {
                            b':' if i == self.line_start => return Err(HttpError::BadHeaderName),
                            b':' if self.name_ws => return Err(HttpError::SpaceBeforeColon),
                            b':' => self.colon = true,
                            b' ' | b'\t' => self.name_ws = true,
                            _ if self.name_ws || !is_tchar(b) => {
                                return Err(HttpError::BadHeaderName)
                            }
                            _ => {}
                        }
                    }
                }
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// Build the [`Head`] from the complete head `scan` found (`head` is `&buf[..n]`).
    pub fn finish(&self, head: &[u8], limits: &Limits) -> Result<Head, HttpError> {
        self.finish_reusing(head, limits, &mut Reuse::default())
    }

    /// [`finish`](HeadScanner::finish), building the head from what `reuse` kept of the
    /// heads before it (see [`Reuse`]): a connection keeps one for all its requests.
    pub fn finish_reusing(
        &self,
        head: &[u8],
        limits: &Limits,
        reuse: &mut Reuse,
    ) -> Result<Head, HttpError> {
        match parse_complete(head, self.fields, limits, reuse) {
            Err(e) if self.fast => {
                // The fast path left the byte rules unchecked: the full scan names the error
                // the byte path would have (or, if it finds none, the parse's stands).
                let mut full = HeadScanner::new();
                match full.scan_bytes(head, limits) {
                    Err(precise) => Err(precise),
                    Ok(_) => Err(e),
                }
            }
            r => r,
        }
    }
}

/// The index of the first CR or LF in `s`, eight bytes at a time: the classic "has a zero
/// byte" test on `word ^ pattern` marks the bytes equal to CR or LF, and the lowest mark is
/// exact (a false mark can only sit above a true one, whose borrow caused it), so its position
/// is the answer without a byte loop. The last, partial word is read as the final eight bytes
/// of `s`, overlapping bytes already known to hold neither.
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const CR: u64 = LO * b'\r' as u64;
    const LF: u64 = LO * b'\n' as u64;
    let marks = |w: &[u8]| {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        let (a, b) = (w ^ CR, w ^ LF);
        (a.wrapping_sub(LO) & !a | b.wrapping_sub(LO) & !b) & HI
    };
    let first = |at: usize, m: u64| at + (m.trailing_zeros() / 8) as usize;
    if s.len() < 8 {
        return s.iter().position(|&b| b == b'\r' || b == b'\n');
    }
    let mut at = 0;
    while at + 8 <= s.len() {
        let m = marks(&s[at..at + 8]);
        if m != 0 {
            return Some(first(at, m));
        }
        at += 8;
    }
    if at == s.len() {
        return None;
    }
    let tail = s.len() - 8;
    let m = marks(&s[tail..]);
    (m != 0).then(|| first(tail, m))
}

/// The request line's shape: `method SP target SP HTTP/d.d`, single spaces, a token method,
/// a target of visible bytes, version 1.0 or 1.1 (another `HTTP/d.d` is 505).
fn check_request_line(line: &[u8]) -> Result<(), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadRequestLine);
    }
    if target.is_empty() || !target.iter().all(|&b| b > b' ' && b != 0x7f) {
        return Err(HttpError::BadRequestLine);
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HttpError::UnsupportedVersion)
        }
        _ => Err(HttpError::BadRequestLine),
    }
}

/// What a connection keeps from one request head to the next so that building the next
/// allocates less. Both parts are optimisations only: a head built with any `Reuse` equals
/// the head built with none.
///
/// - [`map`](Reuse::map): an empty header map to put the next head's fields into, instead
///   of a new one (a server hands in the map of the response it sent last).
/// - The fields of the heads before, by position: a client on a keep-alive connection sends
///   the same fields in the same order request after request (`Host`, `User-Agent`,
///   `Accept`...). A field whose name (up to ASCII case) and value bytes equal the one kept at
///   its position is taken from there, for the price of a comparison and a reference count,
///   instead of being validated and copied into a new allocation. At most [`REUSE_FIELDS`]
///   positions are kept, and only values of at most [`REUSE_VALUE_BYTES`] bytes, so an idle
///   connection holds a bounded amount.
/// - A field whose value changes while its name stays (a request id, a counter) keeps only
///   its name from then on: keeping a value shared costs a second allocation (the copy
///   becomes reference-counted), which a value sent once would not repay. Measured with a
///   changing `X-Request-Id` under callgrind, per request: keeping each new value cost 283
///   instructions more than keeping nothing; keeping the name alone costs 334 fewer. A field
///   with another name replaces the one kept.
#[derive(Debug, Default)]
pub struct Reuse {
    /// An empty map for the next head's fields (cleared first if it is not).
    pub map: Option<HeaderMap>,
    fields: Vec<Option<Kept>>,
}

/// What a [`Reuse`] keeps of the field at one position.
#[derive(Clone, Debug)]
struct Kept {
    name: HeaderName,
    /// `None` once the value has changed (or if it was too long to keep).
    value: Option<HeaderValue>,
}

/// How many field positions a [`Reuse`] keeps.
pub const REUSE_FIELDS: usize = 16;
/// The longest field value a [`Reuse`] keeps.
pub const REUSE_VALUE_BYTES: usize = 256;

impl Reuse {
    /// The field at position `i` with this raw `name` and `value`: what is kept there where it
    /// is the same, the rest built (and kept, within the bounds).
    fn field(
        &mut self,
        i: usize,
        name: &str,
        value: &[u8],
    ) -> Result<(HeaderName, HeaderValue), HttpError> {
        // The same bytes up to the case of the name make the same field: a name is lowercased
        // as it is built, and names and values are validated by their bytes alone.
        let kept = (self.fields.get_mut(i).and_then(Option::as_mut))
            .filter(|k| k.name.as_str().eq_ignore_ascii_case(name));
        if let Some(k) = kept {
            if let Some(v) = &k.value {
                if v.as_bytes() == value {
                    return Ok((k.name.clone(), v.clone()));
                }
                k.value = None; // this field's value varies: keep only its name
            }
            let v = HeaderValue::from_bytes(value).map_err(|_| HttpError::BadHeaderValue)?;
            return Ok((k.name.clone(), v));
        }
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HttpError::BadHeaderName)?;
        let v = HeaderValue::from_bytes(value).map_err(|_| HttpError::BadHeaderValue)?;
        if i < REUSE_FIELDS {
            if self.fields.len() <= i {
                self.fields.resize(i + 1, None);
            }
            self.fields[i] = Some(Kept {
                name: n.clone(),
                value: (value.len() <= REUSE_VALUE_BYTES).then(|| v.clone()),
            });
        }
        Ok((n, v))
    }
}

fn parse_complete(
    buf: &[u8],
    fields: usize,
    limits: &Limits,
    reuse: &mut Reuse,
) -> Result<Head, HttpError> {
    // The usual head has a handful of fields: their slots live on the stack, left
    // uninitialised (httparse writes each before it reads it; the scanner counted them).
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 16];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if fields <= stack.len() {
        &mut stack[..fields]
    } else {
        heap = vec![MaybeUninit::uninit(); fields];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) if n == buf.len() => {}
        Ok(_) => return Err(HttpError::BadRequestLine),
        Err(e) => {
            return Err(match e {
                httparse::Error::HeaderName => HttpError::BadHeaderName,
                httparse::Error::HeaderValue => HttpError::BadHeaderValue,
                httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
                _ => HttpError::BadRequestLine,
            })
        }
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(HttpError::BadRequestLine)?;
    let target = parse_target(&method, req.path.unwrap_or(""))?;

    let mut headers = match reuse.map.take() {
        Some(mut map) => {
            if !map.is_empty() {
                map.clear(); // a connection hands its spare in empty already
            }
            map.try_reserve(req.headers.len())
                .map_err(|_| HttpError::TooManyHeaders)?;
            map
        }
        None => HeaderMap::try_with_capacity(req.headers.len())
            .map_err(|_| HttpError::TooManyHeaders)?,
    };
    // Which framing-relevant fields are present, noted while inserting (comparing a standard
    // name is an integer compare), so the checks below look up only what is there.
    let mut seen = Seen::default();
    for (i, h) in req.headers.iter().enumerate() {
        let (name, value) = reuse.field(i, h.name, h.value)?;
        seen.note(&name);
        headers
            .try_append(name, value)
            .map_err(|_| HttpError::TooManyHeaders)?;
    }

    match seen.host {
        0 if version == Version::HTTP_11 => return Err(HttpError::MissingHost),
        0 | 1 => {}
        _ => return Err(HttpError::DuplicateHost),
    }
    let body = body_kind(version, &headers, &seen, limits)?;
    let keep_alive = keep_alive(version, &headers, &seen);
    let expect_continue = seen.expect && expect_continue(&headers)? && version == Version::HTTP_11;
    Ok(Head {
        method,
        target,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    })
}

/// The four request-target forms of RFC 9112 3.2, each only where it belongs.
fn parse_target(method: &Method, raw: &str) -> Result<Uri, HttpError> {
    if raw.contains('#') {
        // No form has a fragment; `Uri` would drop it silently.
        return Err(HttpError::BadTarget);
    }
    let uri: Uri = if raw == "/" {
        // The most common target of all, and `Uri`'s default: made in a few stores, where
        // parsing would copy it into a new allocation, `from_static` would parse it again,
        // and cloning a parsed one costs three `Bytes` clones (65 instructions).
        Uri::default()
    } else {
        raw.parse().map_err(|_| HttpError::BadTarget)?
    };
    let ok = if raw.starts_with('/') {
        // origin-form
        *method != Method::CONNECT && uri.scheme().is_none() && uri.authority().is_none()
    } else if raw == "*" {
        *method == Method::OPTIONS
    } else if *method == Method::CONNECT {
        // authority-form: host:port and nothing else
        uri.scheme().is_none()
            && uri.authority().is_some_and(|a| a.port().is_some())
            && uri.path_and_query().is_none_or(|p| p.as_str().is_empty())
    } else {
        // absolute-form
        uri.scheme().is_some() && uri.authority().is_some()
    };
    if ok {
        Ok(uri)
    } else {
        Err(HttpError::BadTarget)
    }
}

/// The fields that decide framing and connection handling, as seen in one head.
#[derive(Default)]
struct Seen {
    host: usize,
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName) {
        if name == header::HOST {
            self.host += 1;
        } else if name == header::CONTENT_LENGTH {
            self.content_length = true;
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if name == header::CONNECTION {
            self.connection = true;
        } else if name == header::EXPECT {
            self.expect = true;
        }
    }
}

fn body_kind(
    version: Version,
    headers: &HeaderMap,
    seen: &Seen,
    limits: &Limits,
) -> Result<BodyKind, HttpError> {
    let has_te = seen.transfer_encoding;
    let has_cl = seen.content_length;
    if has_te && version == Version::HTTP_10 {
        return Err(HttpError::TransferEncodingInHttp10);
    }
    if has_te && has_cl {
        return Err(HttpError::ContentLengthWithTransferEncoding);
    }
    if has_te {
        return transfer_encoding(headers).map(|()| BodyKind::Chunked);
    }
    if has_cl {
        let n = content_length(headers)?;
        if n > limits.max_body {
            return Err(HttpError::BodyTooLarge);
        }
        return Ok(BodyKind::Length(n));
    }
    Ok(BodyKind::None)
}

/// `Ok` when the codings end in a single `chunked` with nothing before it.
fn transfer_encoding(headers: &HeaderMap) -> Result<(), HttpError> {
    let mut codings = 0usize;
    let mut chunked_at = None;
    let mut last_is_chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for member in list_members(value.as_bytes()) {
            let (name, params) = match member.iter().position(|&b| b == b';') {
                Some(p) => (trim_ows(&member[..p]), true),
                None => (member, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(HttpError::BadTransferEncoding);
            }
            last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                if params {
                    return Err(HttpError::BadTransferEncoding);
                }
                if chunked_at.is_some() {
                    return Err(HttpError::ChunkedTwice);
                }
                chunked_at = Some(codings);
            }
            codings += 1;
        }
    }
    if codings == 0 {
        return Err(HttpError::BadTransferEncoding);
    }
    if !last_is_chunked {
        return Err(HttpError::ChunkedNotFinal);
    }
    if codings > 1 {
        return Err(HttpError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// The one length all `Content-Length` members agree on.
fn content_length(headers: &HeaderMap) -> Result<u64, HttpError> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(member)).ok_or(HttpError::InvalidContentLength)?;
            match length {
                Some(l) if l != n => return Err(HttpError::ConflictingContentLength),
                _ => length = Some(n),
            }
        }
    }
    length.ok_or(HttpError::InvalidContentLength)
}

/// `1*DIGIT` as a u64; `None` when empty, not all digits, or too large.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether a list field (`Connection`) has `token`, any case.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| list_members(v.as_bytes()).any(|m| m.eq_ignore_ascii_case(token.as_bytes())))
}

fn keep_alive(version: Version, headers: &HeaderMap, seen: &Seen) -> bool {
    if !seen.connection {
        return version == Version::HTTP_11;
    }
    let close = has_token(headers, header::CONNECTION, "close");
    if version == Version::HTTP_11 {
        !close
    } else {
        !close && has_token(headers, header::CONNECTION, "keep-alive")
    }
}

/// `Ok(true)` for `Expect: 100-continue`, `Ok(false)` without `Expect`, 417 for anything else.
fn expect_continue(headers: &HeaderMap) -> Result<bool, HttpError> {
    let mut found = false;
    for value in headers.get_all(header::EXPECT) {
        for member in value.as_bytes().split(|&b| b == b',') {
            if !trim_ows(member).eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::UnsupportedExpectation);
            }
            found = true;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Head, HttpError> {
        parse_with(buf, &Limits::default())
    }

    fn parse_with(buf: &[u8], limits: &Limits) -> Result<Head, HttpError> {
        match parse_head(buf, limits)? {
            Some((head, n)) => {
                assert_eq!(n, buf.len(), "the head is the whole buffer");
                Ok(head)
            }
            None => panic!("incomplete: {:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8]) -> HttpError {
        match parse_head(buf, &Limits::default()) {
            Err(e) => e,
            Ok(r) => panic!("accepted {:?}: {r:?}", String::from_utf8_lossy(buf)),
        }
    }

    /// A head with `fields` (each `name: value\r\n`) after `GET / HTTP/1.1` and a Host.
    fn with_fields(fields: &str) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").into_bytes()
    }

    fn body_of(fields: &str) -> Result<BodyKind, HttpError> {
        parse(&with_fields(fields)).map(|h| h.body)
    }

    // ---- the happy paths

    #[test]
    fn the_word_search_finds_the_first_cr_or_lf() {
        for len in 0..40 {
            for at in 0..len {
                for b in [b'\r', b'\n'] {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    if at + 1 < len {
                        v[at + 1] = b'\r';
                    }
                    assert_eq!(find_cr_or_lf(&v), Some(at), "len {len} at {at}");
                }
            }
            assert_eq!(
                find_cr_or_lf(&vec![0x8du8; len]),
                None,
                "high bytes are not CR"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_word_search_agrees_with_a_byte_search(
            v in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u8::ANY,
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'\r' + 0x80),
                    proptest::strategy::Just(0u8),
                ],
                0..40,
            ),
            junk in 0usize..64,
        ) {
            // Mostly plain bytes, a few CR/LF/near-misses where the proptest put them.
            let v: Vec<u8> = v.iter().enumerate()
                .map(|(i, &b)| if (i * 7 + junk) % 5 == 0 { b } else { b'a' + (b % 26) })
                .collect();
            let naive = v.iter().position(|&b| b == b'\r' || b == b'\n');
            proptest::prop_assert_eq!(find_cr_or_lf(&v), naive, "{:?}", v);
        }
    }

    #[test]
    fn the_root_target_is_the_parsed_root_in_every_respect() {
        let h = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let parsed: Uri = "/".parse().unwrap();
        let t = &h.target;
        assert_eq!(*t, parsed);
        assert_eq!(t.path(), "/");
        assert_eq!(t.query(), None);
        assert_eq!(t.scheme(), None);
        assert_eq!(t.authority(), None);
        assert_eq!(
            t.path_and_query().map(|p| p.as_str()),
            parsed.path_and_query().map(|p| p.as_str())
        );
        assert_eq!(t.to_string(), "/");
        assert_eq!(format!("{t:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn simple_get() {
        let h =
            parse(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nx-a: 2\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.target, "/a?b=c");
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.headers["host"], "example.com");
        let xa: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        let req = h.into_request(());
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.headers().len(), 3);
    }

    #[test]
    fn consumed_stops_at_the_end_of_the_head() {
        let buf = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET";
        let (h, n) = parse_head(buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(&buf[n..], b"abcGET");
        assert_eq!(h.body, BodyKind::Length(3));
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        let buf = b"\r\nPOST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        for i in 0..buf.len() {
            assert_eq!(
                parse_head(&buf[..i], &Limits::default()),
                Ok(None),
                "prefix {i}"
            );
        }
        assert_eq!(parse(buf).unwrap().body, BodyKind::Chunked);
    }

    #[test]
    fn scanner_resumes_without_rescanning() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut s = HeadScanner::new();
        for i in 0..buf.len() {
            assert_eq!(s.scan(&buf[..i], &Limits::default()), Ok(None));
            assert_eq!(s.scanned(), i);
        }
        assert_eq!(s.scan(buf, &Limits::default()), Ok(Some(buf.len())));
        assert_eq!(
            s.finish(buf, &Limits::default()).unwrap().method,
            Method::GET
        );
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        assert!(parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").is_ok());
    }

    #[test]
    fn header_values_are_trimmed_and_may_be_empty_or_obs_text() {
        let h = parse(&with_fields("A:  x y \t\r\nB:\r\nC: caf\u{e9}\r\n")).unwrap();
        assert_eq!(h.headers["a"], "x y");
        assert_eq!(h.headers["b"], "");
        assert_eq!(h.headers["c"].as_bytes(), "café".as_bytes());
    }

    #[test]
    fn target_forms() {
        let ok = |line: &str| parse(format!("{line}\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(
            ok("GET http://example.com/p?q HTTP/1.1")
                .unwrap()
                .target
                .path(),
            "/p"
        );
        assert_eq!(ok("OPTIONS * HTTP/1.1").unwrap().target, "*");
        assert_eq!(
            ok("CONNECT example.com:443 HTTP/1.1").unwrap().target,
            "example.com:443"
        );
        assert_eq!(ok("GET * HTTP/1.1"), Err(HttpError::BadTarget));
        assert_eq!(ok("CONNECT / HTTP/1.1"), Err(HttpError::BadTarget));
        assert_eq!(
            ok("CONNECT example.com HTTP/1.1"),
            Err(HttpError::BadTarget)
        );
        assert_eq!(ok("GET example.com:80 HTTP/1.1"), Err(HttpError::BadTarget));
        assert_eq!(ok("GET foo HTTP/1.1"), Err(HttpError::BadTarget));
        assert_eq!(ok("GET //x HTTP/1.1").unwrap().target, "//x");
        assert_eq!(ok("GET /a#frag HTTP/1.1"), Err(HttpError::BadTarget));
        assert_eq!(ok("GET /a?q=\"x\" HTTP/1.1"), Err(HttpError::BadTarget));
    }

    // ---- keep-alive and Expect

    #[test]
    fn http11_is_keep_alive_unless_connection_close() {
        assert!(parse(&with_fields("")).unwrap().keep_alive);
        assert!(
            !parse(&with_fields("Connection: close\r\n"))
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse(&with_fields("Connection: Upgrade, CLOSE\r\n"))
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse(&with_fields("Connection: foo\r\nConnection: close\r\n"))
                .unwrap()
                .keep_alive
        );
        assert!(
            parse(&with_fields("Connection: closed\r\n"))
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn http10_is_close_unless_connection_keep_alive() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        let both = b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n";
        assert!(!parse(both).unwrap().keep_alive);
    }

    #[test]
    fn expect_100_continue_is_recognised_in_any_case() {
        assert!(
            parse(&with_fields("Expect: 100-continue\r\n"))
                .unwrap()
                .expect_continue
        );
        assert!(
            parse(&with_fields("Expect: 100-Continue\r\n"))
                .unwrap()
                .expect_continue
        );
    }

    #[test]
    fn expect_100_continue_is_ignored_in_http10() {
        let h = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!h.expect_continue);
    }

    #[test]
    fn other_expectations_are_417() {
        assert_eq!(
            body_of("Expect: 200-ok\r\n"),
            Err(HttpError::UnsupportedExpectation)
        );
        assert_eq!(
            body_of("Expect: 100-continue, x\r\n"),
            Err(HttpError::UnsupportedExpectation)
        );
        assert_eq!(
            body_of("Expect:\r\n"),
            Err(HttpError::UnsupportedExpectation)
        );
        assert_eq!(err(&with_fields("Expect: x\r\n")).status(), 417);
    }

    // ---- the request line

    #[test]
    fn unsupported_versions_are_505() {
        assert_eq!(
            err(b"GET / HTTP/2.0\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/1.2\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/0.9\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(err(b"GET / HTTP/0.9\r\n\r\n").status(), 505);
    }

    #[test]
    fn unsupported_version_is_refused_before_the_headers_arrive() {
        assert_eq!(
            parse_head(b"GET / HTTP/3.0\r\nHo", &Limits::default()),
            Err(HttpError::UnsupportedVersion)
        );
    }

    #[test]
    fn malformed_versions_are_400() {
        for line in [
            "GET / HTTP/1.10",
            "GET / http/1.1",
            "GET / HTTP/1",
            "GET / HTTP/11",
            "GET /",
            "GET / HTTP/1.1 ",
            "GET / HTTP/1.1 x",
        ] {
            let buf = format!("{line}\r\nHost: x\r\n\r\n");
            assert_eq!(err(buf.as_bytes()), HttpError::BadRequestLine, "{line}");
        }
    }

    #[test]
    fn malformed_request_lines_are_400() {
        for line in [
            &b"GET  / HTTP/1.1"[..],
            b" GET / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET /\tx HTTP/1.1",
            b"G(T / HTTP/1.1",
            b"GET /\x7f HTTP/1.1",
            b"GET /\x00 HTTP/1.1",
            b"\x16\x03\x01\x02\x00",
        ] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"\r\nHost: x\r\n\r\n");
            assert_eq!(
                err(&buf),
                HttpError::BadRequestLine,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_non_token_method_fails_at_its_first_byte() {
        assert_eq!(
            parse_head(b"\x16", &Limits::default()),
            Err(HttpError::BadRequestLine)
        );
    }

    #[test]
    fn target_too_long_is_414() {
        let limits = Limits {
            max_request_line: 64,
            ..Limits::default()
        };
        let fits = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 - 14));
        assert!(parse_with(fits.as_bytes(), &limits).is_ok());
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 - 13));
        assert_eq!(
            parse_with(long.as_bytes(), &limits),
            Err(HttpError::TargetTooLong)
        );
        // Refused before the line ends.
        let partial = format!("GET /{}", "a".repeat(70));
        assert_eq!(
            parse_head(partial.as_bytes(), &limits),
            Err(HttpError::TargetTooLong)
        );
        assert_eq!(HttpError::TargetTooLong.status(), 414);
    }

    #[test]
    fn default_request_line_limit_is_8k() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8 * 1024));
        assert_eq!(err(long.as_bytes()), HttpError::TargetTooLong);
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(8 * 1024 - 14)
        );
        assert!(parse(fits.as_bytes()).is_ok());
    }

    #[test]
    fn method_too_long_is_400() {
        let partial = "A".repeat(9000);
        assert_eq!(err(partial.as_bytes()), HttpError::BadRequestLine);
    }

    #[test]
    fn too_many_empty_lines_before_the_request_line_are_400() {
        let limits = Limits {
            max_request_line: 16,
            ..Limits::default()
        };
        assert_eq!(
            parse_head(&b"\r\n".repeat(9), &limits),
            Err(HttpError::BadRequestLine)
        );
    }

    // ---- header limits

    #[test]
    fn header_section_too_large_is_431() {
        let limits = Limits {
            max_header_bytes: 32,
            ..Limits::default()
        };
        // "Host: x\r\n" (9) + "A: " + 18 + "\r\n" (23) = 32, then the final CRLF is over.
        let over = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n", "a".repeat(18));
        assert_eq!(
            parse_with(over.as_bytes(), &limits),
            Err(HttpError::HeadersTooLarge)
        );
        let fits = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n", "a".repeat(16));
        assert!(parse_with(fits.as_bytes(), &limits).is_ok());
        // Refused while still incomplete.
        let partial = format!("GET / HTTP/1.1\r\nA: {}", "a".repeat(40));
        assert_eq!(
            parse_head(partial.as_bytes(), &limits),
            Err(HttpError::HeadersTooLarge)
        );
        assert_eq!(HttpError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let fits = with_fields("A: 1\r\nB: 2\r\n");
        assert!(parse_with(&fits, &limits).is_ok());
        let over = with_fields("A: 1\r\nB: 2\r\nC: 3\r\n");
        assert_eq!(parse_with(&over, &limits), Err(HttpError::TooManyHeaders));
        let hundred_and_one: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            err(&with_fields(&hundred_and_one)),
            HttpError::TooManyHeaders
        );
    }

    // ---- line syntax

    #[test]
    fn obs_fold_is_400() {
        assert_eq!(
            err(&with_fields("A: 1\r\n  continued\r\n")),
            HttpError::ObsFold
        );
        assert_eq!(
            err(&with_fields("A: 1\r\n\tcontinued\r\n")),
            HttpError::ObsFold
        );
    }

    #[test]
    fn whitespace_before_the_first_header_is_400() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
            HttpError::ObsFold
        );
    }

    #[test]
    fn space_before_colon_is_400() {
        assert_eq!(
            err(&with_fields("Content-Length : 5\r\n")),
            HttpError::SpaceBeforeColon
        );
    }

    #[test]
    fn tab_before_colon_is_400() {
        assert_eq!(
            err(&with_fields("Transfer-Encoding\t: chunked\r\n")),
            HttpError::SpaceBeforeColon
        );
    }

    #[test]
    fn space_inside_a_field_name_is_400() {
        assert_eq!(
            err(&with_fields("Content Length: 5\r\n")),
            HttpError::BadHeaderName
        );
    }

    #[test]
    fn field_line_without_colon_is_400() {
        assert_eq!(err(&with_fields("NoColon\r\n")), HttpError::BadHeaderName);
    }

    #[test]
    fn empty_field_name_is_400() {
        assert_eq!(err(&with_fields(": x\r\n")), HttpError::BadHeaderName);
    }

    #[test]
    fn non_token_field_name_is_400() {
        assert_eq!(err(&with_fields("A(b): x\r\n")), HttpError::BadHeaderName);
        assert_eq!(
            err(&with_fields("Caf\u{e9}: x\r\n")),
            HttpError::BadHeaderName
        );
    }

    #[test]
    fn nul_in_field_name_is_400() {
        assert_eq!(err(&with_fields("A\0B: x\r\n")), HttpError::BadHeaderName);
    }

    #[test]
    fn nul_in_field_value_is_400() {
        assert_eq!(err(&with_fields("A: x\0y\r\n")), HttpError::BadHeaderValue);
    }

    #[test]
    fn control_bytes_in_field_value_are_400() {
        for c in (1u8..0x20)
            .filter(|&c| c != b'\t' && c != b'\r' && c != b'\n')
            .chain([0x7f])
        {
            let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\nA: a".to_vec();
            buf.extend_from_slice(&[c, b'b']);
            buf.extend_from_slice(b"\r\n\r\n");
            assert_eq!(err(&buf), HttpError::BadHeaderValue, "byte {c:#x}");
        }
    }

    #[test]
    fn bare_cr_in_a_field_value_is_400() {
        assert_eq!(err(&with_fields("A: x\ry\r\n")), HttpError::BareCr);
    }

    #[test]
    fn bare_cr_as_line_end_is_400() {
        assert_eq!(err(b"GET / HTTP/1.1\rHost: x\r\n\r\n"), HttpError::BareCr);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\r\r\n"), HttpError::BareCr);
    }

    #[test]
    fn bare_lf_after_the_request_line_is_400() {
        assert_eq!(err(b"GET / HTTP/1.1\nHost: x\r\n\r\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_lf_after_a_field_is_400() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\nA: b\r\n\r\n"),
            HttpError::BareLf
        );
    }

    #[test]
    fn bare_lf_ending_the_head_is_400() {
        // httparse alone would accept this, ending the head one byte early.
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\r\n\n"), HttpError::BareLf);
        assert_eq!(err(b"GET / HTTP/1.1\nHost: x\n\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_lf_before_the_request_line_is_400() {
        assert_eq!(
            err(b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            HttpError::BareLf
        );
    }

    #[test]
    fn httparse_accepts_bare_lf_so_we_check_ourselves() {
        // The reason for the scanner's BareLf check: httparse's default config lets it through.
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req
            .parse(b"GET / HTTP/1.1\nHost: x\n\n")
            .unwrap()
            .is_complete());
    }

    // ---- Host

    #[test]
    fn http11_without_host_is_400() {
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), HttpError::MissingHost);
    }

    #[test]
    fn duplicate_host_is_400() {
        assert_eq!(err(&with_fields("Host: y\r\n")), HttpError::DuplicateHost);
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            HttpError::DuplicateHost
        );
    }

    #[test]
    fn http10_without_host_is_fine() {
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().version,
            Version::HTTP_10
        );
    }

    // ---- Content-Length

    #[test]
    fn content_length_sets_the_body_length() {
        assert_eq!(body_of("Content-Length: 42\r\n"), Ok(BodyKind::Length(42)));
        assert_eq!(body_of("Content-Length: 0\r\n"), Ok(BodyKind::Length(0)));
        assert_eq!(body_of("Content-Length: 007\r\n"), Ok(BodyKind::Length(7)));
    }

    #[test]
    fn identical_duplicate_content_lengths_are_one() {
        assert_eq!(
            body_of("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(BodyKind::Length(5))
        );
    }

    #[test]
    fn identical_content_length_list_is_one() {
        assert_eq!(body_of("Content-Length: 5, 5\r\n"), Ok(BodyKind::Length(5)));
        assert_eq!(
            body_of("Content-Length: 5,5,5\r\n"),
            Ok(BodyKind::Length(5))
        );
    }

    #[test]
    fn differing_duplicate_content_lengths_are_400() {
        assert_eq!(
            body_of("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(HttpError::ConflictingContentLength)
        );
    }

    #[test]
    fn differing_content_length_list_is_400() {
        assert_eq!(
            body_of("Content-Length: 5, 6\r\n"),
            Err(HttpError::ConflictingContentLength)
        );
    }

    #[test]
    fn content_length_with_sign_is_400() {
        assert_eq!(
            body_of("Content-Length: +5\r\n"),
            Err(HttpError::InvalidContentLength)
        );
        assert_eq!(
            body_of("Content-Length: -5\r\n"),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn content_length_with_underscore_is_400() {
        assert_eq!(
            body_of("Content-Length: 1_000\r\n"),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn content_length_in_hex_is_400() {
        assert_eq!(
            body_of("Content-Length: 0x10\r\n"),
            Err(HttpError::InvalidContentLength)
        );
        assert_eq!(
            body_of("Content-Length: a\r\n"),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn content_length_with_inner_whitespace_is_400() {
        assert_eq!(
            body_of("Content-Length: 1 2\r\n"),
            Err(HttpError::InvalidContentLength)
        );
        assert_eq!(
            body_of("Content-Length: 1\t2\r\n"),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn empty_content_length_is_400() {
        assert_eq!(
            body_of("Content-Length:\r\n"),
            Err(HttpError::InvalidContentLength)
        );
        assert_eq!(
            body_of("Content-Length: 5,\r\n"),
            Err(HttpError::InvalidContentLength)
        );
        assert_eq!(
            body_of("Content-Length: ,5\r\n"),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn overflowing_content_length_is_400() {
        let unlimited = Limits {
            max_body: u64::MAX,
            ..Limits::default()
        };
        let max = with_fields("Content-Length: 18446744073709551615\r\n");
        assert_eq!(
            parse_with(&max, &unlimited).unwrap().body,
            BodyKind::Length(u64::MAX)
        );
        let over = with_fields("Content-Length: 18446744073709551616\r\n");
        assert_eq!(
            parse_with(&over, &unlimited),
            Err(HttpError::InvalidContentLength)
        );
        let huge = with_fields(&format!("Content-Length: {}\r\n", "9".repeat(100)));
        assert_eq!(
            parse_with(&huge, &unlimited),
            Err(HttpError::InvalidContentLength)
        );
    }

    #[test]
    fn body_over_the_limit_is_413_before_reading_it() {
        let limits = Limits {
            max_body: 10,
            ..Limits::default()
        };
        let fits = with_fields("Content-Length: 10\r\n");
        assert_eq!(
            parse_with(&fits, &limits).unwrap().body,
            BodyKind::Length(10)
        );
        let over = with_fields("Content-Length: 11\r\n");
        assert_eq!(parse_with(&over, &limits), Err(HttpError::BodyTooLarge));
        assert_eq!(HttpError::BodyTooLarge.status(), 413);
        // The default: 16 MiB.
        assert_eq!(
            body_of("Content-Length: 16777217\r\n"),
            Err(HttpError::BodyTooLarge)
        );
    }

    // ---- Transfer-Encoding

    #[test]
    fn chunked_is_the_chunked_body() {
        assert_eq!(
            body_of("Transfer-Encoding: chunked\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            body_of("Transfer-Encoding: Chunked\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            body_of("Transfer-Encoding: , chunked ,\r\n"),
            Ok(BodyKind::Chunked)
        );
    }

    #[test]
    fn content_length_and_transfer_encoding_is_400() {
        assert_eq!(
            body_of("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            Err(HttpError::ContentLengthWithTransferEncoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(HttpError::ContentLengthWithTransferEncoding)
        );
    }

    #[test]
    fn transfer_encoding_in_http10_is_400() {
        let buf = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(buf), HttpError::TransferEncodingInHttp10);
        let with_cl = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(err(with_cl), HttpError::TransferEncodingInHttp10);
    }

    #[test]
    fn codings_before_chunked_are_501() {
        assert_eq!(
            body_of("Transfer-Encoding: gzip, chunked\r\n"),
            Err(HttpError::UnsupportedTransferCoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Err(HttpError::UnsupportedTransferCoding)
        );
        assert_eq!(
            err(&with_fields("Transfer-Encoding: gzip, chunked\r\n")).status(),
            501
        );
    }

    #[test]
    fn chunked_not_last_is_400() {
        assert_eq!(
            body_of("Transfer-Encoding: chunked, gzip\r\n"),
            Err(HttpError::ChunkedNotFinal)
        );
        assert_eq!(
            body_of("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            Err(HttpError::ChunkedNotFinal)
        );
    }

    #[test]
    fn identity_transfer_encoding_is_400() {
        assert_eq!(
            body_of("Transfer-Encoding: identity\r\n"),
            Err(HttpError::ChunkedNotFinal)
        );
    }

    #[test]
    fn unknown_transfer_coding_alone_is_400() {
        assert_eq!(
            body_of("Transfer-Encoding: foo\r\n"),
            Err(HttpError::ChunkedNotFinal)
        );
        assert_eq!(
            body_of("Transfer-Encoding: xchunked\r\n"),
            Err(HttpError::ChunkedNotFinal)
        );
    }

    #[test]
    fn chunked_twice_is_400() {
        assert_eq!(
            body_of("Transfer-Encoding: chunked, chunked\r\n"),
            Err(HttpError::ChunkedTwice)
        );
        assert_eq!(
            body_of("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Err(HttpError::ChunkedTwice)
        );
    }

    #[test]
    fn empty_or_malformed_transfer_encoding_is_400() {
        assert_eq!(
            body_of("Transfer-Encoding:\r\n"),
            Err(HttpError::BadTransferEncoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: ,\r\n"),
            Err(HttpError::BadTransferEncoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: chunked;x=1\r\n"),
            Err(HttpError::BadTransferEncoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: \"chunked\"\r\n"),
            Err(HttpError::BadTransferEncoding)
        );
        assert_eq!(
            body_of("Transfer-Encoding: chun ked\r\n"),
            Err(HttpError::BadTransferEncoding)
        );
    }

    // ---- reuse between heads

    /// `head` built with `reuse`, through the scanner as a connection does.
    fn parse_reusing(head: &[u8], reuse: &mut Reuse) -> Result<Head, HttpError> {
        let mut sc = HeadScanner::new();
        let n = sc.scan(head, &Limits::default())?.expect("a complete head");
        sc.finish_reusing(&head[..n], &Limits::default(), reuse)
    }

    #[test]
    fn a_repeated_field_is_shared_with_the_head_before_not_copied() {
        let mut reuse = Reuse::default();
        let first = parse_reusing(
            b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Id: 7\r\n\r\n",
            &mut reuse,
        )
        .unwrap();
        // The same fields, the names in other cases: the same values, not new copies.
        let second = parse_reusing(
            b"GET / HTTP/1.1\r\nHOST: example.com\r\nx-id: 7\r\n\r\n",
            &mut reuse,
        )
        .unwrap();
        assert_eq!(second.headers, first.headers);
        for name in ["host", "x-id"] {
            assert_eq!(
                second.headers[name].as_bytes().as_ptr(),
                first.headers[name].as_bytes().as_ptr(),
                "{name} is shared"
            );
        }
        // A changed value is built anew.
        let third = parse_reusing(
            b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Id: 8\r\n\r\n",
            &mut reuse,
        )
        .unwrap();
        assert_eq!(third.headers["x-id"], "8");
        assert_ne!(
            third.headers["x-id"].as_bytes().as_ptr(),
            first.headers["x-id"].as_bytes().as_ptr()
        );
        // A field at another position is not taken for the one kept there.
        let fourth = parse_reusing(
            b"GET / HTTP/1.1\r\nX-Id: 8\r\nHost: example.com\r\n\r\n",
            &mut reuse,
        )
        .unwrap();
        assert_eq!(fourth.headers["x-id"], "8");
        assert_eq!(fourth.headers["host"], "example.com");
        assert_eq!(fourth.headers.keys().next().unwrap(), "x-id");
    }

    #[test]
    fn a_field_whose_value_changes_keeps_only_its_name() {
        let head = |id: &str| format!("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\n\r\n");
        let mut reuse = Reuse::default();
        let heads: Vec<Head> = ["1", "2", "2", "2"]
            .iter()
            .map(|id| parse_reusing(head(id).as_bytes(), &mut reuse).unwrap())
            .collect();
        let value = |h: &Head| h.headers["x-request-id"].as_bytes().as_ptr();
        let name = |h: &Head| h.headers.keys().nth(1).unwrap().as_str().as_ptr();
        assert_eq!(heads[3].headers["x-request-id"], "2");
        // Once it has changed, the value is not kept again, even if it then repeats...
        assert_ne!(value(&heads[2]), value(&heads[3]));
        assert_ne!(value(&heads[1]), value(&heads[2]));
        // ...but the name is, and so is the unchanged field beside it.
        assert_eq!(name(&heads[0]), name(&heads[3]));
        assert_eq!(
            heads[0].headers["host"].as_bytes().as_ptr(),
            heads[3].headers["host"].as_bytes().as_ptr()
        );
    }

    #[test]
    fn reuse_keeps_a_bounded_number_of_short_fields() {
        let long = "v".repeat(REUSE_VALUE_BYTES + 1);
        let mut fields = format!("Host: x\r\nX-Long: {long}\r\n");
        for i in 0..REUSE_FIELDS + 4 {
            fields.push_str(&format!("X-F{i}: {i}\r\n"));
        }
        let head = format!("GET / HTTP/1.1\r\n{fields}\r\n").into_bytes();
        let mut reuse = Reuse::default();
        let first = parse_reusing(&head, &mut reuse).unwrap();
        let second = parse_reusing(&head, &mut reuse).unwrap();
        assert_eq!(second.headers, first.headers);
        assert_eq!(reuse.fields.len(), REUSE_FIELDS);
        let shared = |name: &str| {
            first.headers[name].as_bytes().as_ptr() == second.headers[name].as_bytes().as_ptr()
        };
        assert!(shared("host"));
        assert!(!shared("x-long"), "a long value is not kept");
        assert!(shared("x-f0"));
        let last = format!("x-f{}", REUSE_FIELDS + 3);
        assert!(
            !shared(&last),
            "a field past the kept positions is not kept"
        );
    }

    #[test]
    fn a_bad_field_is_refused_even_where_a_good_one_was_kept() {
        let mut reuse = Reuse::default();
        parse_reusing(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n", &mut reuse).unwrap();
        assert_eq!(
            parse_reusing(
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x01\r\n\r\n",
                &mut reuse
            ),
            Err(HttpError::BadHeaderValue)
        );
        assert_eq!(
            parse_reusing(
                b"GET / HTTP/1.1\r\nHost: x\r\nX-\x7fA: 1\r\n\r\n",
                &mut reuse
            ),
            Err(HttpError::BadHeaderName)
        );
    }

    proptest::proptest! {
        /// Any sequence of heads built with one `Reuse` gives, head by head, what building
        /// each alone gives: names, values, order, framing and errors alike.
        #[test]
        fn reuse_never_changes_a_head(
            heads in proptest::collection::vec(
                proptest::collection::vec((0usize..6, 0usize..5, proptest::bool::ANY), 0..20),
                1..6,
            )
        ) {
            const NAMES: [&str; 6] = ["Host", "HOST", "x-a", "X-A", "Content-Length", "Accept"];
            const VALUES: [&str; 5] = ["1", "2", "a b", "", "\x7f"];
            let mut reuse = Reuse::default();
            for fields in &heads {
                let mut text = String::from("GET / HTTP/1.1\r\n");
                for &(n, v, host) in fields {
                    let name = if host { "Host" } else { NAMES[n] };
                    text.push_str(&format!("{name}: {}\r\n", VALUES[v]));
                }
                text.push_str("\r\n");
                let alone = parse_reusing(text.as_bytes(), &mut Reuse::default());
                let reused = parse_reusing(text.as_bytes(), &mut reuse);
                proptest::prop_assert_eq!(reused, alone, "{:?}", text);
            }
        }
    }

    #[test]
    fn parse_decimal_rules() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
    }
}
