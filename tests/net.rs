//! Cooperative sockets through the public API, under every poller backend: echo under many
//! connections, resets, half-close, close while waiting, concurrent use, SIGPIPE, timeouts,
//! descriptor hygiene, fairness, UDP and Unix sockets.

mod common;
use common::each_backend;
use grove::net::{
    lookup_host, PartialWrite, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener,
    UnixStream,
};
use grove::server::StreamServer;
use grove::{sleep, spawn};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// A server that echoes every connection until end of file.
fn echo_server() -> StreamServer {
    let s = StreamServer::bind("127.0.0.1:0", |mut c, _| {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = c.read(&mut buf) {
            if c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
    .unwrap();
    s.start().unwrap();
    s
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn echo_serves_many_connections_at_once() {
    each_backend(|_| {
        let server = echo_server();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..200)
            .map(|i| {
                spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    for round in 0..10u32 {
                        let msg = format!("client {i} round {round}");
                        c.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0; msg.len()];
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.get().unwrap();
        }
        assert!(server.stop(Duration::from_secs(5)));
    });
}

#[test]
fn a_peer_reset_wakes_a_blocked_reader_with_an_error_and_the_hub_does_not_spin() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let client = spawn(move || {
            let c = TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 16];
            let t = Instant::now();
            let r = (&c).read(&mut buf);
            (r.map_err(|e| e.kind()), t.elapsed())
        });
        let (conn, _) = l.accept().unwrap();
        sleep(5 * MS); // the client blocks in read
        conn.socket().set_linger(Some(Duration::ZERO)).unwrap();
        drop(conn); // RST
        let (r, _) = client.get().unwrap();
        assert!(
            matches!(r, Err(ErrorKind::ConnectionReset) | Ok(0)),
            "a reset ends the read: {r:?}"
        );
        // A reset socket nobody waits on must not keep the hub busy.
        let idle = TcpStream::connect(addr).unwrap();
        let (conn, _) = l.accept().unwrap();
        conn.socket().set_linger(Some(Duration::ZERO)).unwrap();
        let mut buf = [0u8; 1];
        let s = spawn(move || (&idle).read(&mut buf).map(|_| idle));
        sleep(MS);
        drop(conn);
        let _still_open = s.get().unwrap();
        let before = thread_cpu();
        sleep(Duration::from_millis(100));
        let used = thread_cpu() - before;
        assert!(
            used < Duration::from_millis(50),
            "the hub spun on a reset socket: {used:?} of CPU in 100 ms"
        );
    });
}

#[test]
fn a_peer_reset_wakes_a_blocked_writer_with_an_error() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let writer = spawn(move || {
            let c = TcpStream::connect(addr).unwrap();
            c.socket().set_send_buffer_size(4096).unwrap();
            let chunk = vec![7u8; 65536];
            let mut sent = 0usize;
            loop {
                match (&c).write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) => return (e.kind(), sent),
                }
            }
        });
        let (conn, _) = l.accept().unwrap();
        conn.socket().set_recv_buffer_size(4096).unwrap();
        sleep(10 * MS); // the writer fills the buffers and blocks
        conn.socket().set_linger(Some(Duration::ZERO)).unwrap();
        drop(conn);
        let (kind, sent) = writer.get().unwrap();
        assert!(sent > 0);
        assert!(
            matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{kind:?}"
        );
    });
}

#[test]
fn half_close_lets_the_peer_finish_its_answer() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap(); // until the client's shutdown(Write)
            c.write_all(format!("got {} bytes", all.len()).as_bytes())
                .unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&[1u8; 1000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "got 1000 bytes");
        server.get().unwrap();
    });
}

#[test]
fn close_wakes_every_greenlet_blocked_on_the_socket_with_a_clear_error() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Rc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let _peer = l.accept().unwrap();
        let reader = {
            let c = c.clone();
            spawn(move || {
                let mut buf = [0u8; 8];
                (&*c).read(&mut buf).map_err(|e| (e.kind(), e.to_string()))
            })
        };
        let l = Rc::new(l);
        let acceptor = {
            let l = l.clone();
            spawn(move || l.accept().map(drop).map_err(|e| e.kind()))
        };
        sleep(2 * MS);
        c.close();
        l.close();
        let (kind, msg) = reader.get().unwrap().unwrap_err();
        assert_eq!(kind, ErrorKind::NotConnected);
        assert!(msg.contains("closed"), "{msg}");
        assert_eq!(acceptor.get().unwrap(), Err(ErrorKind::NotConnected));
        let mut buf = [0u8; 1];
        assert_eq!(
            (&*c).read(&mut buf).unwrap_err().kind(),
            ErrorKind::NotConnected,
            "and every later operation"
        );
    });
}

