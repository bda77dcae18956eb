//! Writing a response: the head into a byte buffer, then the body through a [`BodyEncoder`].
//!
//! [`write_head`] takes what the handler gave (status, optional reason phrase, header fields)
//! and what the connection knows ([`ResponseContext`]), validates every byte the handler
//! supplied (a CR, LF or NUL in a reason, name or value is an error, never an injected header
//! line), decides the framing and writes the head:
//!
//! | response | framing | headers written |
//! |---|---|---|
//! | 1xx, 204 | no body | no `Content-Length` / `Transfer-Encoding` (the handler's are dropped) |
//! | 304, or any response to HEAD | no body (body bytes are dropped) | the `Content-Length` the handler or the caller gave, if any |
//! | length known | exactly that many bytes | `Content-Length` |
//! | length unknown, HTTP/1.1 client | chunked | `Transfer-Encoding: chunked` |
//! | length unknown, HTTP/1.0 client | until close | `Connection: close` |
//!
//! The status line always says `HTTP/1.1` (RFC 9110 6.2: a server sends its own version).
//! The handler's `Content-Length` counts as the known length (a second, different one is an
//! error); `Transfer-Encoding` from the handler is an error (the framing is the server's);
//! `Connection` from the handler is not copied, but `close` in it closes the connection. A
//! `Date` is added unless the handler gave one.
#![forbid(unsafe_code)]

use super::parse::parse_decimal;
use super::{is_field_value_byte, is_tchar, list_members, HttpError};
use core::fmt;
use http::{StatusCode, Version};

/// What the response writer needs to know about the request it answers. A [`Conn`](super::Conn) hands it
/// out ([`Conn::response_context`](super::Conn::response_context)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseContext {
    /// The request's version: decides chunked (1.1) or close-delimited (1.0) for a body of
    /// unknown length, and how keep-alive is said.
    pub version: Version,
    /// The request was HEAD: the response has no body.
    pub head_request: bool,
    /// The connection may stay open after this response.
    pub keep_alive: bool,
}

/// What else goes into the head besides the handler's status and fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadOptions<'a> {
    /// A reason phrase instead of the status's canonical one (validated).
    pub reason: Option<&'a str>,
    /// The body length when the server knows it (e.g. a handler returned a `Vec`); `None` with
    /// no `Content-Length` among the fields means unknown.
    pub content_length: Option<u64>,
    /// The `Date` value to add when the handler gave none (from a [`DateCache`](super::DateCache)).
    pub date: Option<&'a str>,
}

/// How the response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body may be sent (1xx, 204, 304, HEAD): body bytes are dropped.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0, length unknown).
    Close,
}

/// Why a response could not be written. The server answers 500 instead (if nothing was sent
/// yet) or closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseError {
    /// The reason phrase has a CR, LF, NUL or another control byte.
    BadReason,
    /// A header field name that is not a token (empty, or with a CR, LF, NUL, space, colon...).
    BadHeaderName,
    /// A header field value with a CR, LF, NUL or another control byte.
    BadHeaderValue,
    /// A `Content-Length` field that is not a decimal number.
    InvalidContentLength,
    /// `Content-Length` fields, or a field and [`HeadOptions::content_length`], that differ.
    ConflictingContentLength,
    /// The handler set `Transfer-Encoding`; the framing is the server's.
    TransferEncodingSet,
    /// More body bytes than the `Content-Length` said.
    BodyTooLong,
    /// The body ended before its `Content-Length`; the connection must be closed.
    BodyTooShort {
        /// The bytes that did not come.
        missing: u64,
    },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::BadReason => f.write_str("control character in the reason phrase"),
            ResponseError::BadHeaderName => f.write_str("invalid response header name"),
            ResponseError::BadHeaderValue => {
                f.write_str("control character in a response header value")
            }
            ResponseError::InvalidContentLength => {
                f.write_str("response Content-Length is not a decimal number")
            }
            ResponseError::ConflictingContentLength => {
                f.write_str("conflicting response Content-Length values")
            }
            ResponseError::TransferEncodingSet => {
                f.write_str("the handler set Transfer-Encoding (the server frames the body)")
            }
            ResponseError::BodyTooLong => {
                f.write_str("response body longer than its Content-Length")
            }
            ResponseError::BodyTooShort { missing } => {
                write!(
                    f,
                    "response body {missing} bytes short of its Content-Length"
                )
            }
        }
    }
}

impl std::error::Error for ResponseError {}

