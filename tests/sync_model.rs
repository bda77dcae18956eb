//! Property tests of the primitives under load: hundreds of greenlets on random schedules,
//! with random timeouts (their own and scoped ones) and random kills, on a hub with a paused
//! clock (deterministic, and hours of virtual time take none).
//!
//! * Semaphores and locks: never more holders than permits (mutual exclusion for a lock);
//!   every permit comes back (conservation); waiters that blocked are served in the order
//!   they began waiting (FIFO); and no waiter is stranded (every greenlet ends).
//! * Queues and channels: every item put is got exactly once or is still queued at the end
//!   (no loss, no duplicate); a failed put keeps its item; each consumer sees items in the
//!   order they entered the queue; and every producer and consumer ends.

use grove::sync::{Channel, PutError, QueueError, Semaphore};
use grove::{sleep, spawn, yield_now, Queue};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

fn ms(n: u8) -> Duration {
    Duration::from_millis(u64::from(n))
}

/// How a greenlet asks for a permit.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// `acquire()`.
    Wait,
    /// `acquire_timeout(ms)`.
    Patient(u8),
    /// `timeout(ms, || acquire())`: a scoped timeout interrupts the wait.
    Scoped(u8),
    /// `try_acquire()`.
    Try,
}

#[derive(Debug, Clone, Copy)]
enum SemOp {
    /// Ask for a permit; if granted, hold it for `hold` ms (0: a yield), then release.
    Take {
        ask: Ask,
        hold: u8,
    },
    Sleep(u8),
    Yield,
}

fn ask() -> impl Strategy<Value = Ask> {
    prop_oneof![
        3 => Just(Ask::Wait),
        2 => (1u8..40).prop_map(Ask::Patient),
        2 => (1u8..40).prop_map(Ask::Scoped),
        1 => Just(Ask::Try),
    ]
}

fn sem_op() -> impl Strategy<Value = SemOp> {
    prop_oneof![
        5 => (ask(), 0u8..8).prop_map(|(ask, hold)| SemOp::Take { ask, hold }),
        2 => (1u8..20).prop_map(SemOp::Sleep),
        1 => Just(SemOp::Yield),
    ]
}

/// (permits, per-greenlet programs, kills as (at ms, victim index)).
type SemProgram = (usize, Vec<Vec<SemOp>>, Vec<(u8, usize)>);

fn sem_program() -> impl Strategy<Value = SemProgram> {
    (1usize..=4, 100usize..=1000).prop_flat_map(|(permits, n)| {
        (
            Just(permits),
            prop::collection::vec(prop::collection::vec(sem_op(), 1..4), n),
            prop::collection::vec((0u8..200, 0..n), 0..n / 4),
        )
    })
}

/// What the run observed, checked after it.
#[derive(Default)]
struct SemLog {
    holders: Cell<usize>,
    most: Cell<usize>,
    /// Blocking waits by id, in the order they began; and the ids granted after blocking, in
    /// the order they were granted.
    began: RefCell<Vec<u64>>,
    granted: RefCell<Vec<u64>>,
    next_wait: Cell<u64>,
}

/// Holding a permit: counts the holder in and out (also when a kill unwinds it).
struct Holding<'a>(&'a SemLog);

impl<'a> Holding<'a> {
    fn new(log: &'a SemLog) -> Self {
        log.holders.set(log.holders.get() + 1);
        log.most.set(log.most.get().max(log.holders.get()));
        Holding(log)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.holders.set(self.0.holders.get() - 1);
    }
}

