//! The HTTP/1.1 protocol core of grove's WSGI-like server: pure, sans-I/O, no hub calls.
//!
//! Nothing in this module reads or writes a socket, sleeps or touches the hub: it turns bytes
//! into requests and responses into bytes, so every rule can be tested (and fuzzed) on plain
//! buffers, and the server written on top of it is a plain blocking read loop on a cooperative
//! socket. The layers, bottom up:
//!
//! | layer | file | what it does |
//! |---|---|---|
//! | request head | [`parse`] | [`parse_head`]: request line + header section -> [`Head`], with the body framing ([`BodyKind`]), keep-alive and `Expect: 100-continue` decided |
//! | request body | [`body`] | [`BodyDecoder`]: incremental `Content-Length` and `chunked` decoding, zero-copy, no buffering |
//! | connection | [`conn`] | [`Conn`]: the per-connection state machine (bounded buffer, pipelining, keep-alive, 100-continue, "nothing after an error") |
//! | response | [`response`] | [`write_head`]: status line, validated headers, the framing decision; [`BodyEncoder`] for the body |
//! | `Date` | [`date`] | IMF-fixdate formatting and a once-a-second cache |
//! | the server | (the lead's, on top) | accepts, reads into [`Conn::read_buf`], calls the handler, writes what [`response`] produced |
//!
//! The rules are RFC 9110 and RFC 9112, with the request-smuggling holes of gevent's pywsgi
//! closed: anything ambiguous in the message framing (both `Content-Length` and
//! `Transfer-Encoding`, differing `Content-Length`s, a `Transfer-Encoding` whose last coding is
//! not `chunked`, obs-fold, bare CR or LF, a malformed chunk line) is an error, never a guess.
//! Every error is an [`HttpError`] variant that names what was wrong and carries the status the
//! server answers with ([`HttpError::status`]); after one, the connection must be closed.
//!
//! # Driving a connection
//!
//! ```
//! use grove::http::{Conn, Event, Limits};
//!
//! let mut conn = Conn::new(Limits::default());
//! let wire = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
//! // What a server does with `sock.read(conn.read_buf())` then `conn.filled(n)`:
//! assert_eq!(conn.feed(wire), wire.len());
//! let Some(Event::Request(head)) = conn.next_event() else { panic!() };
//! assert_eq!(head.target, "/echo");
//! let mut body = Vec::new();
//! while let Some(Event::Body(data)) = conn.next_event() {
//!     body.extend_from_slice(data);
//! }
//! assert_eq!(body, b"hello"); // the loop ended on Event::BodyEnd
//! conn.response_done(true); // the response was written: the next request may surface
//! assert!(conn.next_event().is_none() && conn.wants_read());
//! ```
#![forbid(unsafe_code)]

pub mod body;
pub mod conn;
pub mod date;
mod handler;
mod log;
pub mod parse;
pub mod response;
mod server;

pub use body::{BodyDecoder, Decoded};
pub use conn::{Conn, Event};
pub use date::{imf_fixdate, DateCache};
pub use handler::{Body, Handler, ReasonPhrase, Request, Response, ResponseBody, StreamFn};
pub use log::{log_to_stderr, AccessRecord, RequestLine};
pub use parse::{parse_head, BodyKind, Head, HeadScanner, Reuse};
pub use response::{
    write_continue, write_error, write_head, write_head_map, BodyEncoder, Framing, HeadOptions,
    ResponseContext, ResponseError,
};
pub use server::{BodyWriter, HttpServer, Running, RunningWorkers};

use core::fmt;
use http::StatusCode;