#[test]
fn two_greenlets_reading_one_socket_is_an_error_not_interleaved_data() {
    each_backend(|_| {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let first = {
            let a = a.clone();
            spawn(move || {
                let mut buf = [0u8; 4];
                (&*a).read_exact(&mut buf).map(|()| buf)
            })
        };
        sleep(MS);
        let mut buf = [0u8; 4];
        let e = (&*a).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceBusy);
        assert!(e.to_string().contains("another greenlet"), "{e}");
        (&b).write_all(b"data").unwrap();
        assert_eq!(&first.get().unwrap().unwrap(), b"data");
    });
}

#[test]
fn writing_to_a_closed_peer_is_an_error_never_sigpipe() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        drop(l.accept().unwrap());
        drop(l);
        sleep(5 * MS);
        let chunk = [0u8; 65536];
        let mut r = Ok(0);
        for _ in 0..100 {
            r = (&c).write(&chunk);
            if r.is_err() {
                break;
            }
        }
        let e = r.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{e}"
        );
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!((&a).write(b"x").is_err());
        // Still alive: no SIGPIPE killed us.
    });
}

/// The same with `SIGPIPE` at its default action, as in a process that never ignored it (a C
/// host embedding grove): a child re-run of this test binary writes, plain and vectored, to
/// sockets whose peer is gone, and must live to exit 0. (Rust programs, this test binary
/// among them, start with `SIGPIPE` ignored, which would hide a write that raises it.)
#[test]
fn writes_to_a_closed_peer_raise_no_sigpipe_even_where_it_is_not_ignored() {
    use std::io::IoSlice;
    const CHILD: &str = "GROVE_SIGPIPE_CHILD";
    const NAME: &str = "writes_to_a_closed_peer_raise_no_sigpipe_even_where_it_is_not_ignored";
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: restores the default disposition of SIGPIPE in this child process, which
        // runs only this test.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let chunk = [0u8; 65536];
        let vectored = |w: &mut dyn Write| {
            let bufs = [IoSlice::new(&chunk), IoSlice::new(&chunk)];
            (0..100).find_map(|_| w.write_vectored(&bufs).err())
        };
        let plain = |w: &mut dyn Write| (0..100).find_map(|_| w.write(&chunk).err());
        for (name, write) in [
            (
                "vectored",
                &vectored as &dyn Fn(&mut dyn Write) -> Option<std::io::Error>,
            ),
            ("plain", &plain),
        ] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            drop(l.accept().unwrap());
            sleep(5 * MS);
            let e = write(&mut &c).unwrap_or_else(|| panic!("tcp {name}: no error"));
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "tcp {name}: {e}"
            );
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            assert!(write(&mut &a).is_some(), "unix {name}: no error");
        }
        std::process::exit(0);
    }
    let out = common::this_test_binary()
        .args([NAME, "--exact", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success(),
        "the child died: {:?} (signal {:?}), stderr:\n{}",
        out.status,
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn write_all_that_fails_part_way_says_how_much_was_sent() {
    each_backend(|_| {
        let (a, b) = UnixStream::pair().unwrap();
        let reader = spawn(move || {
            let mut buf = vec![0u8; 10_000];
            (&b).read_exact(&mut buf).unwrap();
            drop(b); // then hang up, mid-write
        });
        let big = vec![1u8; 8 << 20];
        let e = (&a).write_all(&big).unwrap_err();
        reader.get().unwrap();
        let sent = PartialWrite::written_in(&e).expect("the error carries the count");
        assert!(sent >= 10_000 && sent < big.len(), "sent {sent}");
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn read_write_accept_and_connect_timeouts() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_accept_timeout(Some(3 * MS)).unwrap();
        let t = Instant::now();
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= 3 * MS);
        l.set_accept_timeout(None).unwrap();

        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        c.set_read_timeout(Some(3 * MS)).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(3 * MS));
        let mut buf = [0u8; 4];
        let e = (&c).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(e.to_string().contains("timed out"), "{e}");
        assert_eq!(
            c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );

        c.set_write_timeout(Some(5 * MS)).unwrap();
        c.socket().set_send_buffer_size(4096).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let e = loop {
            if let Err(e) = (&c).write(&chunk) {
                break e;
            }
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);

        // A listener whose backlog is full drops new SYNs: the connect can only time out.
        let full =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        full.listen(0).unwrap();
        let faddr = full.local_addr().unwrap().as_socket().unwrap();
        let mut held = Vec::new();
        let mut timed_out = false;
        for _ in 0..8 {
            match TcpStream::connect_timeout(&faddr, 50 * MS) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                    assert!(e.to_string().contains("timed out"));
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(timed_out, "the backlog filled and a connect timed out");
    });
}

#[test]
fn every_descriptor_grove_creates_is_close_on_exec() {
    each_backend(|_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (p, q) = UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        for fd in [
            l.as_raw_fd(),
            c.as_raw_fd(),
            a.as_raw_fd(),
            u.as_raw_fd(),
            p.as_raw_fd(),
            q.as_raw_fd(),
        ] {
            // SAFETY: F_GETFD on open descriptors we own.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(flags & libc::FD_CLOEXEC != 0, "fd {fd} is inheritable");
        }
    });
}

