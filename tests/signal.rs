//! Signals through the public API: a handler runs in a greenlet on its own hub when the signal
//! arrives, under every backend; a burst merges but its last signal is never lost; runs never
//! overlap and a signal during a run causes another; cancel stops it and puts the previous
//! disposition back; several hubs each get their run; `wait`; refused signals.
//!
//! Only SIGUSR1, SIGUSR2 and SIGWINCH are raised, and the tests take turns (one lock): a
//! signal raised by one test must not reach another's handler. Each test first sets the
//! signals it uses to "ignore", so that a signal arriving after a cancel is harmless.

mod common;
use common::each_backend;
use grove::signal::{self, SIGUSR1, SIGUSR2, SIGWINCH};
use grove::{sleep, spawn};
use std::cell::Cell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// One test at a time; the signals it uses start out ignored.
fn serial(signals: &[libc::c_int]) -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for &s in signals {
        set_disposition(s, libc::SIG_IGN);
    }
    g
}

fn set_disposition(signum: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a valid, zero-initialised sigaction with SIG_IGN or SIG_DFL.
    unsafe {
        let mut a: libc::sigaction = std::mem::zeroed();
        a.sa_sigaction = handler;
        libc::sigemptyset(&mut a.sa_mask);
        assert_eq!(libc::sigaction(signum, &a, std::ptr::null_mut()), 0);
    }
}

fn disposition(signum: libc::c_int) -> libc::sighandler_t {
    // SAFETY: sigaction only reads the current action into a valid struct.
    unsafe {
        let mut a: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut a), 0);
        a.sa_sigaction
    }
}

fn raise(signum: libc::c_int) {
    // SAFETY: kill(2) on our own pid with a signal that is handled or ignored.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

/// Sleeps cooperatively until `cond` holds, for at most 10 s; returns whether it held.
fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        sleep(MS);
    }
    true
}

#[test]
fn a_handler_runs_in_a_greenlet_on_its_hub_when_the_signal_arrives() {
    let _g = serial(&[SIGUSR1]);
    each_backend(|_| {
        let runs = Rc::new(Cell::new(0));
        let r = runs.clone();
        let me = std::thread::current().id();
        let h = signal::handle(SIGUSR1, move || {
            assert_eq!(
                std::thread::current().id(),
                me,
                "runs on the registering thread"
            );
            sleep(MS); // a greenlet: it may block
            r.set(r.get() + 1);
        })
        .unwrap();
        raise(SIGUSR1);
        assert!(eventually(|| runs.get() == 1), "the handler never ran");
        raise(SIGUSR1);
        assert!(eventually(|| runs.get() == 2), "it runs once per arrival");
        h.cancel();
        assert!(h.is_cancelled());
    });
}

#[test]
fn a_burst_from_another_thread_merges_but_its_last_signal_is_never_lost() {
    let _g = serial(&[SIGUSR2]);
    each_backend(|_| {
        // The sender counts up before each raise; each run records the count it sees. A run
        // that starts after the last raise must see the final count.
        let sent = Arc::new(AtomicU64::new(0));
        let seen = Rc::new(Cell::new(0u64));
        let runs = Rc::new(Cell::new(0u64));
        let (s, sn, r) = (sent.clone(), seen.clone(), runs.clone());
        let h = signal::handle(SIGUSR2, move || {
            sn.set(s.load(Ordering::SeqCst));
            r.set(r.get() + 1);
        })
        .unwrap();
        let sender = std::thread::spawn(move || {
            for i in 1..=1000 {
                sent.store(i, Ordering::SeqCst);
                raise(SIGUSR2);
            }
        });
        // The sender blocks only its own thread; this greenlet sleeps while it runs.
        assert!(eventually(|| sender.is_finished()));
        sender.join().unwrap();
        assert!(
            eventually(|| seen.get() == 1000),
            "the last signal of the burst was lost: the last run saw {} (after {} runs)",
            seen.get(),
            runs.get()
        );
        assert!((1..=1000).contains(&runs.get()), "{} runs", runs.get());

        // Cancelled: the next signal runs nothing (the previous disposition, "ignore", is back).
        h.cancel();
        assert_eq!(disposition(SIGUSR2), libc::SIG_IGN);
        let before = runs.get();
        raise(SIGUSR2);
        sleep(Duration::from_millis(20));
        assert_eq!(runs.get(), before, "a cancelled handler ran");
    });
}

#[test]
fn runs_never_overlap_and_a_signal_during_a_run_causes_another() {
    let _g = serial(&[SIGUSR1]);
    each_backend(|_| {
        let runs = Rc::new(Cell::new(0));
        let active = Rc::new(Cell::new(false));
        let (r, a) = (runs.clone(), active.clone());
        let _h = signal::handle(SIGUSR1, move || {
            assert!(!a.replace(true), "two runs at once");
            r.set(r.get() + 1);
            if r.get() == 1 {
                sleep(Duration::from_millis(200)); // the next signals come now
            }
            a.set(false);
        })
        .unwrap();
        raise(SIGUSR1);
        assert!(eventually(|| active.get()), "the first run never started");
        raise(SIGUSR1);
        raise(SIGUSR1); // merges with the one before
        assert!(
            eventually(|| runs.get() >= 2 && !active.get()),
            "the signals during the run caused no other run"
        );
        sleep(Duration::from_millis(20));
        // Both came during the first run, so they merge into one more run (a third only if
        // the machine is so slow that the second was handed over after the second run began).
        assert!(runs.get() <= 3, "{} runs for 3 signals", runs.get());
    });
}