/// The bounds a connection enforces on what a client sends. Every buffer and every counter in
/// this module is bounded by one of these, so a client cannot make the server use more memory
/// or time than they allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The request line, without its CRLF, in bytes (empty lines before it count too). A longer
    /// one is [`HttpError::TargetTooLong`] (414) once the method is over, else
    /// [`HttpError::BadRequestLine`]. Default 8 KiB.
    pub max_request_line: usize,
    /// The header section, from the end of the request line to the end of the empty line that
    /// closes the head, in bytes. More is [`HttpError::HeadersTooLarge`] (431). Default 64 KiB.
    pub max_header_bytes: usize,
    /// Header fields in one request head; also trailer fields in one chunked body. More is
    /// [`HttpError::TooManyHeaders`] (431) or [`HttpError::TrailersTooLarge`]. Default 100.
    pub max_headers: usize,
    /// The decoded body, in bytes: a larger `Content-Length` is refused before any of the body
    /// is read, a chunked body fails when its chunks' sizes add up past it
    /// ([`HttpError::BodyTooLarge`], 413). `u64::MAX` means unlimited. Default 16 MiB.
    pub max_body: u64,
    /// Chunk extensions (`;name=value` after a chunk size) over one whole chunked body, in
    /// bytes. They are parsed, checked and dropped; more is
    /// [`HttpError::ChunkExtensionsTooLong`]. Default 4 KiB.
    pub max_chunk_ext_bytes: usize,
    /// The trailer section of a chunked body, in bytes. Trailer fields are validated like
    /// header fields and dropped; more is [`HttpError::TrailersTooLarge`]. Default 8 KiB.
    pub max_trailer_bytes: usize,
    /// How much [`Conn::read_buf`] offers beyond the head limits: the connection buffer never
    /// holds more than `max_request_line + 2 + max_header_bytes + read_chunk` bytes. Default
    /// 16 KiB (at least 1 is used).
    pub read_chunk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body: 16 * 1024 * 1024,
            max_chunk_ext_bytes: 4 * 1024,
            max_trailer_bytes: 8 * 1024,
            read_chunk: 16 * 1024,
        }
    }
}

impl Limits {
    /// The most bytes one request head may take: leading empty lines and the request line,
    /// its CRLF, the header section.
    pub fn max_head_bytes(&self) -> usize {
        self.max_request_line
            .saturating_add(2)
            .saturating_add(self.max_header_bytes)
    }

    /// The most bytes a [`Conn`] ever buffers: a whole head plus one read chunk.
    pub fn max_buffer(&self) -> usize {
        self.max_head_bytes().saturating_add(self.read_chunk.max(1))
    }
}

