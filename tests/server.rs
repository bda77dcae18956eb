//! Servers through the public API, under every poller backend: stop with handlers still
//! running, a handler pool that stops accepting while full, datagram servers, workers.

mod common;
use common::each_backend;
use grove::net::{TcpStream, UdpSocket};
use grove::server::{DatagramServer, StreamServer};
use grove::{sleep, spawn};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);
/// How long the handlers of the stop test would run if not killed.
const HANDLER: Duration = Duration::from_secs(30);

#[test]
fn stop_closes_the_listener_waits_for_handlers_then_kills_the_rest() {
    each_backend(|_| {
        let finished = Rc::new(Cell::new(0));
        let killed = Rc::new(Cell::new(0));
        let (f, k) = (finished.clone(), killed.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |c, _| {
            struct CountKill(Rc<Cell<u32>>, bool);
            impl Drop for CountKill {
                fn drop(&mut self) {
                    if !self.1 {
                        self.0.set(self.0.get() + 1);
                    }
                }
            }
            let mut guard = CountKill(k.clone(), false);
            let mut buf = [0u8; 1];
            let _ = (&c).read(&mut buf); // the client says how long to work
            sleep(Duration::from_millis(u64::from(buf[0])));
            guard.1 = true;
            f.set(f.get() + 1);
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = [5u8, 5, 250, 250]
            .into_iter()
            .map(|ms| {
                let c = TcpStream::connect(addr).unwrap();
                (&c).write_all(&[ms]).unwrap();
                c
            })
            .collect();
        sleep(2 * MS);
        assert_eq!(server.handlers(), 4);
        let all_finished = server.stop(Duration::from_millis(40));
        assert!(!all_finished, "two handlers outlived the timeout");
        assert_eq!(finished.get(), 2);
        assert_eq!(
            killed.get(),
            2,
            "the rest were killed, their destructors ran"
        );
        assert_eq!(server.handlers(), 0);
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
        assert!(
            server.start().is_err(),
            "a stopped server does not start again"
        );
        drop(clients);
    });
}

#[test]
fn a_server_pool_stops_accepting_while_full() {
    each_backend(|_| {
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let (r, m) = (running.clone(), most.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |mut c, _| {
            r.set(r.get() + 1);
            m.set(m.get().max(r.get()));
            sleep(3 * MS);
            let _ = c.write_all(b"ok");
            r.set(r.get() - 1);
        })
        .unwrap()
        .with_pool(2);
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    let mut s = String::new();
                    c.read_to_string(&mut s).unwrap();
                    s
                })
            })
            .collect();
        for c in clients {
            assert_eq!(c.get().unwrap(), "ok");
        }
        assert_eq!(most.get(), 2, "never more than the pool's size at once");
        assert!(server.stop(Duration::from_secs(1)));
    });
}

/// A full handler pool parks the accept (or receive) loop waiting for room, where closing
/// the socket does not reach it: `stop` must still keep to its timeout, and `serve_forever`
/// must still return. The handlers would run for 30 s (what a regression costs the test).
#[test]
fn stop_keeps_its_timeout_while_a_full_pool_holds_the_loop() {
    each_backend(|_| {
        let server = StreamServer::bind("127.0.0.1:0", |_, _| sleep(HANDLER))
            .unwrap()
            .with_pool(1);
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let serving = spawn(move || s.serve_forever());
        let _clients: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        sleep(20 * MS); // the first is handled, the loop waits for room for the second
        assert_eq!(server.handlers(), 1);
        let t = Instant::now();
        assert!(
            !server.stop(50 * MS),
            "the handler was killed, not finished"
        );
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "stop(50 ms) took {took:?}");
        serving.get().unwrap().unwrap();

        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        let server = DatagramServer::bind("127.0.0.1:0", move |_, _, _| {
            h.set(h.get() + 1);
            sleep(HANDLER)
        })
        .unwrap()
        .with_pool(1);
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let serving = spawn(move || s.serve_forever());
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..2 {
            c.send_to(b"x", addr).unwrap();
        }
        sleep(20 * MS);
        assert_eq!(hits.get(), 1, "one handler, the loop waits for room");
        let t = Instant::now();
        assert!(!server.stop(50 * MS));
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "stop(50 ms) took {took:?}");
        serving.get().unwrap().unwrap();
    });
}

#[test]
fn serve_forever_returns_when_stopped_from_another_greenlet() {
    each_backend(|_| {
        let server = StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
        let s = server.clone();
        let stopper = spawn(move || {
            sleep(5 * MS);
            s.stop(Duration::from_secs(1))
        });
        server.serve_forever().unwrap();
        assert!(stopper.get().unwrap());
        assert!(server.is_stopped());
    });
}

#[test]
fn a_datagram_server_runs_a_handler_per_datagram() {
    each_backend(|_| {
        let server = DatagramServer::bind("127.0.0.1:0", |data, peer, sock| {
            let mut reply = data.to_vec();
            reply.reverse();
            sock.send_to(&reply, peer).unwrap();
        })
        .unwrap()
        .with_pool(4);
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for word in ["abc", "hello", "xy"] {
            c.send_to(word.as_bytes(), addr).unwrap();
            let mut buf = [0u8; 32];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            let back: String = word.chars().rev().collect();
            assert_eq!(&buf[..n], back.as_bytes());
        }
        assert!(server.stop(Duration::from_secs(1)));
    });
}

#[test]
fn workers_serve_one_port_from_several_hubs() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    let workers = StreamServer::builder("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .spawn_workers(move |mut c, _| {
            let me = std::thread::current().name().unwrap_or("?").to_string();
            s.lock().unwrap().insert(me.clone());
            let _ = c.write_all(me.as_bytes());
        })
        .unwrap();
    assert_eq!(workers.count(), 2);
    let addr = workers.local_addr();
    let mut answers = 0;
    for _ in 0..200 {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert!(s.starts_with("grove-worker-"), "{s}");
        answers += 1;
        if seen.lock().unwrap().len() == 2 {
            break;
        }
    }
    assert!(answers > 0);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the kernel spread connections over both hubs"
    );
    assert!(workers.stop(Duration::from_secs(2)));
    assert!(TcpStream::connect(addr).is_err());
}
