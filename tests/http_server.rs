//! The HTTP/1.1 server over real sockets, under every poller backend: every protocol rule the
//! server promises (keep-alive, pipelining, 100-continue, bodiless responses, errors, request
//! smuggling, slow clients, panics, header injection, streaming, shutdown, the access log).

mod common;
use common::each_backend;
use grove::http::{
    AccessRecord, HttpServer, Limits, ReasonPhrase, Request, Response, ResponseBody, Running,
};
use grove::net::TcpStream;
use grove::{sleep, spawn};
use http::{header, HeaderValue, StatusCode};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS: Duration = Duration::from_millis(1);

/// A handler that answers "<method> <path> <body>" and counts its calls.
fn echo_server(calls: Rc<Cell<u32>>) -> Running {
    HttpServer::bind("127.0.0.1:0")
        .unwrap()
        .no_access_log()
        .start(move |mut req: Request| {
            calls.set(calls.get() + 1);
            let body = req.body_mut().read_to_vec(1 << 20).unwrap_or_default();
            Response::new(
                format!(
                    "{} {} {}",
                    req.method(),
                    req.uri().path(),
                    String::from_utf8_lossy(&body)
                )
                .into(),
            )
        })
        .unwrap()
}

/// Sends `bytes`, then reads until the server closes (at most 5 s).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response with a Content-Length body from a kept-alive connection.
fn read_response(c: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut byte).unwrap(),
            1,
            "the response head ended early"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    buf.extend_from_slice(&body);
    String::from_utf8_lossy(&buf).into_owned()
}