/// Why a request was refused. Each variant names one rule; [`status`](HttpError::status) is
/// the status the server answers with, and [`Display`](fmt::Display) says what was wrong in
/// words fit for the response body and the log. After any of them the connection is done:
/// [`Conn`] surfaces nothing more, and the server closes it after the error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    // ---- 400: the request line
    /// The request line is not `method SP request-target SP HTTP-version` (a bad method
    /// token, doubled spaces, a control byte, a version that is not `HTTP/d.d`, ...).
    BadRequestLine,
    /// The request target is not a valid origin-form (`/path?query`), absolute-form
    /// (`http://host/path`), authority-form (CONNECT only) or asterisk-form (OPTIONS only), or
    /// has a fragment (`#`) or a byte [`http::Uri`] refuses (`"`, `<`, `>`, a backquote...).
    BadTarget,
    // ---- 400: line syntax
    /// A line ends in LF without the CR before it (RFC 9112 2.2 allows recipients to accept
    /// it; we do not, since a front end that does not would frame the message differently).
    BareLf,
    /// A CR that is not followed by LF.
    BareCr,
    /// A header line starting with SP or HTAB: obsolete line folding (RFC 9112 5.2), or
    /// whitespace between the request line and the first header.
    ObsFold,
    /// Whitespace between a header field name and its colon (RFC 9112 5.1: MUST be 400).
    SpaceBeforeColon,
    /// A header field name that is empty, has no colon after it, or has a byte that is not a
    /// token character.
    BadHeaderName,
    /// A header field value with NUL, another control byte or DEL in it.
    BadHeaderValue,
    // ---- 400: Host
    /// An HTTP/1.1 request without a `Host` header (RFC 9112 3.2).
    MissingHost,
    /// More than one `Host` header.
    DuplicateHost,
    // ---- 400: message framing (request smuggling)
    /// A `Content-Length` that is not plain decimal digits fitting a u64 (a sign, underscore,
    /// hex, whitespace inside, empty, or too large).
    InvalidContentLength,
    /// Several `Content-Length` values (fields or list members) that differ.
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 6.3 allows processing it with
    /// `Transfer-Encoding`; we refuse it, as that ambiguity is how requests are smuggled).
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 6.1: the framing is faulty).
    TransferEncodingInHttp10,
    /// A `Transfer-Encoding` whose last coding is not `chunked` (`identity`, `gzip`,
    /// `chunked, gzip`): the body length cannot be determined (RFC 9112 6.3: MUST be 400).
    ChunkedNotFinal,
    /// `chunked` more than once in `Transfer-Encoding` (RFC 9112 7: a sender MUST NOT).
    ChunkedTwice,
    /// A `Transfer-Encoding` that is empty, has a member that is not a token, or gives
    /// `chunked` parameters.
    BadTransferEncoding,
    // ---- 400: chunked body
    /// A chunk-size line that does not start with hex digits, or has anything but BWS and `;`
    /// after them (a sign, `0x`, leading or trailing whitespace, an empty size).
    BadChunkSize,
    /// A chunk size of more than 16 hex digits.
    ChunkSizeTooLong,
    /// A chunk extension that is not `;name[=token|"quoted"]`.
    BadChunkExtension,
    /// Chunk extensions over the whole body longer than [`Limits::max_chunk_ext_bytes`].
    ChunkExtensionsTooLong,
    /// Chunk data not followed by CRLF.
    MissingChunkCrlf,
    /// A trailer field that is not `name: value` with a token name and a clean value.
    BadTrailer,
    // ---- 400: the connection ended early
    /// The client closed the connection in the middle of a request head.
    IncompleteHead,
    /// The client closed the connection in the middle of a request body.
    IncompleteBody,
    // ---- 413, 414, 417, 431, 501, 505
    /// A body larger than [`Limits::max_body`] (413).
    BodyTooLarge,
    /// A request line longer than [`Limits::max_request_line`] while in the target (414).
    TargetTooLong,
    /// An `Expect` other than `100-continue` (417).
    UnsupportedExpectation,
    /// A header section longer than [`Limits::max_header_bytes`] (431).
    HeadersTooLarge,
    /// More header fields than [`Limits::max_headers`] (431).
    TooManyHeaders,
    /// A trailer section longer than [`Limits::max_trailer_bytes`] or with more than
    /// [`Limits::max_headers`] fields (431).
    TrailersTooLarge,
    /// A `Transfer-Encoding` with codings before the final `chunked` (`gzip, chunked`): we
    /// decode none of them (501, RFC 9112 6.1).
    UnsupportedTransferCoding,
    /// An HTTP version other than 1.0 and 1.1 (505).
    UnsupportedVersion,
    // ---- 408: the server's clock, not the bytes
    /// The request head did not arrive within the server's header timeout (408): a client
    /// too slow, or sending a byte at a time.
    HeaderTimeout,
}

impl HttpError {
    /// The status the server answers this error with.
    pub fn status(&self) -> StatusCode {
        use HttpError::*;
        match self {
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TargetTooLong => StatusCode::URI_TOO_LONG,
            UnsupportedExpectation => StatusCode::EXPECTATION_FAILED,
            HeadersTooLarge | TooManyHeaders | TrailersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            HeaderTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            BadRequestLine
            | BadTarget
            | BareLf
            | BareCr
            | ObsFold
            | SpaceBeforeColon
            | BadHeaderName
            | BadHeaderValue
            | MissingHost
            | DuplicateHost
            | InvalidContentLength
            | ConflictingContentLength
            | ContentLengthWithTransferEncoding
            | TransferEncodingInHttp10
            | ChunkedNotFinal
            | ChunkedTwice
            | BadTransferEncoding
            | BadChunkSize
            | ChunkSizeTooLong
            | BadChunkExtension
            | ChunkExtensionsTooLong
            | MissingChunkCrlf
            | BadTrailer
            | IncompleteHead
            | IncompleteBody => StatusCode::BAD_REQUEST,
        }
    }