/// `100 Continue`, for [`Conn::body_read_started`](super::Conn::body_read_started).
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// A complete response for a request error: the error's status, a plain-text body saying
/// what was wrong, `Connection: close`. Returns the length of the body (for an access log).
pub fn write_error(out: &mut Vec<u8>, err: &HttpError, date: Option<&str>) -> usize {
    let status = err.status();
    let body = err.message();
    push_status_line(out, status, status.canonical_reason().unwrap_or(""));
    if let Some(date) = date.filter(|d| d.bytes().all(is_field_value_byte)) {
        push_field(out, b"date", date.as_bytes());
    }
    push_field(out, b"content-type", b"text/plain; charset=utf-8");
    push_field(
        out,
        b"content-length",
        (body.len() + 1).to_string().as_bytes(),
    );
    push_field(out, b"connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    body.len() + 1
}

/// Write the response head for `status` and the handler's `headers` into `out`, and return
/// the encoder for the body. On error nothing is written to `out`.
///
/// `headers` is anything that yields (name, value) byte pairs: an [`http::HeaderMap`] by
/// reference, or a WSGI-style list of string pairs, which are validated here.
pub fn write_head<I, N, V>(
    out: &mut Vec<u8>,
    ctx: &ResponseContext,
    status: StatusCode,
    headers: I,
    opts: &HeadOptions<'_>,
) -> Result<BodyEncoder, ResponseError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    write_head_with(out, ctx, status, headers, opts, Check::Bytes)
}

/// [`write_head`] for an [`http::HeaderMap`]: its names and values were validated when they
/// were made (the `http` crate admits exactly the bytes [`write_head`] would), so they are not
/// checked byte by byte again; the `Date` given in `opts` is the caller's own (a
/// [`DateCache`](super::DateCache)'s) and is not checked either. The reason phrase still is.
pub fn write_head_map(
    out: &mut Vec<u8>,
    ctx: &ResponseContext,
    status: StatusCode,
    headers: &http::HeaderMap,
    opts: &HeadOptions<'_>,
) -> Result<BodyEncoder, ResponseError> {
    let fields = headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    write_head_with(out, ctx, status, fields, opts, Check::Trusted)
}

/// Whether [`write_head_with`] checks the field bytes it is given.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Every byte of every name and value, and the `Date`.
    Bytes,
    /// None: they come from types that guarantee them.
    Trusted,
}