#[test]
fn one_busy_connection_cannot_starve_the_others() {
    each_backend(|_| {
        // 100 greenlets each read a socket that always has data: every read completes at
        // once. Without the fairness yield none would ever let the echo client run: its first
        // round trip would wait for every busy operation. With it, the client keeps making
        // round trips the whole time, each costing a bounded share of the busy work.
        //
        // Latency is counted in busy operations done meanwhile, not in time, so the bound
        // holds on a loaded or emulated machine: per hub turn each busy greenlet gets one
        // streak (IO_STREAK operations, 16 of these iterations), and a round trip needs a
        // few turns: a few thousand of the 200,000.
        let (greenlets, per) = (100, 2_000);
        let busy_total = greenlets * per;
        let done = Rc::new(Cell::new(0usize));
        let busy: Vec<_> = (0..greenlets)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                let done = done.clone();
                spawn(move || {
                    let feed = [1u8; 64];
                    let mut byte = [0u8; 1];
                    for _ in 0..per {
                        (&b).write_all(&feed[..1]).unwrap();
                        (&a).read_exact(&mut byte).unwrap();
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        let server = echo_server();
        let addr = server.local_addr().unwrap();
        let d = done.clone();
        let client = spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut costs = Vec::new();
            // Round trips while the busy greenlets run (bounded: each one completes).
            while d.get() < busy_total {
                let before = d.get();
                c.write_all(b"ping").unwrap();
                let mut b = [0u8; 4];
                c.read_exact(&mut b).unwrap();
                costs.push(d.get() - before);
            }
            costs
        });
        let mut costs = client.get().unwrap();
        for b in busy {
            b.get().unwrap();
        }
        assert!(
            costs.len() >= 20,
            "the echo client made only {} round trips during {busy_total} busy operations \
             (costs {costs:?})",
            costs.len()
        );
        costs.sort_unstable();
        let p99 = costs[(costs.len() * 99).div_ceil(100) - 1];
        assert!(
            p99 <= busy_total / 10,
            "echo round trip p99: {p99} of {busy_total} busy operations went by (median {})",
            costs[costs.len() / 2]
        );
        server.stop(Duration::from_secs(1));
    });
}

#[test]
fn udp_send_recv_connect_and_timeouts() {
    each_backend(|_| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let echo = spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                let (n, from) = a.recv_from(&mut buf).unwrap();
                a.send_to(&buf[..n], from).unwrap();
            }
        });
        for word in ["one", "two"] {
            b.send_to(word.as_bytes(), aa).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (word.as_bytes(), aa));
        }
        b.connect(aa).unwrap();
        b.send(b"three").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        echo.get().unwrap();
        b.set_read_timeout(Some(2 * MS)).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_ne!(aa, ba);
    });
}

