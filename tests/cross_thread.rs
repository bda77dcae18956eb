//! Cross-thread stress: notifications sent from other threads to a hub are never lost or
//! duplicated. Sizes can be lowered for slow targets (emulators) with `GROVE_NOTIFY_COUNT`.

use grove::sync::{mpsc, AsyncResult};
use std::time::Duration;

fn count(default: u64) -> u64 {
    std::env::var("GROVE_NOTIFY_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(|n: u64| n.min(default))
        .unwrap_or(default)
}

#[test]
fn ten_million_notifications_from_other_threads_arrive_as_ten_million() {
    let total = count(10_000_000);
    let threads = 4u64;
    let per = total / threads;
    let (tx, rx) = mpsc::channel::<u64>();
    let senders: Vec<_> = (0..threads)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    tx.send(t * per + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    // The receiving greenlet shares its hub with a busy one: receiving is cooperative.
    let other = grove::spawn(|| {
        let mut n = 0u64;
        while n < 1000 {
            grove::sleep(Duration::from_micros(100));
            n += 1;
        }
        n
    });
    let receiver = grove::spawn(move || {
        let (mut n, mut sum) = (0u64, 0u64);
        let mut last = vec![None::<u64>; threads as usize];
        while let Ok(v) = rx.recv() {
            n += 1;
            sum = sum.wrapping_add(v);
            // Each sender's values arrive in the order it sent them.
            let t = (v / per) as usize;
            assert!(
                last[t].is_none_or(|l| l < v),
                "out of order from sender {t}"
            );
            last[t] = Some(v);
        }
        (n, sum)
    });
    let (n, sum) = receiver.get().unwrap();
    for s in senders {
        s.join().unwrap();
    }
    let m = threads * per;
    assert_eq!(n, m, "every notification arrived exactly once");
    assert_eq!(sum, m * (m - 1) / 2);
    assert_eq!(other.get(), Ok(1000));
}

#[test]
fn a_hundred_thousand_cross_thread_wake_ups_are_none_of_them_lost() {
    // Every round trip parks the receiving greenlet and needs a wake-up from another thread:
    // a lost one would hang the round (bounded here by a timeout).
    let rounds = count(100_000);
    let (req_tx, req_rx) = mpsc::channel::<AsyncResult<u64>>();
    let server = std::thread::spawn(move || {
        // Another hub: its greenlet answers each request by setting the result.
        let g = grove::spawn(move || {
            let mut served = 0u64;
            while let Ok(r) = req_rx.recv() {
                served += 1;
                r.set(served).unwrap();
            }
            served
        });
        g.get().unwrap()
    });
    for i in 1..=rounds {
        let r = AsyncResult::new();
        req_tx.send(r.clone()).unwrap();
        let got = r
            .get_timeout(Duration::from_secs(30))
            .expect("no wake-up is lost");
        assert_eq!(got, i);
    }
    drop(req_tx);
    assert_eq!(server.join().unwrap(), rounds);
}

#[test]
fn hub_handles_from_many_threads_run_every_callback_once() {
    let per = count(250_000);
    let handle = grove::hub::handle();
    let (tx, rx) = mpsc::channel::<()>();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (h, tx) = (handle.clone(), tx.clone());
            std::thread::spawn(move || {
                for _ in 0..per {
                    let tx = tx.clone();
                    h.schedule(move || tx.send(()).unwrap()).unwrap();
                }
            })
        })
        .collect();
    drop((tx, handle));
    for t in threads {
        t.join().unwrap();
    }
    let n = grove::spawn(move || rx.iter().count() as u64)
        .get()
        .unwrap();
    assert_eq!(n, 4 * per);
}

#[test]
fn a_result_set_and_let_go_of_by_another_thread_is_still_seen_set() {
    // The other thread sets each result and drops its handle at once. A waiter that looks just
    // between the two finds itself the last holder of an unset-looking result: it must still
    // see the value, never "would block forever" (seen under qemu as a thread-pool job whose
    // wait came back interrupted).
    let rounds = count(50_000);
    let (tx, rx) = std::sync::mpsc::channel::<AsyncResult<u64>>();
    let setter = std::thread::spawn(move || {
        // Polled, not blocked on, and after a varying short spin: the set lands at every
        // moment of the waiter's first look (on a machine with a second core).
        let mut i = 0u64;
        loop {
            match rx.try_recv() {
                Ok(r) => {
                    for _ in 0..(i * 7919) % 97 {
                        std::hint::spin_loop();
                    }
                    r.set(i).unwrap();
                    drop(r);
                    i += 1;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            }
        }
    });
    for i in 0..rounds {
        let r = AsyncResult::new();
        tx.send(r.clone()).unwrap();
        match r.get() {
            Ok(v) => assert_eq!(v, i),
            Err(e) => panic!("round {i}: {e}"),
        }
    }
    drop(tx);
    setter.join().unwrap();
}