fn write_head_with<I, N, V>(
    out: &mut Vec<u8>,
    ctx: &ResponseContext,
    status: StatusCode,
    headers: I,
    opts: &HeadOptions<'_>,
    check: Check,
) -> Result<BodyEncoder, ResponseError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let reason = opts
        .reason
        .unwrap_or_else(|| status.canonical_reason().unwrap_or(""));
    if !reason.bytes().all(is_field_value_byte) {
        return Err(ResponseError::BadReason);
    }
    let code = status.as_u16();
    // 1xx and 204 carry no body and no framing fields; 304 and HEAD responses carry no body
    // but may say the length of the representation.
    let no_framing_fields = status.is_informational() || code == 204;
    let no_body = no_framing_fields || code == 304 || ctx.head_request;

    let mark = out.len();
    push_status_line(out, status, reason);
    let mut content_length = opts.content_length;
    let mut keep_alive = ctx.keep_alive;
    let mut has_date = false;
    let result = (|| {
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            if check == Check::Bytes {
                if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                    return Err(ResponseError::BadHeaderName);
                }
                if !value.iter().all(|&b| is_field_value_byte(b)) {
                    return Err(ResponseError::BadHeaderValue);
                }
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                for member in value.split(|&b| b == b',') {
                    let n = parse_decimal(super::trim_ows(member))
                        .ok_or(ResponseError::InvalidContentLength)?;
                    match content_length {
                        Some(l) if l != n => return Err(ResponseError::ConflictingContentLength),
                        _ => content_length = Some(n),
                    }
                }
                continue; // written once, below
            }
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                return Err(ResponseError::TransferEncodingSet);
            }
            if name.eq_ignore_ascii_case(b"connection") {
                if list_members(value).any(|m| m.eq_ignore_ascii_case(b"close")) {
                    keep_alive = false;
                }
                continue;
            }
            has_date |= name.eq_ignore_ascii_case(b"date");
            push_field(out, name, value);
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.truncate(mark);
        return Err(e);
    }
    if let Some(date) = opts.date.filter(|_| !has_date) {
        if check == Check::Bytes && !date.bytes().all(is_field_value_byte) {
            out.truncate(mark);
            return Err(ResponseError::BadHeaderValue);
        }
        push_field(out, b"date", date.as_bytes());
    }

    let framing = if no_body {
        // A bodiless response (HEAD, 304) may say what the body would have been; an empty
        // body says nothing (a 304 handler returns none), and `Content-Length: 0` would be a
        // false statement about the resource (RFC 9110 8.6), so it is left out.
        if let Some(n) = content_length.filter(|&n| !no_framing_fields && n > 0) {
            push_content_length(out, n);
        }
        Framing::Empty
    } else if let Some(n) = content_length {
        push_content_length(out, n);
        Framing::Length(n)
    } else if ctx.version == Version::HTTP_11 {
        push_field(out, b"transfer-encoding", b"chunked");
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::Close
    };
    if !status.is_informational() {
        if ctx.version == Version::HTTP_11 && !keep_alive {
            push_field(out, b"connection", b"close");
        } else if ctx.version != Version::HTTP_11 {
            push_field(
                out,
                b"connection",
                if keep_alive {
                    &b"keep-alive"[..]
                } else {
                    b"close"
                },
            );
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(BodyEncoder {
        framing,
        remaining: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        keep_alive,
        finished: false,
    })
}

fn push_status_line(out: &mut Vec<u8>, status: StatusCode, reason: &str) {
    if status == StatusCode::OK && reason == "OK" {
        // Most responses: one copy of a constant.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.reserve(reason.len() + 15);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `content-length: n`, the number formatted without allocating.
fn push_content_length(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_field(out, b"content-length", &digits[i..]);
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Frames the response body as [`write_head`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyEncoder {
    framing: Framing,
    /// For `Length`: bytes still to send.
    remaining: u64,
    keep_alive: bool,
    finished: bool,
}

impl BodyEncoder {
    /// The framing in use.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the connection stays open after this response: pass it to
    /// [`Conn::response_done`](super::Conn::response_done). `false` after a body that came
    /// out short.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Append `data`, framed, to `out`. Dropped for a response without a body; an error
    /// (nothing written) when it would pass the `Content-Length`. Empty data writes nothing
    /// (an empty chunk would end a chunked body).
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ResponseError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            Framing::Empty => {}
            Framing::Length(_) => {
                if data.len() as u64 > self.remaining {
                    self.keep_alive = false;
                    return Err(ResponseError::BodyTooLong);
                }
                self.remaining -= data.len() as u64;
                out.extend_from_slice(data);
            }
            Framing::Chunked => {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Close => out.extend_from_slice(data),
        }
        Ok(())
    }

    /// End the body: the last chunk for chunked; for a `Content-Length` body, an error if
    /// bytes are missing (the connection must then close, and `keep_alive` becomes `false`).
    /// A second call does nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ResponseError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        match self.framing {
            Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
            Framing::Length(_) if self.remaining > 0 => {
                self.keep_alive = false;
                return Err(ResponseError::BodyTooShort {
                    missing: self.remaining,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{BodyDecoder, BodyKind, Limits};
    use http::HeaderMap;

    const H11: ResponseContext = ResponseContext {
        version: Version::HTTP_11,
        head_request: false,
        keep_alive: true,
    };
    const H10: ResponseContext = ResponseContext {
        version: Version::HTTP_10,
        head_request: false,
        keep_alive: false,
    };

    fn head(
        ctx: &ResponseContext,
        status: u16,
        fields: &[(&str, &str)],
        opts: &HeadOptions<'_>,
    ) -> Result<(String, BodyEncoder), ResponseError> {
        let mut out = b"keep".to_vec();
        let status = StatusCode::from_u16(status).unwrap();
        let r = write_head(&mut out, ctx, status, fields.iter().copied(), opts);
        let text = String::from_utf8(out[4..].to_vec()).unwrap();
        if r.is_err() {
            assert_eq!(text, "", "nothing written on error");
        }
        r.map(|enc| (text, enc))
    }

    fn len(n: u64) -> HeadOptions<'static> {
        HeadOptions {
            content_length: Some(n),
            ..HeadOptions::default()
        }
    }

    #[test]
    fn known_length_is_content_length() {
        let (h, enc) = head(&H11, 200, &[("Content-Type", "text/plain")], &len(5)).unwrap();
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(enc.framing(), Framing::Length(5));
        assert!(enc.keep_alive());
    }

    #[test]
    fn handler_content_length_is_the_known_length() {
        let (h, enc) = head(
            &H11,
            200,
            &[("Content-Length", "3")],
            &HeadOptions::default(),
        )
        .unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(enc.framing(), Framing::Length(3));
        assert!(head(&H11, 200, &[("Content-Length", "3")], &len(3)).is_ok());
    }

    #[test]
    fn conflicting_or_invalid_content_length_is_an_error() {
        assert_eq!(
            head(&H11, 200, &[("Content-Length", "3")], &len(4)).unwrap_err(),
            ResponseError::ConflictingContentLength
        );
        assert_eq!(
            head(
                &H11,
                200,
                &[("Content-Length", "3, 4")],
                &HeadOptions::default()
            )
            .unwrap_err(),
            ResponseError::ConflictingContentLength
        );
        assert_eq!(
            head(
                &H11,
                200,
                &[("Content-Length", "-1")],
                &HeadOptions::default()
            )
            .unwrap_err(),
            ResponseError::InvalidContentLength
        );
    }

    #[test]
    fn unknown_length_is_chunked_for_http11() {
        let (h, mut enc) = head(&H11, 200, &[], &HeadOptions::default()).unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        let mut out = Vec::new();
        enc.encode(b"hello", &mut out).unwrap();
        enc.encode(b"", &mut out).unwrap();
        enc.encode(&[b'x'; 26], &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        enc.finish(&mut out).unwrap();
        let mut expected = b"5\r\nhello\r\n1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn chunked_output_decodes_with_our_decoder() {
        let (_, mut enc) = head(&H11, 200, &[], &HeadOptions::default()).unwrap();
        let mut out = Vec::new();
        for piece in [&b"a"[..], &[7u8; 300], b"\r\n0\r\n\r\n"] {
            enc.encode(piece, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        let mut dec = BodyDecoder::new(BodyKind::Chunked, &Limits::default());
        let (mut pos, mut body) = (0, Vec::new());
        loop {
            let d = dec.decode(&out[pos..], usize::MAX).unwrap();
            body.extend_from_slice(d.data(&out[pos..]));
            pos += d.consumed;
            if d.done {
                break;
            }
        }
        assert_eq!(pos, out.len());
        assert_eq!(body.len(), 1 + 300 + 7);
    }

    #[test]
    fn unknown_length_is_close_delimited_for_http10() {
        let ctx = ResponseContext {
            keep_alive: true,
            ..H10
        };
        let (h, mut enc) = head(&ctx, 200, &[], &HeadOptions::default()).unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        assert_eq!(enc.framing(), Framing::Close);
        assert!(!enc.keep_alive());
        let mut out = Vec::new();
        enc.encode(b"raw", &mut out).unwrap();
        assert_eq!(out, b"raw");
    }

    #[test]
    fn http10_keep_alive_is_said() {
        let ctx = ResponseContext {
            keep_alive: true,
            ..H10
        };
        let (h, enc) = head(&ctx, 200, &[], &len(0)).unwrap();
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        );
        assert!(enc.keep_alive());
    }

    #[test]
    fn no_keep_alive_says_close() {
        let ctx = ResponseContext {
            keep_alive: false,
            ..H11
        };
        let (h, enc) = head(&ctx, 200, &[], &len(0)).unwrap();
        assert!(h.ends_with("connection: close\r\n\r\n"));
        assert!(!enc.keep_alive());
    }

    #[test]
    fn handler_connection_close_closes() {
        let (h, enc) = head(&H11, 200, &[("Connection", "Close")], &len(0)).unwrap();
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        assert!(!enc.keep_alive());
        let (h, enc) = head(&H11, 200, &[("Connection", "foo")], &len(0)).unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(enc.keep_alive());
    }

    #[test]
    fn handler_transfer_encoding_is_an_error() {
        assert_eq!(
            head(
                &H11,
                200,
                &[("Transfer-Encoding", "chunked")],
                &HeadOptions::default()
            )
            .unwrap_err(),
            ResponseError::TransferEncodingSet
        );
    }

    #[test]
    fn head_response_has_no_body_but_keeps_the_length() {
        let ctx = ResponseContext {
            head_request: true,
            ..H11
        };
        let (h, mut enc) = head(&ctx, 200, &[], &len(42)).unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n");
        let mut out = Vec::new();
        enc.encode(b"dropped", &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        assert!(out.is_empty());
        assert!(enc.keep_alive());
        // Unknown length: neither chunked nor close.
        let (h, enc) = head(&ctx, 200, &[], &HeadOptions::default()).unwrap();
        assert_eq!(h, "HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(enc.framing(), Framing::Empty);
    }

    #[test]
    fn no_body_statuses_drop_the_body() {
        for status in [100, 103, 204, 304] {
            let (h, mut enc) = head(
                &H11,
                status,
                &[("Content-Length", "5")],
                &HeadOptions::default(),
            )
            .unwrap();
            assert_eq!(enc.framing(), Framing::Empty, "{status}");
            assert_eq!(h.contains("content-length"), status == 304, "{status}: {h}");
            assert!(!h.contains("transfer-encoding"));
            let mut out = Vec::new();
            enc.encode(b"dropped", &mut out).unwrap();
            enc.finish(&mut out).unwrap();
            assert!(out.is_empty());
        }
        let (h, _) = head(&H11, 204, &[], &HeadOptions::default()).unwrap();
        assert_eq!(h, "HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn crlf_in_reason_is_an_error() {
        for reason in ["OK\r\nSet-Cookie: x", "OK\n", "OK\r", "O\0K"] {
            let opts = HeadOptions {
                reason: Some(reason),
                ..HeadOptions::default()
            };
            assert_eq!(
                head(&H11, 200, &[], &opts).unwrap_err(),
                ResponseError::BadReason
            );
        }
        let opts = HeadOptions {
            reason: Some("Fine, thanks"),
            ..HeadOptions::default()
        };
        assert!(head(&H11, 200, &[], &opts)
            .unwrap()
            .0
            .starts_with("HTTP/1.1 200 Fine, thanks\r\n"));
    }

    #[test]
    fn crlf_in_header_value_is_an_error() {
        for value in ["a\r\nSet-Cookie: x", "a\nb", "a\rb", "a\0b", "\x7f"] {
            assert_eq!(
                head(&H11, 200, &[("X", value)], &len(0)).unwrap_err(),
                ResponseError::BadHeaderValue,
                "{value:?}"
            );
        }
    }

    #[test]
    fn crlf_in_header_name_is_an_error() {
        for name in ["X\r\nSet-Cookie", "X\n", "X\0", "X Y", "X:", "", "\r\n"] {
            assert_eq!(
                head(&H11, 200, &[(name, "v")], &len(0)).unwrap_err(),
                ResponseError::BadHeaderName,
                "{name:?}"
            );
        }
    }

    #[test]
    fn date_is_added_unless_given() {
        let opts = HeadOptions {
            date: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..len(0)
        };
        let (h, _) = head(&H11, 200, &[], &opts).unwrap();
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n"
        );
        let (h, _) = head(&H11, 200, &[("Date", "mine")], &opts).unwrap();
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\nDate: mine\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn header_map_works_as_fields() {
        let mut map = HeaderMap::new();
        map.insert("x-a", "1".parse().unwrap());
        map.append("x-a", "2".parse().unwrap());
        let mut out = Vec::new();
        write_head(&mut out, &H11, StatusCode::NOT_FOUND, &map, &len(0)).unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn body_longer_than_content_length_is_an_error() {
        let (_, mut enc) = head(&H11, 200, &[], &len(3)).unwrap();
        let mut out = Vec::new();
        enc.encode(b"ab", &mut out).unwrap();
        assert_eq!(enc.encode(b"cd", &mut out), Err(ResponseError::BodyTooLong));
        assert_eq!(out, b"ab");
        assert!(!enc.keep_alive());
    }

    #[test]
    fn body_shorter_than_content_length_is_an_error() {
        let (_, mut enc) = head(&H11, 200, &[], &len(3)).unwrap();
        let mut out = Vec::new();
        enc.encode(b"ab", &mut out).unwrap();
        assert_eq!(
            enc.finish(&mut out),
            Err(ResponseError::BodyTooShort { missing: 1 })
        );
        assert!(!enc.keep_alive());
        assert!(!ResponseError::BodyTooShort { missing: 1 }
            .to_string()
            .is_empty());
    }

    #[test]
    fn error_response_says_what_was_wrong_and_closes() {
        let mut out = Vec::new();
        let body = write_error(
            &mut out,
            &HttpError::TargetTooLong,
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nrequest target too long\n"));
        let len = "request target too long\n".len();
        assert!(text.contains(&format!("content-length: {len}\r\n")));
        assert_eq!(body, len, "the body length it returns");
    }

    #[test]
    fn continue_response() {
        let mut out = Vec::new();
        write_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}
