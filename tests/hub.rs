//! The hub through the public API, under every poller backend this platform has: scheduling
//! order, sleeping, yielding, joining, panics, LoopExit, fd readiness, cross-thread wake-ups.

use grove::sys::Backend;
use grove::{sleep, spawn, yield_now, GreenletError};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Runs `body` once per backend, each on a fresh thread whose hub uses that backend.
fn each_backend(body: fn(Backend)) {
    for b in Backend::available() {
        std::thread::Builder::new()
            .name(format!("{b:?}"))
            .spawn(move || {
                grove::hub::use_backend(b).unwrap();
                body(b);
                assert_eq!(grove::hub::backend(), b);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("under the {b:?} backend"));
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; we own them from here on.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
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
        for g in &gs {
            g.join().unwrap();
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
        a.join().unwrap();
        b.join().unwrap();
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
        sleeper.join().unwrap();
        assert!(spinner.get().unwrap() > 0);
    });
}

#[test]
fn get_returns_the_value_or_the_panic() {
    each_backend(|_| {
        std::panic::set_hook(Box::new(|_| {}));
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
        let _ = std::panic::take_hook();
    });
}

#[test]
fn joining_a_greenlet_that_can_never_finish_is_loop_exit_not_a_hang() {
    each_backend(|_| {
        type Slot = Rc<RefCell<Option<grove::Greenlet<Result<(), GreenletError>>>>>;
        let slot: Slot = Rc::default();
        let s = slot.clone();
        // It waits for itself: nothing can ever finish it, and nothing else is pending.
        let g = spawn(move || s.borrow().as_ref().unwrap().join());
        *slot.borrow_mut() = Some(g);
        let t = Instant::now();
        let r = slot.borrow().as_ref().unwrap().join();
        assert_eq!(r, Err(GreenletError::WouldBlockForever));
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
        writer.join().unwrap();
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
        reader.join().unwrap();
        spinner.join().unwrap();
        drop((r, w));
    });
}