    /// What was wrong, in one sentence (the [`Display`](fmt::Display) text).
    pub fn message(&self) -> &'static str {
        use HttpError::*;
        match self {
            BadRequestLine => "malformed request line",
            BadTarget => "malformed request target",
            BareLf => "line ends in a bare LF (CRLF required)",
            BareCr => "CR not followed by LF",
            ObsFold => "header line starts with whitespace (obsolete line folding)",
            SpaceBeforeColon => "whitespace between header field name and colon",
            BadHeaderName => "malformed header field name",
            BadHeaderValue => "control character in header field value",
            MissingHost => "HTTP/1.1 request without a Host header",
            DuplicateHost => "more than one Host header",
            InvalidContentLength => "Content-Length is not a decimal number",
            ConflictingContentLength => "conflicting Content-Length values",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            ChunkedNotFinal => "Transfer-Encoding does not end in chunked",
            ChunkedTwice => "chunked applied more than once",
            BadTransferEncoding => "malformed Transfer-Encoding",
            BadChunkSize => "malformed chunk size",
            ChunkSizeTooLong => "chunk size longer than 16 hex digits",
            BadChunkExtension => "malformed chunk extension",
            ChunkExtensionsTooLong => "chunk extensions too long",
            MissingChunkCrlf => "chunk data not followed by CRLF",
            BadTrailer => "malformed trailer field",
            IncompleteHead => "connection closed in the middle of the request head",
            IncompleteBody => "connection closed in the middle of the request body",
            BodyTooLarge => "request body too large",
            TargetTooLong => "request target too long",
            UnsupportedExpectation => "unsupported expectation (only 100-continue is)",
            HeadersTooLarge => "header section too large",
            TooManyHeaders => "too many header fields",
            TrailersTooLarge => "trailer section too large",
            UnsupportedTransferCoding => "unsupported transfer coding (only chunked is)",
            UnsupportedVersion => "unsupported HTTP version (1.0 and 1.1 are)",
            HeaderTimeout => "the request head took too long to arrive",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpError {}

/// `tchar` of RFC 9110 5.6.2: the bytes of a token (method, field name, coding name).
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

/// A field-value byte (RFC 9110 5.5): HTAB, SP, VCHAR or obs-text; no NUL, CR, LF, other
/// controls or DEL.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Optional whitespace (SP / HTAB) trimmed from both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else { return &[] };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// The members of a comma-separated list field value (RFC 9110 5.6.1), OWS trimmed, empty
/// members skipped.
pub(crate) fn list_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_status_and_a_message() {
        use HttpError::*;
        let all = [
            BadRequestLine,
            BadTarget,
            BareLf,
            BareCr,
            ObsFold,
            SpaceBeforeColon,
            BadHeaderName,
            BadHeaderValue,
            MissingHost,
            DuplicateHost,
            InvalidContentLength,
            ConflictingContentLength,
            ContentLengthWithTransferEncoding,
            TransferEncodingInHttp10,
            ChunkedNotFinal,
            ChunkedTwice,
            BadTransferEncoding,
            BadChunkSize,
            ChunkSizeTooLong,
            BadChunkExtension,
            ChunkExtensionsTooLong,
            MissingChunkCrlf,
            BadTrailer,
            IncompleteHead,
            IncompleteBody,
            BodyTooLarge,
            TargetTooLong,
            UnsupportedExpectation,
            HeadersTooLarge,
            TooManyHeaders,
            TrailersTooLarge,
            UnsupportedTransferCoding,
            UnsupportedVersion,
        ];
        for e in all {
            assert!(e.status().is_client_error() || e.status().is_server_error());
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(BodyTooLarge.status(), 413);
        assert_eq!(TargetTooLong.status(), 414);
        assert_eq!(UnsupportedExpectation.status(), 417);
        assert_eq!(HeadersTooLarge.status(), 431);
        assert_eq!(TooManyHeaders.status(), 431);
        assert_eq!(UnsupportedTransferCoding.status(), 501);
        assert_eq!(UnsupportedVersion.status(), 505);
        assert_eq!(BareLf.status(), 400);
    }

    #[test]
    fn list_members_trim_and_skip_empty() {
        let m: Vec<&[u8]> = list_members(b" a ,, b\t,c,").collect();
        assert_eq!(m, [&b"a"[..], b"b", b"c"]);
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }

    #[test]
    fn limits_bound_the_buffer() {
        let l = Limits::default();
        assert_eq!(l.max_head_bytes(), 8 * 1024 + 2 + 64 * 1024);
        assert_eq!(l.max_buffer(), l.max_head_bytes() + 16 * 1024);
    }
}