fn run_semaphore((permits, programs, kills): SemProgram) -> Result<(), TestCaseError> {
    let sem = Rc::new(Semaphore::new(permits));
    let log = Rc::new(SemLog::default());
    let gs: Vec<_> = programs
        .into_iter()
        .map(|ops| {
            let (sem, log) = (sem.clone(), log.clone());
            spawn(move || {
                for op in ops {
                    match op {
                        SemOp::Sleep(n) => sleep(ms(n)),
                        SemOp::Yield => yield_now(),
                        SemOp::Take { ask, hold } => {
                            // A wait that may block gets an id, recorded when it begins (only
                            // if no permit is free: then it queues).
                            let id = log.next_wait.get();
                            log.next_wait.set(id + 1);
                            let blocks = sem.locked() && !matches!(ask, Ask::Try);
                            if blocks {
                                log.began.borrow_mut().push(id);
                            }
                            let permit = match ask {
                                Ask::Wait => sem.acquire().ok(),
                                Ask::Patient(n) => sem.acquire_timeout(ms(n)),
                                Ask::Scoped(n) => {
                                    grove::timeout(ms(n), || sem.acquire().ok()).ok().flatten()
                                }
                                Ask::Try => sem.try_acquire(),
                            };
                            let Some(permit) = permit else { continue };
                            if blocks {
                                log.granted.borrow_mut().push(id);
                            }
                            let _h = Holding::new(&log);
                            if hold == 0 {
                                yield_now();
                            } else {
                                sleep(ms(hold));
                            }
                            drop(permit);
                        }
                    }
                }
            })
        })
        .collect();
    let gs = Rc::new(gs);
    let targets = gs.clone();
    let killer = spawn(move || {
        for (at, victim) in kills {
            sleep(ms(at % 50));
            targets[victim].kill_nowait();
        }
    });
    killer.join().unwrap();
    drop(killer);
    for g in Rc::try_unwrap(gs).ok().unwrap() {
        match g.get() {
            Ok(()) | Err(grove::GreenletError::Killed) => {}
            Err(e) => prop_assert!(false, "a greenlet failed or was stranded: {}", e),
        }
    }
    prop_assert!(log.most.get() <= permits, "more holders than permits");
    prop_assert_eq!(log.holders.get(), 0);
    prop_assert_eq!(sem.available(), permits, "every permit came back");
    // FIFO: the granted blocking waits are a subsequence of the order they began in.
    let began = log.began.borrow();
    let pos: HashMap<u64, usize> = began.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let granted: Vec<usize> = log.granted.borrow().iter().map(|id| pos[id]).collect();
    prop_assert!(
        granted.windows(2).all(|w| w[0] < w[1]),
        "waiters were not served in the order they began waiting"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn semaphores_keep_exclusion_conservation_and_fifo_under_timeouts_and_kills(p in sem_program()) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            grove::hub::Builder::new().paused_clock(true).install().unwrap();
            tx.send(run_semaphore(p)).unwrap();
        });
        rx.recv().expect("the run finished")?;
    }
}

// ---- Queues and channels -------------------------------------------------------------------

/// How a producer puts or a consumer gets.
#[derive(Debug, Clone, Copy)]
enum How {
    Block,
    Timeout(u8),
    Scoped(u8),
    Try,
}

#[derive(Debug, Clone, Copy)]
enum QOp {
    /// Put (producers) or get (consumers).
    Go(How),
    Sleep(u8),
    Yield,
}

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(How::Block),
        2 => (1u8..30).prop_map(How::Timeout),
        2 => (1u8..30).prop_map(How::Scoped),
        1 => Just(How::Try),
    ]
}

fn q_op() -> impl Strategy<Value = QOp> {
    prop_oneof![
        6 => how().prop_map(QOp::Go),
        2 => (1u8..10).prop_map(QOp::Sleep),
        1 => Just(QOp::Yield),
    ]
}

/// (capacity: 0 = a rendezvous Channel, 5 = unbounded, else bounded; producers; consumers;
/// kills as (at ms, victim index over producers then consumers)).
type QProgram = (u8, Vec<Vec<QOp>>, Vec<Vec<QOp>>, Vec<(u8, usize)>);

fn q_program() -> impl Strategy<Value = QProgram> {
    (0u8..=5, 50usize..=500, 50usize..=500).prop_flat_map(|(cap, np, nc)| {
        (
            Just(cap),
            prop::collection::vec(prop::collection::vec(q_op(), 1..5), np),
            prop::collection::vec(prop::collection::vec(q_op(), 1..5), nc),
            prop::collection::vec((0u8..100, 0..np + nc), 0..(np + nc) / 4),
        )
    })
}

/// The operations the model drives, over a queue or a channel.
trait Pipe {
    fn put_how(&self, item: u64, how: How) -> Result<(), Option<PutError<u64>>>;
    fn get_how(&self, how: How) -> Result<u64, QueueError>;
    fn try_get(&self) -> Result<u64, QueueError>;
    fn shutdown(&self);
}

macro_rules! pipe_impl {
    ($t:ty) => {
        impl Pipe for $t {
            /// `Err(None)`: a scoped timeout interrupted the put (the item went with the
            /// unwinding closure).
            fn put_how(&self, item: u64, how: How) -> Result<(), Option<PutError<u64>>> {
                match how {
                    How::Block => self.put(item).map_err(Some),
                    How::Timeout(n) => self.put_timeout(item, ms(n)).map_err(Some),
                    How::Try => self.try_put(item).map_err(Some),
                    How::Scoped(n) => match grove::timeout(ms(n), || self.put(item)) {
                        Ok(r) => r.map_err(Some),
                        Err(_) => Err(None),
                    },
                }
            }
            fn get_how(&self, how: How) -> Result<u64, QueueError> {
                match how {
                    How::Block => self.get(),
                    How::Timeout(n) => self.get_timeout(ms(n)),
                    How::Try => self.try_get(),
                    How::Scoped(n) => {
                        grove::timeout(ms(n), || self.get()).unwrap_or(Err(QueueError::TimedOut))
                    }
                }
            }
            fn try_get(&self) -> Result<u64, QueueError> {
                <$t>::try_get(self)
            }
            fn shutdown(&self) {
                <$t>::shutdown(self)
            }
        }
    };
}
pipe_impl!(Queue<u64>);
pipe_impl!(Channel<u64>);

