//! The hub through the public API, under every poller backend this platform has: scheduling
//! order, sleeping, yielding, joining, panics, LoopExit, fd readiness, cross-thread wake-ups.

mod common;
use common::each_backend;
use grove::{sleep, spawn, yield_now, GreenletError};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connected, non-blocking pair of descriptors (a socket pair: portable, unlike pipe2).
fn pipe() -> (OwnedFd, OwnedFd) {
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (OwnedFd::from(a), OwnedFd::from(b))
}

#[test]
fn spawn_runs_later_in_fifo_order() {
    each_backend(|_| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let log = log.clone();
                spawn(move || log.borrow_mut().push(i))
            })
            .collect();
        assert!(
            log.borrow().is_empty(),
            "spawn must not run the greenlet at once"
        );
        for g in gs {
            g.get().unwrap();
        }
        assert_eq!(*log.borrow(), vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn yielding_interleaves_equally_ready_greenlets() {
    each_backend(|_| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mk = |name: &'static str| {
            let log = log.clone();
            spawn(move || {
                for i in 0..3 {
                    log.borrow_mut().push(format!("{name}{i}"));
                    yield_now();
                }
            })
        };
        let (a, b) = (mk("a"), mk("b"));
        a.get().unwrap();
        b.get().unwrap();
        assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn sleepers_wake_in_deadline_order_and_not_early() {
    each_backend(|_| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let t0 = Instant::now();
        let gs: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let log = log.clone();
                spawn(move || {
                    sleep(Duration::from_millis(ms));
                    log.borrow_mut().push((ms, t0.elapsed()));
                })
            })
            .collect();
        for g in gs {
            g.get().unwrap();
        }
        let order: Vec<u64> = log.borrow().iter().map(|(ms, _)| *ms).collect();
        assert_eq!(order, [10, 20, 30]);
        for (ms, at) in log.borrow().iter() {
            assert!(
                *at >= Duration::from_millis(*ms),
                "woke after {at:?}, asked {ms} ms"
            );
        }
    });
}

#[test]
fn a_yield_loop_cannot_starve_timers() {
    each_backend(|_| {
        let done = Rc::new(RefCell::new(false));
        let d = done.clone();
        let spinner = spawn(move || {
            let mut spins = 0u64;
            while !*d.borrow() {
                yield_now();
                spins += 1;
                assert!(spins < 50_000_000, "the timer never fired");
            }
            spins
        });
        let sleeper = spawn(move || {
            sleep(Duration::from_millis(5));
            *done.borrow_mut() = true;
        });
        sleeper.get().unwrap();
        assert!(spinner.get().unwrap() > 0);
    });
}

#[test]
fn get_returns_the_value_or_the_panic() {
    each_backend(|_| {
        let ok = spawn(|| 6 * 7);
        let bad = spawn(|| -> i32 { panic!("no luck") });
        let after = spawn(|| "still running");
        assert_eq!(ok.get(), Ok(42));
        assert_eq!(
            bad.get(),
            Err(GreenletError::Panicked {
                message: "no luck".into()
            })
        );
        assert_eq!(after.get(), Ok("still running"));
    });
}

#[test]
fn joining_a_greenlet_that_can_never_finish_is_loop_exit_not_a_hang() {
    each_backend(|_| {
        // It waits for an event nobody will ever set, and nothing else is pending.
        let ev = Rc::new(grove::Event::new());
        let e = ev.clone();
        let g = spawn(move || e.wait());
        let t = Instant::now();
        let r = g.join();
        assert_eq!(r, Err(GreenletError::WouldBlockForever));
        assert!(!g.ready(), "it is still waiting");
        assert!(t.elapsed() < Duration::from_secs(5));
        // The hub still works afterwards.
        assert_eq!(spawn(|| 1).get(), Ok(1));
    });
}

#[test]
fn wait_readable_times_out_then_wakes_on_data() {
    each_backend(|_| {
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let e = grove::wait_readable(rfd, Some(Duration::from_millis(20))).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let wfd = w.as_raw_fd();
        let writer = spawn(move || {
            sleep(Duration::from_millis(10));
            // SAFETY: writing one byte from a live buffer to our own pipe.
            let n = unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) };
            assert_eq!(n, 1);
        });
        let t = Instant::now();
        grove::wait_readable(rfd, Some(Duration::from_secs(5))).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(5));
        writer.get().unwrap();
        grove::wait_writable(wfd, Some(Duration::from_secs(5))).unwrap();
        drop((r, w));
    });
}

