//! `grove::http::Conn` fed arbitrary bytes in arbitrary splits, driven by arbitrary server
//! actions: never panics, the buffer stays within `Limits::max_buffer`, events come in a
//! legal order (a head only between bodies, body data only inside one, at most `max` bytes),
//! and after `Event::Error` nothing is ever surfaced again and no input is taken.
//!
//!   cargo +nightly fuzz run http_conn
#![no_main]

use grove::http::{Conn, Event, Limits};
use libfuzzer_sys::fuzz_target;

/// One server action, from one byte: the low 3 bits pick it, the high 5 its argument.
#[derive(Debug)]
enum Op {
    /// Feed the next `arg * 8 + 1` bytes of the data.
    Feed(usize),
    /// Read into `read_buf` as a socket would: up to `arg * 64 + 1` bytes of the data.
    Read(usize),
    /// Ask for one event with at most `arg` body bytes.
    Next(usize),
    /// Ask for events until `None`.
    Drain,
    /// The handler starts reading the body.
    StartBody,
    /// The response is written, with or without keep-alive (even mid-body).
    Respond(bool),
    /// The client closes.
    Eof,
}

impl Op {
    fn from_byte(b: u8) -> Op {
        let arg = usize::from(b >> 3);
        match b & 7 {
            0 | 1 => Op::Feed(arg * 8 + 1),
            2 => Op::Read(arg * 64 + 1),
            3 => Op::Next(arg),
            4 => Op::Drain,
            5 => Op::StartBody,
            6 => Op::Respond(arg != 0),
            _ if arg == 0 => Op::Eof,
            _ => Op::Feed(1),
        }
    }
}

struct Checker {
    conn: Conn,
    limits: Limits,
    failed: bool,
    in_body: bool,
}

impl Checker {
    fn next(&mut self, max: usize) -> bool {
        let failed = self.failed;
        let ev = self.conn.next_event_max(max);
        if failed {
            assert!(ev.is_none(), "an event after an error: {ev:?}");
        }
        let got = ev.is_some();
        match ev {
            None => {}
            Some(Event::Request(_)) => {
                assert!(!self.in_body, "a head inside a body");
                self.in_body = true;
            }
            Some(Event::Body(data)) => {
                assert!(self.in_body, "body data outside a body");
                assert!(!data.is_empty() && data.len() <= max.max(1));
            }
            Some(Event::BodyEnd) => {
                assert!(self.in_body, "body end outside a body");
                self.in_body = false;
            }
            Some(Event::Error(_)) => {
                self.failed = true;
                assert!(self.conn.is_finished() && !self.conn.wants_read());
            }
        }
        assert!(self.conn.buffer_capacity() <= self.limits.max_buffer());
        got
    }

    fn respond(&mut self, keep: bool) {
        let _ = self.conn.response_context();
        let _ = self.conn.keep_alive();
        self.conn.response_done(keep);
        self.in_body = false;
    }
}

// Input: a flags byte (bit 0: small limits), a count `k`, `k` op bytes, then the bytes the
// client sends. A raw HTTP request with two bytes in front is a good seed.
fuzz_target!(|input: &[u8]| {
    let [flags, k, rest @ ..] = input else {
        return;
    };
    let (ops, mut data) = rest.split_at(usize::from(*k).min(rest.len()));
    let limits = if flags & 1 == 1 {
        Limits {
            max_request_line: 32,
            max_header_bytes: 96,
            max_headers: 4,
            max_body: 256,
            max_chunk_ext_bytes: 16,
            max_trailer_bytes: 32,
            read_chunk: 16,
        }
    } else {
        Limits::default()
    };
    let mut c = Checker {
        conn: Conn::new(limits.clone()),
        limits,
        failed: false,
        in_body: false,
    };
    for &b in ops {
        match Op::from_byte(b) {
            Op::Feed(n) => {
                let n = n.min(data.len());
                let taken = c.conn.feed(&data[..n]);
                assert!(taken <= n);
                if c.failed {
                    assert_eq!(taken, 0, "input taken after an error");
                }
                data = &data[taken..];
            }
            Op::Read(n) => {
                let buf = c.conn.read_buf();
                let n = n.min(buf.len()).min(data.len());
                buf[..n].copy_from_slice(&data[..n]);
                c.conn.filled(n);
                data = &data[n..];
            }
            Op::Next(max) => {
                c.next(max);
            }
            Op::Drain => while c.next(usize::MAX) {},
            Op::StartBody => {
                if c.conn.body_read_started() {
                    assert!(c.in_body && !c.failed);
                    assert!(!c.conn.body_read_started(), "100 Continue due twice");
                }
            }
            Op::Respond(keep) => c.respond(keep),
            Op::Eof => c.conn.feed_eof(),
        }
        assert!(c.conn.buffer_capacity() <= c.limits.max_buffer());
    }
    // Then the rest of the data in pieces the flags choose, answering every request at its
    // end (keep-alive), until everything is taken or the connection takes no more.
    let step = usize::from(flags >> 1) + 1;
    let mut stalled = 0;
    while stalled < 2 {
        while c.next(step) {
            if !c.in_body && !c.failed {
                c.respond(true);
            }
        }
        if data.is_empty() {
            break;
        }
        let taken = c.conn.feed(&data[..step.min(data.len())]);
        data = &data[taken..];
        if taken == 0 {
            // Full while a response is awaited mid-body: answer it to make room.
            c.respond(true);
            stalled += 1;
        } else {
            stalled = 0;
        }
    }
});