#[derive(Default)]
struct QLog {
    next_item: Cell<u64>,
    /// Items whose put returned Ok, in the order they entered.
    entered: RefCell<Vec<u64>>,
    /// Items handed back by failed puts.
    returned: RefCell<Vec<u64>>,
    /// Per consumer, the items it got, in order.
    got: RefCell<Vec<Vec<u64>>>,
}

fn run_queue((cap, producers, consumers, kills): QProgram) -> Result<(), TestCaseError> {
    let pipe: Rc<dyn Pipe> = match cap {
        0 => Rc::new(Channel::<u64>::new()),
        5 => Rc::new(Queue::<u64>::new()),
        n => Rc::new(Queue::<u64>::bounded(usize::from(n))),
    };
    let log = Rc::new(QLog::default());
    log.got.borrow_mut().resize(consumers.len(), Vec::new());
    let ps: Vec<_> = producers
        .into_iter()
        .map(|ops| {
            let (pipe, log) = (pipe.clone(), log.clone());
            spawn(move || {
                for op in ops {
                    match op {
                        QOp::Sleep(n) => sleep(ms(n)),
                        QOp::Yield => yield_now(),
                        QOp::Go(how) => {
                            let item = log.next_item.get();
                            log.next_item.set(item + 1);
                            match pipe.put_how(item, how) {
                                Ok(()) => log.entered.borrow_mut().push(item),
                                Err(Some(e)) => {
                                    assert_eq!(e.into_item(), item, "a failed put keeps its item");
                                    log.returned.borrow_mut().push(item);
                                }
                                Err(None) => {}
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let cs: Vec<_> = consumers
        .into_iter()
        .enumerate()
        .map(|(c, ops)| {
            let (pipe, log) = (pipe.clone(), log.clone());
            spawn(move || {
                let record = |v: u64| log.got.borrow_mut()[c].push(v);
                for op in ops {
                    match op {
                        QOp::Sleep(n) => sleep(ms(n)),
                        QOp::Yield => yield_now(),
                        QOp::Go(how) => {
                            if let Ok(v) = pipe.get_how(how) {
                                record(v);
                            }
                        }
                    }
                }
                // Then drain until the pipe is shut down.
                while let Ok(v) = pipe.get_how(How::Block) {
                    record(v);
                }
            })
        })
        .collect();
    let np = ps.len();
    let (ps, cs) = (Rc::new(ps), Rc::new(cs));
    let (kp, kc) = (ps.clone(), cs.clone());
    let killer = spawn(move || {
        for (at, v) in kills {
            sleep(ms(at % 40));
            if v < np {
                kp[v].kill_nowait();
            } else {
                kc[v - np].kill_nowait();
            }
        }
    });
    killer.join().unwrap();
    for p in ps.iter() {
        // A producer blocked on a full queue whose consumers were all killed can only end
        // by the shutdown below; give the others an hour of virtual time.
        let _ = p.join_timeout(Duration::from_secs(3600));
    }
    pipe.shutdown();
    drop(killer);
    let all = Rc::try_unwrap(ps)
        .ok()
        .unwrap()
        .into_iter()
        .chain(Rc::try_unwrap(cs).ok().unwrap());
    for g in all {
        match g.get() {
            Ok(()) | Err(grove::GreenletError::Killed) => {}
            Err(e) => prop_assert!(false, "a producer or consumer failed: {}", e),
        }
    }
    let mut left = Vec::new();
    while let Ok(v) = pipe.try_get() {
        left.push(v);
    }
    // No loss, no duplicate: what entered was got exactly once, or is still there.
    let entered = log.entered.borrow();
    let seq: HashMap<u64, usize> = entered.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut out: Vec<u64> = log.got.borrow().iter().flatten().copied().collect();
    out.extend(&left);
    out.sort_unstable();
    let mut want = entered.clone();
    want.sort_unstable();
    prop_assert_eq!(out, want, "items lost or duplicated");
    for v in log.returned.borrow().iter() {
        prop_assert!(!seq.contains_key(v), "a returned item also entered");
    }
    // Each consumer saw items in the order they entered the queue. (A channel has no
    // queue: an offer enters when a getter takes it, so there is no order to compare with.)
    for got in log.got.borrow().iter().filter(|_| cap != 0) {
        let s: Vec<usize> = got.iter().map(|v| seq[v]).collect();
        prop_assert!(
            s.windows(2).all(|w| w[0] < w[1]),
            "a consumer saw items out of order"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn queues_and_channels_neither_lose_nor_duplicate_items(p in q_program()) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            grove::hub::Builder::new().paused_clock(true).install().unwrap();
            tx.send(run_queue(p)).unwrap();
        });
        rx.recv().expect("the run finished")?;
    }
}