#[test]
fn unix_listener_stream_and_datagram() {
    each_backend(|b| {
        let dir = std::env::temp_dir().join(format!("grove-unix-{}-{b:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("sock");
        let l = UnixListener::bind(&path).unwrap();
        let server = spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s.to_uppercase()
        });
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"quiet").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.get().unwrap(), "QUIET");

        let (x, y) = UnixDatagram::pair().unwrap();
        let g = spawn(move || {
            let mut buf = [0u8; 16];
            let n = y.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        sleep(MS);
        x.send(b"dgram").unwrap();
        assert_eq!(g.get().unwrap(), b"dgram");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A Unix listener whose backlog is full: a connect waits for room cooperatively (the hub
/// keeps running other greenlets), `connect_timeout` gives up with `TimedOut`, and an
/// accept lets the waiting connect through.
#[test]
fn a_unix_connect_to_a_full_backlog_waits_cooperatively() {
    each_backend(|b| {
        let dir = std::env::temp_dir().join(format!("grove-backlog-{}-{b:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("sock");
        let l = UnixListener::bind(&path).unwrap();
        // A backlog of one (listen again to shrink it), so that a few connects fill it.
        // SAFETY: `l` is a listening socket this test owns; listen takes no pointers.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 1) }, 0);
        // Fill the backlog: connects succeed (queued, not accepted) until one times out.
        let mut queued = Vec::new();
        let err = loop {
            match UnixStream::connect_timeout(&path, 20 * MS) {
                Ok(c) => queued.push(c),
                Err(e) => break e,
            }
            assert!(queued.len() < 100, "the backlog never filled");
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("sock"), "names the path: {err}");
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = spawn(move || loop {
            t.set(t.get() + 1);
            sleep(MS);
        });
        let p = path.clone();
        let waiting = spawn(move || UnixStream::connect(&p).map(|_| ()));
        sleep(30 * MS);
        assert!(
            !waiting.ready(),
            "the connect waits while the backlog is full"
        );
        assert!(
            ticks.get() >= 5,
            "the hub ran on meanwhile: {} ticks",
            ticks.get()
        );
        let _first = l.accept().unwrap(); // room for one
        waiting
            .get()
            .unwrap()
            .expect("the waiting connect gets through");
        ticker.kill();
        drop(queued);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn std_conversions_round_trip() {
    each_backend(|_| {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_l.local_addr().unwrap();
        let l = TcpListener::from_std(std_l).unwrap();
        let c = TcpStream::try_from(std::net::TcpStream::connect(addr).unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        let mut std_s = s.into_std().unwrap();
        (&c).write_all(b"to std").unwrap();
        let mut buf = [0u8; 6];
        std_s.read_exact(&mut buf).unwrap(); // blocking again
        assert_eq!(&buf, b"to std");
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
    });
}

#[test]
fn listeners_and_datagram_sockets_clone_as_std_does() {
    each_backend(|b| {
        // Two greenlets accept on two handles of one listener, cooperatively.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l2 = l.try_clone().unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
        let a = spawn(move || l.accept().map(|(_, p)| p).unwrap());
        let b2 = spawn(move || l2.accept().map(|(_, p)| p).unwrap());
        let c1 = TcpStream::connect(addr).unwrap();
        let c2 = TcpStream::connect(addr).unwrap();
        let mut got = [a.get().unwrap(), b2.get().unwrap()];
        let mut want = [c1.local_addr().unwrap(), c2.local_addr().unwrap()];
        got.sort();
        want.sort();
        assert_eq!(got, want);
        // A UDP clone receives what is sent to the original's address.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let u2 = u.try_clone().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"to the clone", u.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 32];
        let (n, from) = u2.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"to the clone"[..], peer.local_addr().unwrap())
        );
        // Unix: a listener clone accepts; a datagram clone receives.
        let dir = std::env::temp_dir().join(format!("grove-clone-{}-{b:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("sock");
        let ul = UnixListener::bind(&path).unwrap();
        let ul2 = ul.try_clone().unwrap();
        let acc = spawn(move || ul2.accept().map(|_| ()).unwrap());
        let _uc = UnixStream::connect(&path).unwrap();
        acc.get().unwrap();
        drop(ul);
        let (x, y) = UnixDatagram::pair().unwrap();
        let y2 = y.try_clone().unwrap();
        drop(y);
        x.send(b"dgram").unwrap();
        let n = y2.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"dgram");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn connect_errors_name_the_address_or_path() {
    each_backend(|_| {
        // A UDP socket bound for IPv4 cannot connect to an IPv6 address.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = u.connect("[::1]:9").unwrap_err();
        assert!(e.to_string().contains("[::1]:9"), "{e}");
        let d = UnixDatagram::unbound().unwrap();
        let missing = std::env::temp_dir().join("grove-no-such-socket");
        let e = d.connect(&missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("grove-no-such-socket"), "{e}");
        let e = UnixStream::connect(&missing).unwrap_err();
        assert!(e.to_string().contains("grove-no-such-socket"), "{e}");
    });
}

#[test]
fn names_resolve_on_the_pool_while_other_greenlets_run() {
    each_backend(|_| {
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let ticker = spawn(move || {
            for _ in 0..3 {
                t.set(t.get() + 1);
                sleep(MS);
            }
        });
        let addrs = lookup_host("localhost", 8080).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_loopback()));
        let e = lookup_host("no-such-host.invalid", 1).unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        ticker.get().unwrap();
        let l = TcpListener::bind("localhost:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _c = TcpStream::connect(("localhost", port)).unwrap();
        let _ = ticks;
    });
}