thread_local! {
    static HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[test]
fn other_threads_wake_the_hub_without_losing_a_callback() {
    each_backend(|_| {
        let h = grove::hub::handle();
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for _ in 0..2500 {
                        h.schedule(|| HITS.with(|c| c.set(c.get() + 1))).unwrap();
                    }
                })
            })
            .collect();
        let t = Instant::now();
        while HITS.with(|c| c.get()) < 10_000 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "only {} arrived",
                HITS.with(|c| c.get())
            );
            sleep(Duration::from_millis(1));
        }
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(HITS.with(|c| c.get()), 10_000);
        HITS.with(|c| c.set(0));
    });
}

#[test]
fn a_yield_loop_cannot_starve_io() {
    each_backend(|_| {
        let (r, w) = pipe();
        // SAFETY: writing one byte from a live buffer to our own pipe.
        assert_eq!(
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) },
            1
        );
        let done = Rc::new(RefCell::new(false));
        let d = done.clone();
        let spinner = spawn(move || {
            let mut spins = 0u64;
            while !*d.borrow() {
                yield_now();
                spins += 1;
                assert!(spins < 1_000_000, "the readable pipe was never reported");
            }
        });
        let rfd = r.as_raw_fd();
        let reader = spawn(move || {
            grove::wait_readable(rfd, None).unwrap();
            *done.borrow_mut() = true;
        });
        reader.get().unwrap();
        spinner.get().unwrap();
        drop((r, w));
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/dev/fd")
        .or_else(|_| std::fs::read_dir("/proc/self/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn threads_that_used_grove_leave_no_file_descriptors_behind() {
    let run = |keep_one_parked: bool| {
        std::thread::spawn(move || {
            let g = spawn(|| sleep(Duration::from_millis(1)));
            g.get().unwrap();
            if keep_one_parked {
                // A greenlet still parked at thread exit: the hub is leaked, its fds are not.
                let ev = Box::leak(Box::new(grove::Event::new()));
                std::mem::forget(spawn(|| ev.wait()));
                yield_now();
            }
            // A handle that outlives the thread: sending through it fails cleanly.
            grove::hub::handle()
        })
        .join()
        .unwrap()
    };
    // Warm up (lazily opened process-wide things), then count.
    drop(run(false));
    let before = open_fds();
    let mut handles = Vec::new();
    for i in 0..200 {
        handles.push(run(i % 2 == 0));
    }
    let after = open_fds();
    assert!(
        after <= before + 2,
        "fds grew from {before} to {after} over 200 threads"
    );
    let e = handles[0].schedule(|| ()).unwrap_err();
    assert!(e.to_string().contains("exited"), "{e}");
}

/// A sleep or a timed wait counts from the hub's clock read at the end of the turn it was
/// called in, never from an earlier one: however long what ran before it in the turn took
/// (another greenlet, or its own greenlet), it never ends early.
#[test]
fn sleeps_and_timed_waits_never_end_early_whatever_ran_before_them() {
    each_backend(|_| {
        let busy = |d: Duration| {
            let t = Instant::now();
            while t.elapsed() < d {
                std::hint::spin_loop();
            }
        };
        // Runs before the sleeper in its first turns, then is gone.
        let hog = spawn(move || {
            for _ in 0..4 {
                busy(Duration::from_millis(1));
                yield_now();
            }
        });
        let sleeper = spawn(move || {
            let ev = grove::Event::new();
            for i in 0..24u32 {
                let d = Duration::from_micros(200 * u64::from(i % 4 + 1));
                busy(Duration::from_millis(1)); // longer than the sleep
                let t = Instant::now();
                if i % 2 == 0 {
                    sleep(d);
                } else {
                    assert!(!ev.wait_timeout(d), "nobody sets it");
                }
                let took = t.elapsed();
                assert!(took >= d, "round {i}: asked {d:?}, woke after {took:?}");
            }
        });
        sleeper.get().unwrap();
        hog.get().unwrap();
    });
}