#[test]
fn cancel_puts_the_previous_disposition_back_only_when_the_last_handler_goes() {
    let _g = serial(&[SIGWINCH]);
    each_backend(|_| {
        set_disposition(SIGWINCH, libc::SIG_DFL);
        let a_runs = Rc::new(Cell::new(0));
        let b_runs = Rc::new(Cell::new(0));
        let (a, b) = (a_runs.clone(), b_runs.clone());
        let ha = signal::handle(SIGWINCH, move || a.set(a.get() + 1)).unwrap();
        let hb = signal::handle(SIGWINCH, move || b.set(b.get() + 1)).unwrap();
        assert_ne!(disposition(SIGWINCH), libc::SIG_DFL);
        raise(SIGWINCH);
        assert!(eventually(|| a_runs.get() == 1 && b_runs.get() == 1));

        drop(ha); // dropping cancels
        assert_ne!(disposition(SIGWINCH), libc::SIG_DFL, "b still handles it");
        raise(SIGWINCH);
        assert!(eventually(|| b_runs.get() == 2));
        sleep(Duration::from_millis(20));
        assert_eq!(a_runs.get(), 1, "a cancelled handler ran");

        hb.cancel();
        hb.cancel(); // twice is harmless
        assert_eq!(disposition(SIGWINCH), libc::SIG_DFL);
        drop(hb);
        assert_eq!(disposition(SIGWINCH), libc::SIG_DFL);
    });
}

#[test]
fn each_hub_that_handles_a_signal_gets_its_own_run() {
    let _g = serial(&[SIGWINCH]);
    let ready = Arc::new(std::sync::Barrier::new(4));
    let done = Arc::new(std::sync::Barrier::new(4));
    let hubs: Vec<_> = (0..3)
        .map(|_| {
            let (ready, done) = (ready.clone(), done.clone());
            std::thread::spawn(move || {
                let runs = Rc::new(Cell::new(0));
                let r = runs.clone();
                let me = std::thread::current().id();
                let h = signal::handle(SIGWINCH, move || {
                    assert_eq!(std::thread::current().id(), me);
                    r.set(r.get() + 1);
                })
                .unwrap();
                ready.wait();
                let ran = eventually(|| runs.get() >= 1);
                // Cancel only once every hub has had its run: a cancel could otherwise put
                // "ignore" back before another hub's delivery.
                done.wait();
                drop(h);
                ran
            })
        })
        .collect();
    ready.wait();
    raise(SIGWINCH);
    done.wait();
    for h in hubs {
        assert!(h.join().unwrap(), "a hub's handler never ran");
    }
}

#[test]
fn a_handler_on_a_hub_whose_thread_exited_is_dropped() {
    let _g = serial(&[SIGUSR1]);
    // Leaked, so never cancelled: the registration outlives its hub's thread.
    std::thread::spawn(|| std::mem::forget(signal::handle(SIGUSR1, || {}).unwrap()))
        .join()
        .unwrap();
    each_backend(|_| {
        let runs = Rc::new(Cell::new(0));
        let r = runs.clone();
        let h = signal::handle(SIGUSR1, move || r.set(r.get() + 1)).unwrap();
        raise(SIGUSR1);
        assert!(
            eventually(|| runs.get() == 1),
            "the live hub's handler still runs"
        );
        drop(h);
    });
    // The dead hub's registration went at that delivery; with ours cancelled, "ignore" is back.
    assert!(eventually(|| disposition(SIGUSR1) == libc::SIG_IGN));
}

#[test]
fn wait_returns_when_the_signal_arrives_or_the_timeout_passes() {
    let _g = serial(&[SIGUSR2, SIGWINCH]);
    each_backend(|_| {
        let raiser = spawn(|| {
            sleep(Duration::from_millis(20));
            raise(SIGUSR2);
        });
        assert!(signal::wait(SIGUSR2, Some(Duration::from_secs(10))).unwrap());
        raiser.get().unwrap();
        assert!(!signal::wait(SIGWINCH, Some(Duration::from_millis(20))).unwrap());
        assert_eq!(disposition(SIGUSR2), libc::SIG_IGN);
    });
}

#[test]
fn a_panicking_handler_is_contained_and_runs_again_next_time() {
    let _g = serial(&[SIGUSR1]);
    each_backend(|_| {
        let runs = Rc::new(Cell::new(0));
        let r = runs.clone();
        let _h = signal::handle(SIGUSR1, move || {
            r.set(r.get() + 1);
            if r.get() == 1 {
                panic!("first run fails (expected in this test)");
            }
        })
        .unwrap();
        raise(SIGUSR1);
        assert!(eventually(|| runs.get() == 1));
        raise(SIGUSR1);
        assert!(
            eventually(|| runs.get() == 2),
            "the handler stopped after a panic"
        );
    });
}

#[test]
fn faults_and_uncatchable_signals_are_refused() {
    for s in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGKILL,
        libc::SIGSTOP,
        0,
        -1,
        1000,
    ] {
        let e = signal::handle(s, || {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "signal {s}");
        assert!(e.to_string().contains("grove:"), "{e}");
    }
    let e = signal::handle(libc::SIGSEGV, || {}).unwrap_err();
    assert!(e.to_string().contains("SIGSEGV"), "{e}");
    // Rust's SIGPIPE "ignore" is untouched by all this.
    assert_eq!(disposition(libc::SIGPIPE), libc::SIG_IGN);
}
