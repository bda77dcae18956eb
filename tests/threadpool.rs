//! The thread pool and the file helpers through the public API: results, panics, timeouts,
//! reuse of threads, the size limit, and greenlets running while a job blocks a thread.

use grove::threadpool::{self, BlockingError};
use grove::{sleep, spawn};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pool is process-wide: the tests take turns, so that one's jobs do not occupy the
/// threads another counts.
static TURN: Mutex<()> = Mutex::new(());

#[test]
fn a_job_runs_on_a_pool_thread_while_greenlets_keep_running() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let ticker = spawn(move || {
        for _ in 0..5 {
            t.set(t.get() + 1);
            sleep(Duration::from_millis(2));
        }
        tx.send(t.get()).unwrap();
    });
    let here = std::thread::current().id();
    let (v, there, seen) = threadpool::run(move || {
        // Blocks the pool thread until the ticker has run to its end on the hub, which it
        // can only do if the hub keeps running greenlets during this call. (No timing: on a
        // slow machine this just takes longer.)
        let seen = rx.recv_timeout(Duration::from_secs(30)).ok();
        (42, std::thread::current().id(), seen)
    })
    .unwrap();
    assert_eq!(v, 42);
    assert_ne!(here, there);
    assert_eq!(
        seen,
        Some(5),
        "the hub ran the ticker during the blocking call"
    );
    assert_eq!(ticks.get(), 5);
    ticker.get().unwrap();
}

#[test]
fn a_panicking_job_comes_back_as_an_error_and_its_thread_lives_on() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let r: Result<(), _> = threadpool::run(|| panic!("in the pool"));
    assert_eq!(
        r,
        Err(BlockingError::Panicked {
            message: "in the pool".into()
        })
    );
    assert_eq!(threadpool::run(|| 1 + 1), Ok(2));
}

#[test]
fn a_timeout_ends_the_wait_not_the_job() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let r = threadpool::run_timeout(Duration::from_millis(5), move || {
        std::thread::sleep(Duration::from_millis(50));
        f.fetch_add(1, Ordering::SeqCst);
    });
    assert!(matches!(
        r,
        Err(BlockingError::Wait(grove::sync::WaitError::TimedOut))
    ));
    grove::timeout(Duration::from_secs(10), || {
        while finished.load(Ordering::SeqCst) == 0 {
            sleep(Duration::from_millis(5));
        }
    })
    .expect("the job ran to its end");
}

#[test]
fn threads_are_reused_and_the_size_bounds_concurrency() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let old = threadpool::size();
    threadpool::set_size(2);
    let first = threadpool::run(|| std::thread::current().name().map(String::from)).unwrap();
    let second = threadpool::run(|| std::thread::current().name().map(String::from)).unwrap();
    assert!(first.as_deref().unwrap().starts_with("grove-pool-"));
    assert_eq!(first, second, "an idle thread takes the next job");
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..6)
        .map(|_| {
            let (now, most) = (now.clone(), most.clone());
            spawn(move || {
                threadpool::run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    // Until two have run at once (bounded): on a slow machine the second
                    // thread may start late, and the first must not finish everything alone.
                    let t0 = std::time::Instant::now();
                    while most.load(Ordering::SeqCst) < 2 && t0.elapsed() < Duration::from_secs(10)
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap()
            })
        })
        .collect();
    for j in jobs {
        j.get().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "at most size() at once");
    assert!(threadpool::threads() <= 2);
    threadpool::set_size(old);
}

#[test]
fn file_helpers_read_and_write_through_the_pool() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("grove-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("f.txt");
    grove::fs::write(&p, b"one\n").unwrap();
    grove::fs::append(&p, b"two\n").unwrap();
    assert_eq!(grove::fs::read_to_string(&p).unwrap(), "one\ntwo\n");
    assert_eq!(grove::fs::read(&p).unwrap().len(), 8);
    assert_eq!(grove::fs::metadata(&p).unwrap().len(), 8);
    grove::fs::remove_file(&p).unwrap();
    let e = grove::fs::read(&p).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(
        e.to_string().contains("f.txt"),
        "the error names the file: {e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
