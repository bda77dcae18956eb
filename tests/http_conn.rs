//! Property tests of `grove::http::Conn` through its public API: the bytes of a request
//! sequence, split anywhere, surface exactly the same events as the whole buffer, and both
//! match the requests the bytes were generated from.
//!
//! Default runs are short (proptest's 256 cases, or `PROPTEST_CASES`); for a long run:
//!
//!   PROPTEST_CASES=20000 cargo test --release --test http_conn
#![cfg(feature = "std")]

use grove::http::{parse_head, BodyKind, Conn, Event, Head, HttpError, Limits};
use http::{Method, Version};
use proptest::prelude::*;

/// One request as generated: the expected view, and how its body is framed on the wire.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    http10: bool,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

#[derive(Clone, Debug)]
enum Framing {
    None,
    Length,
    /// Chunk lengths (the body is cut into them; the rest goes in one last chunk), upper-case
    /// hex, an extension on each chunk, trailer fields.
    Chunked {
        cuts: Vec<usize>,
        upper: bool,
        ext: bool,
        trailers: Vec<(String, String)>,
    },
}

impl Req {
    fn wire(&self, last: bool) -> Vec<u8> {
        let mut w = Vec::new();
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        w.extend_from_slice(format!("{} {} {version}\r\n", self.method, self.target).as_bytes());
        if !self.http10 || !last {
            w.extend_from_slice(b"Host: example.com\r\n");
        }
        for (n, v) in &self.fields {
            w.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if self.http10 {
            w.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        match &self.framing {
            Framing::None => {}
            Framing::Length => {
                w.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes())
            }
            Framing::Chunked { .. } => w.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        w.extend_from_slice(b"\r\n");
        match &self.framing {
            Framing::None => {}
            Framing::Length => w.extend_from_slice(&self.body),
            Framing::Chunked {
                cuts,
                upper,
                ext,
                trailers,
            } => {
                let mut rest = &self.body[..];
                let chunk = |w: &mut Vec<u8>, data: &[u8]| {
                    let size = if *upper {
                        format!("{:X}", data.len())
                    } else {
                        format!("{:x}", data.len())
                    };
                    w.extend_from_slice(size.as_bytes());
                    if *ext {
                        w.extend_from_slice(b" ; name=\"v\\\"al\"; flag");
                    }
                    w.extend_from_slice(b"\r\n");
                    w.extend_from_slice(data);
                    if !data.is_empty() {
                        w.extend_from_slice(b"\r\n");
                    }
                };
                for &c in cuts {
                    let c = c.min(rest.len());
                    if c == 0 {
                        continue;
                    }
                    chunk(&mut w, &rest[..c]);
                    rest = &rest[c..];
                }
                if !rest.is_empty() {
                    chunk(&mut w, rest);
                }
                chunk(&mut w, &[]);
                for (n, v) in trailers {
                    w.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                w.extend_from_slice(b"\r\n");
            }
        }
        w
    }

    /// The head the connection must surface for it.
    fn check(&self, head: &Head) -> Result<(), TestCaseError> {
        prop_assert_eq!(head.method.as_str(), self.method.as_str());
        prop_assert_eq!(head.target.to_string(), self.target.as_str());
        let version = if self.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        prop_assert_eq!(head.version, version);
        for (n, v) in &self.fields {
            prop_assert!(
                head.headers
                    .get_all(n.as_str())
                    .iter()
                    .any(|x| x == v.as_str()),
                "field {} missing",
                n
            );
        }
        let kind = match self.framing {
            Framing::None => BodyKind::None,
            Framing::Length => BodyKind::Length(self.body.len() as u64),
            Framing::Chunked { .. } => BodyKind::Chunked,
        };
        prop_assert_eq!(head.body, kind);
        prop_assert!(head.keep_alive);
        Ok(())
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn field() -> impl Strategy<Value = (String, String)> {
    // `x-` names stay clear of the fields that change framing, Host and Expect.
    (token(), "[!-~]([ -~]{0,30}[!-~])?").prop_map(|(n, v)| (format!("x-{n}"), v))
}

fn request() -> impl Strategy<Value = Req> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("PUT".to_string()),
        Just("DELETE".to_string()),
        "[A-Z]{1,10}",
    ];
    let target = (
        "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){1,4}",
        proptest::option::of("[a-zA-Z0-9=&%/?._-]{0,20}"),
    )
        .prop_map(|(p, q)| match q {
            Some(q) => format!("{p}?{q}"),
            None => p,
        });
    let body = proptest::collection::vec(any::<u8>(), 0..300);
    let chunked = (
        proptest::collection::vec(1usize..64, 0..8),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(field(), 0..3),
    )
        .prop_map(|(cuts, upper, ext, trailers)| Framing::Chunked {
            cuts,
            upper,
            ext,
            trailers,
        });
    let framing = prop_oneof![Just(Framing::None), Just(Framing::Length), chunked];
    (
        method,
        target,
        any::<bool>(),
        proptest::collection::vec(field(), 0..8),
        body,
        framing,
    )
        .prop_map(|(method, target, http10, fields, body, framing)| {
            // HTTP/1.0 has no chunked; a request without framing has no body.
            let framing = match framing {
                Framing::Chunked { .. } if http10 => Framing::Length,
                f => f,
            };
            let body = if matches!(framing, Framing::None) {
                Vec::new()
            } else {
                body
            };
            Req {
                method,
                target,
                http10,
                fields,
                body,
                framing,
            }
        })
}

/// What a connection surfaced: heads with their whole bodies, then the error if any.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    requests: Vec<(Head, Vec<u8>)>,
    error: Option<HttpError>,
}

/// Feed `input` cut into pieces of the `cuts` sizes (cycled), answering each request at its
/// `BodyEnd`; bodies read with `max` bytes at most per event. Checks the invariants on the way.
fn drive(input: &[u8], cuts: &[usize], max: usize, limits: &Limits) -> Result<Seen, TestCaseError> {
    let mut conn = Conn::new(limits.clone());
    let mut seen = Seen {
        requests: Vec::new(),
        error: None,
    };
    let mut pos = 0;
    let mut cut = cuts.iter().copied().cycle();
    let mut in_body = false;
    loop {
        prop_assert!(conn.buffer_capacity() <= limits.max_buffer());
        match conn.next_event_max(max) {
            Some(Event::Request(head)) => {
                prop_assert!(seen.error.is_none(), "event after an error");
                prop_assert!(!in_body, "a head before the last body ended");
                seen.requests.push((head, Vec::new()));
                in_body = true;
            }
            Some(Event::Body(data)) => {
                prop_assert!(seen.error.is_none(), "event after an error");
                prop_assert!(in_body && !data.is_empty() && data.len() <= max.max(1));
                seen.requests.last_mut().unwrap().1.extend_from_slice(data);
            }
            Some(Event::BodyEnd) => {
                prop_assert!(seen.error.is_none(), "event after an error");
                prop_assert!(in_body);
                in_body = false;
                conn.response_done(true);
            }
            Some(Event::Error(e)) => {
                prop_assert!(seen.error.is_none(), "two errors");
                seen.error = Some(e);
                prop_assert!(conn.is_finished() && !conn.wants_read());
            }
            None => {
                if pos == input.len() {
                    return Ok(seen);
                }
                let n = cut.next().unwrap_or(1).max(1);
                let taken = conn.feed(&input[pos..(pos + n).min(input.len())]);
                if taken == 0 {
                    // Full (a response is awaited and the pipeline is at its bound) or finished.
                    return Ok(seen);
                }
                pos += taken;
            }
        }
    }
}

fn wire_of(reqs: &[Req]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        wire.extend(r.wire(i + 1 == reqs.len()));
    }
    wire
}

proptest! {
    #[test]
    fn any_split_of_valid_requests_surfaces_the_same_requests(
        reqs in proptest::collection::vec(request(), 1..5),
        cuts in proptest::collection::vec(1usize..40, 1..20),
        max in prop_oneof![Just(usize::MAX), 1usize..50],
    ) {
        let wire = wire_of(&reqs);
        let limits = Limits::default();
        let whole = drive(&wire, &[wire.len()], usize::MAX, &limits)?;
        prop_assert_eq!(whole.error, None);
        prop_assert_eq!(whole.requests.len(), reqs.len());
        for (r, (head, body)) in reqs.iter().zip(&whole.requests) {
            r.check(head)?;
            prop_assert_eq!(body, &r.body);
        }
        // The first head alone, through parse_head.
        let (first, _) = parse_head(&wire, &limits).unwrap().unwrap();
        prop_assert_eq!(&first, &whole.requests[0].0);
        let split = drive(&wire, &cuts, max, &limits)?;
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn one_byte_at_a_time_surfaces_the_same_requests(reqs in proptest::collection::vec(request(), 1..4)) {
        let wire = wire_of(&reqs);
        let limits = Limits::default();
        let whole = drive(&wire, &[wire.len()], usize::MAX, &limits)?;
        prop_assert_eq!(whole.requests.len(), reqs.len());
        prop_assert_eq!(drive(&wire, &[1], usize::MAX, &limits)?, whole);
    }

    /// Damaged input (valid requests with bytes changed, inserted, or HTTP fragments spliced
    /// in): whatever the split, the same requests, then the same error or none.
    #[test]
    fn any_split_of_damaged_input_surfaces_the_same_events(
        reqs in proptest::collection::vec(request(), 1..4),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..6),
        cuts in proptest::collection::vec(1usize..30, 1..10),
    ) {
        const FRAGMENTS: [&[u8]; 8] = [
            b"\r\n", b"\n", b"\r", b" ", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
            b"0\r\n\r\n", b"\x00",
        ];
        let mut wire = wire_of(&reqs);
        for (at, kind, byte) in edits {
            let i = at.index(wire.len() + 1);
            match kind {
                0 if i < wire.len() => wire[i] = byte,
                1 => wire.insert(i, byte),
                2 => { let f = FRAGMENTS[byte as usize % FRAGMENTS.len()]; wire.splice(i..i, f.iter().copied()); }
                _ => { wire.truncate(i); }
            }
        }
        let limits = Limits { max_header_bytes: 512, max_request_line: 256, read_chunk: 64, ..Limits::default() };
        let whole = drive(&wire, &[wire.len()], usize::MAX, &limits)?;
        prop_assert_eq!(drive(&wire, &cuts, 7, &limits)?, whole);
    }
}

#[test]
fn methods_and_versions_come_through() {
    let wire =
        b"DELETE /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nPATCH /y HTTP/1.1\r\nHost: h\r\n\r\n";
    let seen = drive(wire, &[3], usize::MAX, &Limits::default()).unwrap();
    assert_eq!(seen.requests[0].0.method, Method::DELETE);
    assert_eq!(seen.requests[1].0.method, Method::PATCH);
}
