//! Process-wide descriptor behaviour, in a test binary of its own (the counts and limits are
//! process-wide, so these tests take turns), under every poller backend: no descriptor leaks
//! after 100,000 connections (10,000 under the backends that are not the platform's default),
//! and a server that runs out of descriptors backs off instead of spinning, then recovers (in
//! a child process with a low `RLIMIT_NOFILE`).

mod common;

use grove::net::TcpStream;
use grove::server::StreamServer;
use grove::sleep;
use grove::sys::Backend;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

/// These tests change or count process-wide state: one at a time, each on a thread of its
/// own that has fully ended (its hub's poller and wake-up closed) before the next begins.
static TURN: Mutex<()> = Mutex::new(());

/// Runs `body` in turn (see [`TURN`]) once per poller backend, each on a fresh thread whose
/// hub uses it. `body` gets the platform's default backend's flag: the long runs are at full
/// scale there, a tenth of it under the others.
fn in_turn(body: fn(bool)) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let default = Backend::default_for_platform();
    for b in Backend::available() {
        std::thread::Builder::new()
            .name(format!("{b:?}"))
            .spawn(move || {
                grove::hub::use_backend(b).unwrap();
                body(b == default);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("under the {b:?} backend"));
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .or_else(|_| std::fs::read_dir("/dev/fd"))
        .unwrap()
        .count()
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the call.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn scale(default: usize) -> usize {
    std::env::var("GROVE_NET_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .map(|d| (default / d.max(1)).max(1))
        .unwrap_or(default)
}

fn echo_server() -> StreamServer {
    let s = StreamServer::bind("127.0.0.1:0", |mut c, _| {
        let mut buf = [0u8; 512];
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

fn wait_idle(server: &StreamServer) {
    grove::timeout(Duration::from_secs(30), || {
        while server.handlers() > 0 {
            sleep(MS);
        }
    })
    .expect("every handler saw its connection end");
}

#[test]
fn descriptors_return_to_their_baseline_after_a_hundred_thousand_connects() {
    in_turn(leak_check);
}

fn leak_check(full: bool) {
    let n = scale(if full { 100_000 } else { 10_000 });
    let server = echo_server();
    let addr = server.local_addr().unwrap();
    for _ in 0..10 {
        drop(TcpStream::connect(addr).unwrap()); // warm up: poller, pools, first stacks
    }
    wait_idle(&server);
    let before = open_fds();

    for i in 0..n {
        let c = TcpStream::connect(addr).unwrap();
        c.socket().set_linger(Some(Duration::ZERO)).unwrap(); // no TIME_WAIT pile-up
        if i % 100 == 0 {
            (&c).write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            (&c).read_exact(&mut b).unwrap();
        }
        drop(c);
        if i % 500 == 0 {
            wait_idle(&server);
        }
    }
    wait_idle(&server);
    assert_eq!(open_fds(), before, "{n} connections leaked descriptors");
    assert!(server.stop(Duration::from_secs(1)));
}

/// Set in the child process that runs the EMFILE test under its own low descriptor limit.
const EMFILE_CHILD: &str = "GROVE_TEST_EMFILE_CHILD";

#[test]
fn a_server_out_of_descriptors_backs_off_without_spinning_then_recovers() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        // The child: its RLIMIT_NOFILE is lowered for it alone (see emfile_backoff).
        in_turn(emfile_backoff);
        return;
    }
    // The parent: runs this test again, alone, in a child process, so that the lowered
    // limit and the descriptors it runs out of are the child's, never the other tests'.
    // Its turn keeps the leak check from counting the pipes to the child.
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let name = "a_server_out_of_descriptors_backs_off_without_spinning_then_recovers";
    let out = common::this_test_binary()
        .args(["--exact", name, "--test-threads=1"])
        .env(EMFILE_CHILD, "1")
        .output()
        .expect("re-executing the test binary");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("1 passed"),
        "the child process running the test failed ({}):\n{report}",
        out.status
    );
}

fn emfile_backoff(_: bool) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |c, _| {
        a.fetch_add(1, Ordering::SeqCst);
        let mut buf = [0u8; 1];
        let _ = (&c).read(&mut buf); // hold the connection until the client closes
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();

    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let saved = lim;
    lim.rlim_cur = (open_fds() + 24) as libc::rlim_t;
    // SAFETY: lowering the soft limit of this process, a child of the test's own (see the
    // test); restored below for the recovery.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);

    // A plain thread opens connections until the process runs out of descriptors; the
    // kernel completes them into the listen backlog, which the server cannot empty (EMFILE).
    let (tx, rx) = std::sync::mpsc::channel();
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut held = Vec::new();
        loop {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert!(
                        e.raw_os_error() == Some(libc::EMFILE) || e.kind() == ErrorKind::Other,
                        "{e}"
                    );
                    break;
                }
            }
            if held.len() > 64 {
                break;
            }
        }
        tx.send(held.len()).unwrap();
        close_rx.recv().unwrap();
        drop(held);
    });
    let opened = rx.recv().unwrap();
    sleep(50 * MS); // the server meets EMFILE and starts backing off
    let cpu = thread_cpu();
    sleep(Duration::from_millis(400));
    let spent = thread_cpu() - cpu;
    // SAFETY: restoring the limit saved above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) }, 0);
    assert!(
        spent < Duration::from_millis(150),
        "the accept loop spun while out of descriptors: {spent:?} CPU in 400 ms"
    );
    assert!(
        accepted.load(Ordering::SeqCst) < opened,
        "some connections wait in the backlog"
    );
    close_tx.send(()).unwrap();
    client.join().unwrap();
    // Descriptors are back: within the longest back-off every waiting connection is taken.
    grove::timeout(Duration::from_secs(10), || {
        while accepted.load(Ordering::SeqCst) < opened {
            sleep(5 * MS);
        }
    })
    .expect("the server recovered and accepted the backlog");
    server.stop(Duration::from_secs(1));
}