fn status_of(resp: &str) -> u16 {
    resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn keep_alive_is_the_default_in_1_1_and_opt_in_in_1_0() {
    each_backend(|_| {
        let calls = Rc::new(Cell::new(0));
        let s = echo_server(calls.clone());
        let addr = s.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for i in 0..3 {
            let sent = SystemTime::now();
            c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let r = read_response(&mut c);
            let read = SystemTime::now();
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
            assert!(r.ends_with(&format!("GET /{i} ")), "{r}");
            let date = r
                .lines()
                .find_map(|l| l.strip_prefix("date: "))
                .unwrap_or_else(|| panic!("a Date header: {r}"));
            // A second between the request and the response read, or the one before (the
            // server reads a coarse clock, which may lag by a tick).
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
            let near: Vec<String> = (secs(sent) - 1..=secs(read))
                .map(|s| grove::http::imf_fixdate(UNIX_EPOCH + Duration::from_secs(s)))
                .collect();
            assert!(
                near.iter().any(|d| d == date),
                "Date {date}, expected one of {near:?}"
            );
        }
        // HTTP/1.0 without keep-alive: answered, then closed.
        let r = exchange(addr, b"GET /old HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("GET /old "));
        // HTTP/1.0 with keep-alive: stays open for a second request.
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..2 {
            c.write_all(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            let r = read_response(&mut c);
            assert!(r.to_lowercase().contains("connection: keep-alive"), "{r}");
        }
        // `Connection: close` in 1.1 closes after the response.
        let r = exchange(
            addr,
            b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.ends_with("GET /c "), "{r}");
        assert!(s.shutdown(Duration::from_secs(1)));
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .keep_alive_timeout(Duration::from_millis(40))
            .start(|_req: Request| Response::new("ok".into()))
            .unwrap();
        let mut c = TcpStream::connect(s.local_addr().unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(read_response(&mut c).ends_with("ok"));
        let t = std::time::Instant::now();
        let mut b = [0u8; 1];
        assert_eq!(
            c.read(&mut b).unwrap(),
            0,
            "closed by the server, not timed out here"
        );
        assert!(
            t.elapsed() >= Duration::from_millis(40),
            "not before the timeout"
        );
        assert_eq!(s.connections(), 0);
        assert!(s.shutdown(Duration::from_secs(1)));
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    each_backend(|_| {
        let s = echo_server(Rc::default());
        let addr = s.local_addr().unwrap();
        let mut wire = Vec::new();
        for i in 0..5 {
            wire.extend_from_slice(
                format!("POST /p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nb{i}")
                    .as_bytes(),
            );
        }
        wire.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let r = exchange(addr, &wire);
        let bodies: Vec<&str> = r
            .split("HTTP/1.1 200 OK")
            .skip(1)
            .map(|part| part.rsplit("\r\n\r\n").next().unwrap())
            .collect();
        assert_eq!(
            bodies,
            [
                "POST /p0 b0",
                "POST /p1 b1",
                "POST /p2 b2",
                "POST /p3 b3",
                "POST /p4 b4",
                "GET /last "
            ]
        );
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn expect_100_continue_is_answered_once_and_only_when_the_body_is_read() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|mut req: Request| {
                if req.uri().path() == "/read" {
                    let b = req.body_mut().read_to_vec(100).unwrap();
                    Response::new(b.into())
                } else {
                    Response::new("did not read".into())
                }
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        // The client waits for 100 Continue before sending its body.
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut interim = [0u8; 25];
        c.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(b"hello").unwrap();
        let r = read_response(&mut c);
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("hello"));
        assert!(!r.contains("100 Continue"), "sent once");
        // A handler that does not read the body: no 100 Continue, and the connection closes
        // (the client may never send the body).
        let r = exchange(
            addr,
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        );
        assert!(!r.contains("100 Continue"), "{r}");
        assert!(
            r.starts_with("HTTP/1.1 200 OK") && r.ends_with("did not read"),
            "{r}"
        );
        // Any other expectation: 417.
        let r = exchange(
            addr,
            b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx",
        );
        assert_eq!(status_of(&r), 417, "{r}");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn head_204_and_304_carry_no_body_even_if_the_handler_writes_one() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|req: Request| {
                let mut r = Response::new("a body that must not be sent".into());
                *r.status_mut() = match req.uri().path() {
                    "/204" => StatusCode::NO_CONTENT,
                    "/304" => StatusCode::NOT_MODIFIED,
                    _ => StatusCode::OK,
                };
                r
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        for (req, status) in [
            ("HEAD / HTTP/1.1", 200),
            ("GET /204 HTTP/1.1", 204),
            ("GET /304 HTTP/1.1", 304),
        ] {
            let r = exchange(
                addr,
                format!("{req}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            assert_eq!(status_of(&r), status, "{r}");
            assert!(r.ends_with("\r\n\r\n"), "no body after the head: {r:?}");
            assert!(!r.contains("must not"), "{r}");
        }
        s.shutdown(Duration::from_secs(1));
    });
}

/// A bodiless response says the length of the body it would have had, or nothing: an empty
/// body (a 304 handler's usual answer) must not become `Content-Length: 0`.
#[test]
fn head_and_304_give_the_real_length_or_none_never_a_false_zero() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|req: Request| {
                let body = if req.uri().path() == "/full" {
                    "twelve bytes"
                } else {
                    ""
                };
                let mut r = Response::new(body.into());
                if req.uri().path() == "/304" {
                    *r.status_mut() = StatusCode::NOT_MODIFIED;
                }
                r
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        for (req, length) in [
            ("HEAD /full HTTP/1.1", Some("12")),
            ("HEAD /empty HTTP/1.1", None),
            ("GET /304 HTTP/1.1", None),
            ("HEAD /304 HTTP/1.1", None),
        ] {
            let r = exchange(
                addr,
                format!("{req}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            let got = r.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(String::from)
            });
            assert_eq!(got.as_deref(), length, "{req}: {r:?}");
            assert!(r.ends_with("\r\n\r\n"), "no body: {r:?}");
        }
        s.shutdown(Duration::from_secs(1));
    });
}

/// A handler that answers without reading its body: the rest is dropped before the next
/// request, and if that rest turns out broken, the connection just closes. A 400 there would
/// follow the 200 already sent, and a pipelining client would take it for the answer to its
/// next request.
#[test]
fn a_broken_unread_body_closes_the_connection_without_a_second_answer() {
    each_backend(|_| {
        let calls = Rc::new(Cell::new(0));
        let c2 = calls.clone();
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(move |_req: Request| {
                c2.set(c2.get() + 1);
                Response::new("answered".into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let r = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("answered"), "one answer, then the close: {r:?}");
        assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
        assert_eq!(
            calls.get(),
            1,
            "the pipelined request never reached the handler"
        );
        s.shutdown(Duration::from_secs(1));
    });
}

/// A 413 answered from the head while the client is still sending its body: the client,
/// which writes the whole body before it reads (as most do), must get to read the 413, not
/// a reset on its writes (the server lingers, reading and dropping, before it closes).
#[test]
fn a_client_still_sending_its_body_reads_the_413_instead_of_a_reset() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .limits(Limits {
                max_body: 10,
                ..Limits::default()
            })
            .start(|_req: Request| Response::new("unreachable".into()))
            .unwrap();
        let addr = s.local_addr().unwrap();
        let body = vec![b'x'; 1 << 20];
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        c.write_all(&body)
            .expect("the whole body goes out: no reset");
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r)
            .expect("the answer, then the end: no reset");
        assert_eq!(status_of(&r), 413, "{r}");
        s.shutdown(Duration::from_secs(1));
    });
}

/// The body timeout bounds each read of a request body (a client that stops sending part
/// way fails the handler's read with `TimedOut`), and the write timeout each write of a
/// response (a client that stops reading fails the body stream's write, and the connection
/// ends). Each wait here is bounded by the server's own timeouts.
#[test]
fn body_and_write_timeouts_end_a_stalled_client() {
    each_backend(|_| {
        let seen: Rc<Cell<Option<std::io::ErrorKind>>> = Rc::default();
        let (s2, w2) = (seen.clone(), seen.clone());
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .body_timeout(50 * MS)
            .write_timeout(50 * MS)
            .start(move |mut req: Request| {
                if req.uri().path() == "/upload" {
                    let mut body = Vec::new();
                    let r = req.body_mut().read_to_end(&mut body);
                    s2.set(r.err().map(|e| e.kind()));
                    return Response::new("read".into());
                }
                let w2 = w2.clone();
                Response::new(ResponseBody::stream(move |w| {
                    let block = vec![7u8; 64 * 1024];
                    for _ in 0..1024 {
                        // 64 MiB to a client that reads none of it.
                        if let Err(e) = w.write_all(&block) {
                            w2.set(Some(e.kind()));
                            return Err(e);
                        }
                    }
                    Ok(())
                }))
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        // Two of ten body bytes, then silence.
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            .unwrap();
        let t = std::time::Instant::now();
        while seen.get().is_none() && t.elapsed() < Duration::from_secs(10) {
            sleep(5 * MS);
        }
        assert_eq!(seen.get(), Some(std::io::ErrorKind::TimedOut));
        assert!(
            t.elapsed() >= 50 * MS,
            "not before the timeout: {:?}",
            t.elapsed()
        );
        drop(c);
        // A download nobody reads.
        seen.set(None);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let t = std::time::Instant::now();
        while seen.get().is_none() && t.elapsed() < Duration::from_secs(10) {
            sleep(5 * MS);
        }
        assert_eq!(seen.get(), Some(std::io::ErrorKind::TimedOut));
        // The connection is over: reading what is left ends (end of file or a reset), no hang.
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = Vec::new();
        let r = c.read_to_end(&mut sink);
        assert!(
            sink.len() < 64 << 20,
            "the response was cut off: {} bytes, {r:?}",
            sink.len()
        );
        s.shutdown(Duration::from_secs(1));
    });
}

/// `pool(n)`: at most n connections are served at once; the rest wait their turn (in the
/// listen backlog) and are served after.
#[test]
fn the_connection_pool_serves_at_most_its_size_at_once() {
    each_backend(|_| {
        let (running, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (r, m) = (running.clone(), most.clone());
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .pool(2)
            .start(move |_req: Request| {
                r.set(r.get() + 1);
                m.set(m.get().max(r.get()));
                sleep(10 * MS);
                r.set(r.get() - 1);
                Response::new("served".into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let clients: Vec<_> = (0..6)
            .map(|_| {
                spawn(move || {
                    exchange(
                        addr,
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    )
                })
            })
            .collect();
        for c in clients {
            let r = c.get().unwrap();
            assert!(r.ends_with("served"), "{r}");
        }
        assert_eq!(most.get(), 2, "never more than the pool's size at once");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn malformed_requests_get_their_status_then_the_connection_closes() {
    each_backend(|_| {
        let calls = Rc::new(Cell::new(0));
        let limits = Limits {
            max_request_line: 100,
            max_header_bytes: 200,
            max_body: 10,
            max_headers: 4,
            ..Limits::default()
        };
        let c2 = calls.clone();
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .limits(limits)
            .start(move |_req: Request| {
                c2.set(c2.get() + 1);
                Response::new("ok".into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200));
        let big_headers = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(300)
        );
        let cases: Vec<(&[u8], u16)> = vec![
            (b"NOT HTTP AT ALL\r\n\r\n", 400),
            (long_target.as_bytes(), 414),
            (big_headers.as_bytes(), 431),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
            // More fields than max_headers (few bytes): 431.
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
                431,
            ),
            // Transfer-Encoding in HTTP/1.0: faulty framing, 400.
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                400,
            ),
        ];
        for (wire, want) in cases {
            let r = exchange(addr, wire);
            assert_eq!(status_of(&r), want, "{r}");
            assert!(r.to_lowercase().contains("connection: close"), "{r}");
        }
        // 413 before the body is read: the client has sent only the head.
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert_eq!(status_of(&String::from_utf8_lossy(&out)), 413);
        assert_eq!(calls.get(), 0, "no malformed request reached the handler");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn request_smuggling_attempts_are_400_and_nothing_after_them_reaches_the_handler() {
    each_backend(|_| {
        let calls = Rc::new(Cell::new(0));
        let s = echo_server(calls.clone());
        let addr = s.local_addr().unwrap();
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        let cases: Vec<(String, &[u16])> = vec![
            (
                "Content-Length: 4\r\nTransfer-Encoding: chunked".into(),
                &[400],
            ),
            ("Content-Length: 4\r\nContent-Length: 5".into(), &[400]),
            ("Content-Length: +4".into(), &[400]),
            ("Content-Length: 4_0".into(), &[400]),
            ("Content-Length: 0x4".into(), &[400]),
            ("Content-Length: 99999999999999999999999".into(), &[400]),
            ("Transfer-Encoding: chunked, identity".into(), &[400, 501]),
            ("Transfer-Encoding: identity".into(), &[400, 501]),
            ("Transfer-Encoding: gzip, chunked".into(), &[400, 501]),
            ("Transfer-Encoding : chunked".into(), &[400]),
            ("X-Folded: a\r\n b".into(), &[400]),
            ("X-Nul: a\0b".into(), &[400]),
            ("X-Ctl: a\x01b".into(), &[400]),
        ];
        for (fields, want) in cases {
            let wire =
                format!("POST /a HTTP/1.1\r\nHost: x\r\n{fields}\r\n\r\n0\r\n\r\n{smuggled}");
            let r = exchange(addr, wire.as_bytes());
            assert!(want.contains(&status_of(&r)), "{fields:?}: {r}");
            assert!(
                !r.contains("/smuggled"),
                "{fields:?} smuggled a request: {r}"
            );
        }
        // Chunked framing errors, met while the handler reads the body.
        let bodies = [
            "11111111111111111\r\nx\r\n0\r\n\r\n", // 17 hex digits
            "0x5\r\nhello\r\n0\r\n\r\n",           // prefix
            "-5\r\nhello\r\n0\r\n\r\n",            // sign
            "5\nhello\r\n0\r\n\r\n",               // bare LF
            "5\r\nhelloXX0\r\n\r\n",               // no CRLF after the data
            "5\rhello\r\n0\r\n\r\n",               // bare CR
        ];
        let before = calls.get();
        for body in bodies {
            let wire = format!(
                "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}{smuggled}"
            );
            let r = exchange(addr, wire.as_bytes());
            assert_eq!(status_of(&r), 400, "{body:?}: {r}");
            assert!(
                !r.contains("/smuggled") && !r.contains("200 OK"),
                "{body:?}: {r}"
            );
        }
        assert_eq!(
            calls.get() - before,
            bodies.len() as u32,
            "only the first request of each"
        );
        // A well-formed chunked body with an extension and a trailer decodes.
        let r = exchange(
            addr,
            b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        assert!(r.ends_with("POST /ok hello"), "{r}");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn a_client_sending_its_head_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .header_timeout(Duration::from_millis(100))
            .start(|_req: Request| Response::new("fast".into()))
            .unwrap();
        let addr = s.local_addr().unwrap();
        let slow = spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            for b in head.iter() {
                if c.write_all(&[*b]).is_err() {
                    break;
                }
                sleep(10 * MS);
            }
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        });
        // Meanwhile normal clients are served.
        for _ in 0..5 {
            let r = exchange(
                addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(r.ends_with("fast"), "{r}");
            sleep(10 * MS);
        }
        let r = slow.get().unwrap();
        assert_eq!(status_of(&r), 408, "the slow client was cut off: {r}");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn a_panicking_handler_gets_500_and_closes_only_its_connection() {
    each_backend(|_| {
        grove::set_panic_hook(|_| {});
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|req: Request| {
                if req.uri().path() == "/boom" {
                    panic!("handler bug");
                }
                Response::new("fine".into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let mut other = TcpStream::connect(addr).unwrap();
        other
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        other
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut other).ends_with("fine"));
        let r = exchange(addr, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status_of(&r), 500, "{r}");
        assert!(r.to_lowercase().contains("connection: close"));
        other
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(
            read_response(&mut other).ends_with("fine"),
            "the other connection lives"
        );
        s.shutdown(Duration::from_secs(1));
        grove::reset_panic_hook();
    });
}

#[test]
fn a_handler_cannot_inject_headers_through_cr_lf_or_nul() {
    each_backend(|_| {
        // The http crate refuses such values when they are built...
        assert!(HeaderValue::from_bytes(b"a\r\nSet-Cookie: x").is_err());
        // ...and the server refuses the ones it can still be given: a reason phrase.
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|_req: Request| {
                let mut r = Response::new("body".into());
                r.extensions_mut()
                    .insert(ReasonPhrase("OK\r\nSet-Cookie: stolen=1".into()));
                r
            })
            .unwrap();
        let r = exchange(
            s.local_addr().unwrap(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(status_of(&r), 500, "{r}");
        assert!(!r.contains("Set-Cookie"), "nothing was injected: {r}");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn streamed_bodies_are_chunked_for_1_1_and_close_delimited_for_1_0() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|_req: Request| {
                Response::new(ResponseBody::stream(|w| {
                    for part in ["one ", "two ", "three"] {
                        w.write_all(part.as_bytes())?;
                        w.flush()?;
                    }
                    Ok(())
                }))
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let r = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            r.to_lowercase().contains("transfer-encoding: chunked"),
            "{r}"
        );
        assert!(
            r.ends_with("4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"),
            "{r}"
        );
        let r = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r.to_lowercase().contains("transfer-encoding"), "{r}");
        assert!(r.ends_with("\r\n\r\none two three"), "{r}");
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn large_request_and_response_bodies_stream_through_bounded_buffers() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|mut req: Request| {
                let mut n = 0usize;
                let mut sum = 0u64;
                let mut buf = [0u8; 4096];
                loop {
                    let k = req.body_mut().read(&mut buf).unwrap();
                    if k == 0 {
                        break;
                    }
                    n += k;
                    sum += buf[..k].iter().map(|&b| u64::from(b)).sum::<u64>();
                }
                if req.uri().path() == "/big" {
                    return Response::new(vec![b'z'; 3 << 20].into());
                }
                Response::new(format!("{n} {sum}").into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        let body = vec![3u8; 2 << 20];
        let mut wire = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        wire.extend_from_slice(&body);
        let r = exchange(addr, &wire);
        assert!(
            r.ends_with(&format!("{} {}", body.len(), 3 * body.len())),
            "{}",
            &r[..r.len().min(300)]
        );
        let r = exchange(
            addr,
            b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.to_lowercase().contains("content-length: 3145728"));
        assert_eq!(r.rsplit("\r\n\r\n").next().unwrap().len(), 3 << 20);
        s.shutdown(Duration::from_secs(1));
    });
}

#[test]
fn graceful_shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    each_backend(|_| {
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .no_access_log()
            .start(|req: Request| {
                if req.uri().path() == "/slow" {
                    sleep(Duration::from_millis(50));
                }
                Response::new("done".into())
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        // An idle kept-alive connection.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut idle).ends_with("done"));
        // A request in flight.
        let inflight = spawn(move || exchange(addr, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
        sleep(10 * MS);
        assert!(
            s.shutdown(Duration::from_secs(5)),
            "everything finished in time"
        );
        let r = inflight.get().unwrap();
        assert!(r.ends_with("done"), "{r}");
        assert!(r.to_lowercase().contains("connection: close"), "{r}");
        let mut b = [0u8; 1];
        assert_eq!(
            idle.read(&mut b).unwrap_or(0),
            0,
            "the idle connection was closed"
        );
        assert!(TcpStream::connect(addr).is_err(), "no longer accepting");
    });
}

#[test]
fn the_access_log_hook_sees_every_response_even_to_a_request_it_could_not_parse() {
    each_backend(|_| {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s2 = seen.clone();
        let s = HttpServer::bind("127.0.0.1:0")
            .unwrap()
            .access_log(move |r: &AccessRecord| s2.lock().unwrap().push(r.to_string()))
            .start(|_req: Request| {
                let mut r = Response::new("xyz".into());
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            })
            .unwrap();
        let addr = s.local_addr().unwrap();
        exchange(
            addr,
            b"GET /logged?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        // No request line to name: logged as "-", with the 400 and its body's length.
        let reply = exchange(addr, b"BROKEN\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        let body_len = reply.split("\r\n\r\n").nth(1).unwrap().len();
        s.shutdown(Duration::from_secs(1));
        let lines = seen.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
        assert!(
            lines[0].ends_with("\"GET /logged?q=1 HTTP/1.1\" 200 3"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(&format!("\"-\" 400 {body_len}")),
            "{}",
            lines[1]
        );
    });
}

#[test]
fn a_server_can_run_on_a_listener_bound_beforehand() {
    each_backend(|_| {
        let l = grove::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = HttpServer::from_listener(l)
            .unwrap()
            .no_access_log()
            .start(|_req: Request| Response::new("on my listener".into()))
            .unwrap();
        assert_eq!(s.local_addr().unwrap(), addr);
        let r = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.ends_with("on my listener"), "{r}");
        assert!(s.shutdown(Duration::from_secs(1)));
    });
}

#[test]
fn worker_hubs_serve_one_port() {
    let w = HttpServer::bind("127.0.0.1:0")
        .unwrap()
        .no_access_log()
        .workers(2)
        .spawn_workers(|_req: Request| {
            Response::new(
                std::thread::current()
                    .name()
                    .unwrap_or("?")
                    .to_string()
                    .into(),
            )
        })
        .unwrap();
    let addr = w.local_addr();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let r = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let who = r.rsplit("\r\n\r\n").next().unwrap().to_string();
        assert!(who.starts_with("grove-worker-"), "{r}");
        seen.insert(who);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both hubs answered");
    assert!(w.shutdown(Duration::from_secs(2)));
}
