//! Decoding a request body: `Content-Length` and `chunked` framing, incrementally.
//!
//! [`BodyDecoder::decode`] is fed whatever bytes have arrived and answers with how many it
//! consumed and which of them (a sub-range of the input: zero-copy) are body data. It never
//! buffers: the chunked framing is parsed by a byte-at-a-time state machine whose whole state
//! is a few integers, so a chunk-size line, an extension or a trailer may be split anywhere.
//!
//! # Chunked rules (RFC 9112 7.1, strict)
//!
//! - chunk-size: 1 to 16 hex digits (more is [`HttpError::ChunkSizeTooLong`]); no sign, no
//!   `0x`, no whitespace before it; after it only `CRLF`, or BWS then `;` and extensions
//!   (anything else is [`HttpError::BadChunkSize`]).
//! - chunk-ext: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`, checked
//!   byte by byte ([`HttpError::BadChunkExtension`]), at most [`Limits::max_chunk_ext_bytes`]
//!   over the whole body ([`HttpError::ChunkExtensionsTooLong`]), then dropped.
//! - chunk data must be followed by CRLF ([`HttpError::MissingChunkCrlf`]).
//! - every line in the framing ends in CRLF: an LF without CR is [`HttpError::BareLf`], a CR
//!   without LF [`HttpError::BareCr`].
//! - the sizes add up to at most [`Limits::max_body`] ([`HttpError::BodyTooLarge`], checked
//!   when a size line ends, before its data is read).
//! - after the last chunk (`0`, with optional extensions) the trailer section: field lines
//!   validated like header fields (token name, colon right after it, clean value, no obs-fold:
//!   [`HttpError::BadTrailer`], [`HttpError::ObsFold`]), at most
//!   [`Limits::max_trailer_bytes`] bytes and [`Limits::max_headers`] fields
//!   ([`HttpError::TrailersTooLarge`]); they are dropped. Then the final CRLF.
#![forbid(unsafe_code)]

use super::{is_field_value_byte, is_tchar, BodyKind, HttpError, Limits};
use core::ops::Range;

/// What one [`BodyDecoder::decode`] call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed (framing and data); the caller drops them.
    pub consumed: usize,
    /// The body data among them, as a range of the input (empty when there was none).
    pub data: Range<usize>,
    /// The body is complete: nothing after `consumed` belongs to it.
    pub done: bool,
}

impl Decoded {
    /// The data bytes, given the input that was decoded.
    pub fn data<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.data.clone()]
    }
}

/// An incremental decoder for one request body.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Length { remaining: u64 },
    Chunked(Box<Chunked>),
    Done,
    Failed(HttpError),
}

#[derive(Clone, Debug)]
struct Chunked {
    state: State,
    /// The chunk size being read, then the data left in the chunk.
    size: u64,
    digits: u8,
    /// The sizes so far (bounded by `max_body`).
    total: u64,
    ext_bytes: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    max_body: u64,
    max_ext: usize,
    max_trailer_bytes: usize,
    max_trailer_fields: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size: only more of it or `;` may follow.
    SizeBws,
    /// After `;`: BWS, then an extension name.
    ExtBeforeName,
    /// In an extension name.
    ExtName,
    /// Whitespace after a name: `=` or `;` must follow.
    ExtNameBws,
    /// After `=`: BWS, then a value.
    ExtBeforeValue,
    /// In a token value.
    ExtToken,
    /// In a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// Right after a closing quote.
    ExtAfterQuoted,
    /// Whitespace after a value: `;` must follow.
    ExtValueBws,
    /// The CR of the size line was seen.
    SizeLf,
    /// In chunk data (`size` bytes left).
    Data,
    /// After the data: CR expected.
    DataCr,
    /// After the data's CR: LF expected.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// The CR of a trailer field line was seen.
    TrailerLf,
    /// The CR of the final empty line was seen.
    EndLf,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// qdtext / quoted-pair content (RFC 9110 5.6.4), without the DQUOTE and backslash.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`, bounded by `limits`.
    pub fn new(kind: BodyKind, limits: &Limits) -> Self {
        let kind = match kind {
            BodyKind::None | BodyKind::Length(0) => Kind::Done,
            BodyKind::Length(n) => Kind::Length { remaining: n },
            BodyKind::Chunked => Kind::Chunked(Box::new(Chunked {
                state: State::Size,
                size: 0,
                digits: 0,
                total: 0,
                ext_bytes: 0,
                trailer_bytes: 0,
                trailer_fields: 0,
                max_body: limits.max_body,
                max_ext: limits.max_chunk_ext_bytes,
                max_trailer_bytes: limits.max_trailer_bytes,
                max_trailer_fields: limits.max_headers,
            })),
        };
        BodyDecoder { kind }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    /// For a `Content-Length` body, the bytes still to come.
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining),
            Kind::Done => Some(0),
            Kind::Chunked(_) | Kind::Failed(_) => None,
        }
    }

    /// Decode from the start of `input`, returning at most `max_data` data bytes (one run of
    /// them: the framing before it is consumed, what follows it is left for the next call; a
    /// `max_data` of 0 is taken as 1). Partial framing is consumed too (the decoder keeps its
    /// state, never the bytes), so a call that returns no data and does not end the body has
    /// consumed all of `input`. An error is final: later calls return it again.
    pub fn decode(&mut self, input: &[u8], max_data: usize) -> Result<Decoded, HttpError> {
        let max_data = max_data.max(1);
        match &mut self.kind {
            Kind::Done => Ok(Decoded {
                consumed: 0,
                data: 0..0,
                done: true,
            }),
            Kind::Length { remaining } => {
                let n = (*remaining).min(input.len() as u64).min(max_data as u64) as usize;
                *remaining -= n as u64;
                let done = *remaining == 0;
                if done {
                    self.kind = Kind::Done;
                }
                Ok(Decoded {
                    consumed: n,
                    data: 0..n,
                    done,
                })
            }
            Kind::Failed(e) => Err(*e),
            Kind::Chunked(c) => {
                let r = c.decode(input, max_data);
                match r {
                    Ok(Decoded { done: true, .. }) => self.kind = Kind::Done,
                    Err(e) => self.kind = Kind::Failed(e),
                    Ok(_) => {}
                }
                r
            }
        }
    }
}

impl Chunked {
    fn decode(&mut self, input: &[u8], max_data: usize) -> Result<Decoded, HttpError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let n = self.size.min((input.len() - i) as u64).min(max_data as u64) as usize;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Decoded {
                    consumed: i + n,
                    data: i..i + n,
                    done: false,
                });
            }
            let b = input[i];
            i += 1;
            if self.step(b)? {
                return Ok(Decoded {
                    consumed: i,
                    data: i..i,
                    done: true,
                });
            }
        }
        Ok(Decoded {
            consumed: i,
            data: i..i,
            done: false,
        })
    }

    fn ext_byte(&mut self) -> Result<(), HttpError> {
        self.ext_bytes += 1;
        if self.ext_bytes > self.max_ext {
            return Err(HttpError::ChunkExtensionsTooLong);
        }
        Ok(())
    }

    /// One framing byte; `Ok(true)` when the body is complete.
    fn step(&mut self, b: u8) -> Result<bool, HttpError> {
        use State::*;
        if b == b'\n' && !matches!(self.state, SizeLf | DataLf | TrailerLf | EndLf) {
            return Err(HttpError::BareLf);
        }
        // Extension bytes: everything after the size digits up to the CR.
        if b != b'\r'
            && matches!(
                self.state,
                SizeBws
                    | ExtBeforeName
                    | ExtName
                    | ExtNameBws
                    | ExtBeforeValue
                    | ExtToken
                    | ExtQuoted
                    | ExtQuotedPair
                    | ExtAfterQuoted
                    | ExtValueBws
            )
        {
            self.ext_byte()?;
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.max_trailer_bytes {
                return Err(HttpError::TrailersTooLarge);
            }
        }
        self.state = match (self.state, b) {
            (Size, _) if hex(b).is_some() => {
                if self.digits == 16 {
                    return Err(HttpError::ChunkSizeTooLong);
                }
                self.digits += 1;
                self.size = (self.size << 4) | u64::from(hex(b).unwrap_or(0));
                Size
            }
            (Size, b'\r') if self.digits > 0 => SizeLf,
            (Size, b';') if self.digits > 0 => {
                self.ext_byte()?;
                ExtBeforeName
            }
            (Size, b' ' | b'\t') if self.digits > 0 => {
                self.ext_byte()?;
                SizeBws
            }
            (Size, _) => return Err(HttpError::BadChunkSize),
            (SizeBws, b' ' | b'\t') => SizeBws,
            (SizeBws, b';') => ExtBeforeName,
            (SizeBws, _) => return Err(HttpError::BadChunkSize),

            (ExtBeforeName, b' ' | b'\t') => ExtBeforeName,
            (ExtBeforeName | ExtName, _) if is_tchar(b) => ExtName,
            (ExtName, b'=') => ExtBeforeValue,
            (ExtName, b';') => ExtBeforeName,
            (ExtName, b'\r') => SizeLf,
            (ExtName, b' ' | b'\t') => ExtNameBws,
            (ExtNameBws, b' ' | b'\t') => ExtNameBws,
            (ExtNameBws, b'=') => ExtBeforeValue,
            (ExtNameBws, b';') => ExtBeforeName,
            (ExtBeforeValue, b' ' | b'\t') => ExtBeforeValue,
            (ExtBeforeValue, b'"') => ExtQuoted,
            (ExtBeforeValue | ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtToken | ExtAfterQuoted, b';') => ExtBeforeName,
            (ExtToken | ExtAfterQuoted, b'\r') => SizeLf,
            (ExtToken | ExtAfterQuoted, b' ' | b'\t') => ExtValueBws,
            (ExtValueBws, b' ' | b'\t') => ExtValueBws,
            (ExtValueBws, b';') => ExtBeforeName,
            (ExtQuoted, b'"') => ExtAfterQuoted,
            (ExtQuoted, b'\\') => ExtQuotedPair,
            (ExtQuoted, _) if is_qdtext(b) => ExtQuoted,
            (ExtQuotedPair, _) if is_qdtext(b) || b == b'"' || b == b'\\' => ExtQuoted,
            (
                ExtBeforeName | ExtName | ExtNameBws | ExtBeforeValue | ExtToken | ExtQuoted
                | ExtQuotedPair | ExtAfterQuoted | ExtValueBws,
                _,
            ) => return Err(HttpError::BadChunkExtension),

            (SizeLf, b'\n') => {
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.total = match self.total.checked_add(self.size) {
                        Some(t) if t <= self.max_body => t,
                        _ => return Err(HttpError::BodyTooLarge),
                    };
                    Data
                }
            }

            (Data, _) => Data, // not reached: data is taken in bulk by `decode`
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(HttpError::MissingChunkCrlf),
            (DataLf, b'\n') => {
                self.size = 0;
                self.digits = 0;
                Size
            }

            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b' ' | b'\t') => return Err(HttpError::ObsFold),
            (TrailerStart, _) if is_tchar(b) => {
                self.trailer_fields += 1;
                if self.trailer_fields > self.max_trailer_fields {
                    return Err(HttpError::TrailersTooLarge);
                }
                TrailerName
            }
            (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_value_byte(b) => TrailerValue,
            (TrailerStart | TrailerName | TrailerValue, _) => return Err(HttpError::BadTrailer),
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => return Ok(true),
            (SizeLf | DataLf | TrailerLf | EndLf, _) => return Err(HttpError::BareCr),
        };
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked() -> BodyDecoder {
        BodyDecoder::new(BodyKind::Chunked, &Limits::default())
    }

    /// Decode all of `input` (as far as the body goes) in one go per call.
    fn decode_all(
        dec: &mut BodyDecoder,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let d = dec.decode(&input[pos..], usize::MAX)?;
            out.extend_from_slice(d.data(&input[pos..]));
            pos += d.consumed;
            if d.done || d.consumed == 0 {
                return Ok((out, pos, d.done));
            }
        }
    }

    fn dechunk(input: &[u8]) -> Result<Vec<u8>, HttpError> {
        let (out, used, done) = decode_all(&mut chunked(), input)?;
        assert!(done, "incomplete");
        assert_eq!(used, input.len(), "the body is the whole input");
        Ok(out)
    }

    fn dechunk_err(input: &[u8]) -> HttpError {
        match decode_all(&mut chunked(), input) {
            Err(e) => e,
            Ok(r) => panic!("accepted {:?}: {r:?}", String::from_utf8_lossy(input)),
        }
    }

    fn with(limits: Limits, input: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
        decode_all(&mut BodyDecoder::new(BodyKind::Chunked, &limits), input)
    }

    #[test]
    fn length_body_stops_at_its_length() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), &Limits::default());
        let r = d.decode(b"hel", usize::MAX).unwrap();
        assert_eq!((r.consumed, r.data.clone(), r.done), (3, 0..3, false));
        assert_eq!(d.remaining(), Some(2));
        let r = d.decode(b"loGET /", usize::MAX).unwrap();
        assert_eq!((r.consumed, r.data, r.done), (2, 0..2, true));
        assert!(d.is_done());
        assert!(d.decode(b"more", 10).unwrap().done);
    }

    #[test]
    fn length_body_respects_max_data() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), &Limits::default());
        assert_eq!(d.decode(b"hello", 2).unwrap().data, 0..2);
        // max 0 is taken as 1, so a caller cannot stall.
        assert_eq!(d.decode(b"llo", 0).unwrap().data, 0..1);
    }

    #[test]
    fn no_body_and_zero_length_are_done_at_once() {
        assert!(BodyDecoder::new(BodyKind::None, &Limits::default()).is_done());
        assert!(BodyDecoder::new(BodyKind::Length(0), &Limits::default()).is_done());
    }

    #[test]
    fn chunked_body_decodes() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert_eq!(dechunk(b"0\r\n\r\n").unwrap(), b"");
        assert_eq!(
            dechunk(b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n")
                .unwrap()
                .len(),
            20
        );
    }

    #[test]
    fn chunked_body_leaves_what_follows() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (out, used, done) = decode_all(&mut chunked(), input).unwrap();
        assert_eq!(
            (out.as_slice(), &input[used..], done),
            (&b"abc"[..], &b"GET / HTTP/1.1\r\n"[..], true)
        );
    }

    #[test]
    fn chunked_split_anywhere_decodes_the_same() {
        let input =
            b"3;a=b;c=\"d\\\"e\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0;z\r\nT: v\r\nU:\r\n\r\n";
        let whole = dechunk(input).unwrap();
        assert_eq!(whole, b"abc0123456789abcdef");
        // One byte at a time.
        let mut d = chunked();
        let mut out = Vec::new();
        let mut done = false;
        for (i, b) in input.iter().enumerate() {
            let r = d.decode(core::slice::from_ref(b), usize::MAX).unwrap();
            assert_eq!(r.consumed, 1, "byte {i}");
            out.extend_from_slice(r.data(core::slice::from_ref(b)));
            done = r.done;
        }
        assert!(done);
        assert_eq!(out, whole);
    }

    #[test]
    fn trailers_are_validated_and_dropped() {
        assert_eq!(
            dechunk(b"1\r\nx\r\n0\r\nExpires: never\r\nX-T: a\tb\r\n\r\n").unwrap(),
            b"x"
        );
    }

    // ---- chunk size

    #[test]
    fn chunk_size_of_16_hex_digits_is_accepted() {
        let unlimited = Limits {
            max_body: u64::MAX,
            ..Limits::default()
        };
        let (out, _, done) =
            with(unlimited, b"000000000000000A\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!((out.len(), done), (10, true));
    }

    #[test]
    fn chunk_size_over_16_hex_digits_is_400() {
        assert_eq!(
            dechunk_err(b"00000000000000001\r\nx\r\n"),
            HttpError::ChunkSizeTooLong
        );
        assert_eq!(
            dechunk_err(b"fffffffffffffffff\r\n"),
            HttpError::ChunkSizeTooLong
        );
        assert_eq!(HttpError::ChunkSizeTooLong.status(), 400);
    }

    #[test]
    fn chunk_size_with_0x_prefix_is_400() {
        assert_eq!(
            dechunk_err(b"0x5\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
    }

    #[test]
    fn chunk_size_with_sign_is_400() {
        assert_eq!(
            dechunk_err(b"+5\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
        assert_eq!(
            dechunk_err(b"-5\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
    }

    #[test]
    fn chunk_size_with_leading_whitespace_is_400() {
        assert_eq!(
            dechunk_err(b" 5\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
        assert_eq!(
            dechunk_err(b"\t5\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
    }

    #[test]
    fn chunk_size_with_trailing_whitespace_is_400() {
        assert_eq!(
            dechunk_err(b"5 \r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
        assert_eq!(
            dechunk_err(b"5\t\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
    }

    #[test]
    fn bws_before_an_extension_is_accepted() {
        assert_eq!(
            dechunk(b"5 \t; a = b\r\nhello\r\n0\r\n\r\n").unwrap(),
            b"hello"
        );
    }

    #[test]
    fn empty_chunk_size_is_400() {
        assert_eq!(
            dechunk_err(b"\r\nhello\r\n0\r\n\r\n"),
            HttpError::BadChunkSize
        );
        assert_eq!(dechunk_err(b";a\r\nhello\r\n"), HttpError::BadChunkSize);
    }

    #[test]
    fn non_hex_chunk_size_is_400() {
        assert_eq!(dechunk_err(b"5g\r\nhello\r\n"), HttpError::BadChunkSize);
        assert_eq!(dechunk_err(b"5_0\r\nhello\r\n"), HttpError::BadChunkSize);
    }

    #[test]
    fn chunked_body_over_the_limit_is_413_before_its_data() {
        let limits = Limits {
            max_body: 8,
            ..Limits::default()
        };
        assert!(with(limits.clone(), b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n").is_ok());
        // The size line of the chunk that goes over fails, before any of its data.
        let mut d = BodyDecoder::new(BodyKind::Chunked, &limits);
        let r = d.decode(b"4\r\nabcd\r\n", usize::MAX).unwrap();
        assert_eq!(r.data, 3..7);
        let _ = d.decode(b"\r\n", usize::MAX).unwrap();
        assert_eq!(d.decode(b"5\r\n", usize::MAX), Err(HttpError::BodyTooLarge));
        // Sizes that would overflow u64 when added.
        let unlimited = Limits {
            max_body: u64::MAX,
            ..Limits::default()
        };
        let big = b"ffffffffffffffff\r\n";
        let mut d = BodyDecoder::new(BodyKind::Chunked, &unlimited);
        assert!(d.decode(big, 0).is_ok());
        let mut d = BodyDecoder::new(BodyKind::Chunked, &limits);
        assert_eq!(d.decode(big, 1), Err(HttpError::BodyTooLarge));
    }

    // ---- chunk extensions

    #[test]
    fn chunk_extensions_are_parsed_and_dropped() {
        for ext in [
            ";a",
            ";a=b",
            ";a=\"b c\"",
            ";a=\"\\\"\"",
            ";a;b=c;d=\"e\"",
            " ;a",
            ";a ;b",
            ";a= b",
            ";a =b",
        ] {
            let input = format!("3{ext}\r\nabc\r\n0{ext}\r\n\r\n");
            assert_eq!(dechunk(input.as_bytes()), Ok(b"abc".to_vec()), "{ext}");
        }
    }

    #[test]
    fn an_error_is_final() {
        let mut d = chunked();
        assert_eq!(d.decode(b"1;\x01", 9), Err(HttpError::BadChunkExtension));
        assert_eq!(
            d.decode(b"\r\nx\r\n0\r\n\r\n", 9),
            Err(HttpError::BadChunkExtension)
        );
        assert!(!d.is_done());
    }

    #[test]
    fn malformed_chunk_extensions_are_400() {
        for ext in [
            &b";"[..],
            b";=b",
            b";a=",
            b";a=\"b",
            b";a=b c",
            b";a b",
            b";a=\"\x01\"",
            b";a=b\"",
            b";a=\"b\"c",
            b";a\x00",
        ] {
            let mut input = b"3".to_vec();
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
            assert_eq!(
                dechunk_err(&input),
                HttpError::BadChunkExtension,
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
    }

    #[test]
    fn bare_cr_in_a_quoted_extension_is_400() {
        assert_eq!(
            dechunk_err(b"3;a=\"\r\"\r\nabc\r\n"),
            HttpError::BadChunkExtension
        );
    }

    #[test]
    fn chunk_extensions_over_the_limit_are_400() {
        let limits = Limits {
            max_chunk_ext_bytes: 8,
            ..Limits::default()
        };
        // ";abc=def" is 8 bytes: fits once, not twice (the limit is over the whole body).
        assert!(with(limits.clone(), b"1;abc=def\r\nx\r\n0\r\n\r\n").is_ok());
        assert_eq!(
            with(limits.clone(), b"1;abc=defg\r\nx\r\n0\r\n\r\n"),
            Err(HttpError::ChunkExtensionsTooLong)
        );
        assert_eq!(
            with(limits, b"1;abc=def\r\nx\r\n0;a\r\n\r\n"),
            Err(HttpError::ChunkExtensionsTooLong)
        );
    }

    // ---- line endings in the framing

    #[test]
    fn bare_lf_after_chunk_size_is_400() {
        assert_eq!(dechunk_err(b"5\nhello\r\n0\r\n\r\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_lf_after_chunk_extension_is_400() {
        assert_eq!(dechunk_err(b"5;a=b\nhello\r\n0\r\n\r\n"), HttpError::BareLf);
        assert_eq!(dechunk_err(b"5;a=\"\n\"\r\nhello\r\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_lf_after_chunk_data_is_400() {
        assert_eq!(dechunk_err(b"5\r\nhello\n0\r\n\r\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_lf_in_the_trailer_section_is_400() {
        assert_eq!(dechunk_err(b"0\r\nA: b\n\r\n"), HttpError::BareLf);
        assert_eq!(dechunk_err(b"0\r\n\n"), HttpError::BareLf);
    }

    #[test]
    fn bare_cr_after_chunk_size_is_400() {
        assert_eq!(dechunk_err(b"5\rhello\r\n0\r\n\r\n"), HttpError::BareCr);
    }

    #[test]
    fn bare_cr_after_chunk_data_is_400() {
        assert_eq!(dechunk_err(b"5\r\nhello\rX0\r\n\r\n"), HttpError::BareCr);
    }

    #[test]
    fn bare_cr_ending_the_body_is_400() {
        assert_eq!(dechunk_err(b"0\r\n\rX"), HttpError::BareCr);
        assert_eq!(dechunk_err(b"0\r\nA: b\rX"), HttpError::BareCr);
    }

    #[test]
    fn missing_crlf_after_chunk_data_is_400() {
        // A chunk size that understates its data: the next byte is not CR.
        assert_eq!(
            dechunk_err(b"3\r\nhello\r\n0\r\n\r\n"),
            HttpError::MissingChunkCrlf
        );
        assert_eq!(HttpError::MissingChunkCrlf.status(), 400);
    }

    // ---- trailers

    #[test]
    fn obs_fold_in_trailers_is_400() {
        assert_eq!(dechunk_err(b"0\r\nA: b\r\n c\r\n\r\n"), HttpError::ObsFold);
    }

    #[test]
    fn malformed_trailer_fields_are_400() {
        for t in [
            &b"A b: c"[..],
            b"A : c",
            b": c",
            b"NoColon",
            b"A: b\x00",
            b"A: \x7f",
            b"A(: b",
        ] {
            let mut input = b"0\r\n".to_vec();
            input.extend_from_slice(t);
            input.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                dechunk_err(&input),
                HttpError::BadTrailer,
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn trailer_section_over_the_limit_is_431() {
        let limits = Limits {
            max_trailer_bytes: 10,
            ..Limits::default()
        };
        // "A: 12345\r\n" (10) + "\r\n": over.
        assert_eq!(
            with(limits.clone(), b"0\r\nA: 12345\r\n\r\n"),
            Err(HttpError::TrailersTooLarge)
        );
        assert!(with(limits, b"0\r\nA: 123\r\n\r\n").is_ok());
        assert_eq!(HttpError::TrailersTooLarge.status(), 431);
    }

    #[test]
    fn too_many_trailer_fields_is_431() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        assert!(with(limits.clone(), b"0\r\nA: 1\r\nB: 2\r\n\r\n").is_ok());
        assert_eq!(
            with(limits, b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(HttpError::TrailersTooLarge)
        );
    }

    #[test]
    fn incomplete_chunked_body_is_not_done() {
        for input in [
            &b"5\r\nhel"[..],
            b"5\r\nhello",
            b"5\r\nhello\r\n",
            b"0\r\n",
            b"0\r\nA: b\r\n",
        ] {
            let (_, used, done) = decode_all(&mut chunked(), input).unwrap();
            assert!(!done);
            assert_eq!(used, input.len());
        }
    }
}
