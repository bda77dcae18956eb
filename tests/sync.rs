//! The synchronisation primitives through the public API, under every poller backend:
//! events, async results, semaphores, locks, queues, channels, pools, and the cross-thread
//! channel. Each test states the behaviour a user relies on.

mod common;
use common::each_backend;
use grove::pool::{Group, Pool, PoolError};
use grove::sync::{
    mpsc, AsyncError, AsyncResult, Channel, Event, LifoQueue, Lock, LockError, PriorityQueue,
    QueueError, RLock, Semaphore, WaitError,
};
use grove::wait::{wait_any, Waitable};
use grove::{sleep, spawn, yield_now, GreenletError, Queue};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

fn log() -> Rc<RefCell<Vec<String>>> {
    Rc::new(RefCell::new(Vec::new()))
}

// ---- Event -----------------------------------------------------------------------------------

#[test]
fn waiting_on_an_event_nothing_can_set_is_would_block_forever() {
    each_backend(|_| {
        let ev = Event::new();
        let t = Instant::now();
        assert_eq!(ev.wait(), Err(WaitError::WouldBlockForever));
        assert!(t.elapsed() < Duration::from_secs(5), "not a hang");
        assert!(!ev.wait_timeout(MS), "a timed wait is just false");
        // Set by another greenlet: Ok.
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let setter = spawn(move || e.set());
        assert_eq!(ev.wait(), Ok(()));
        setter.get().unwrap();
    });
}

#[test]
fn event_set_then_clear_at_once_still_wakes_everyone_already_waiting() {
    each_backend(|_| {
        let ev = Rc::new(Event::new());
        let woke = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..5)
            .map(|_| {
                let (ev, woke) = (ev.clone(), woke.clone());
                spawn(move || {
                    ev.wait().unwrap();
                    woke.set(woke.get() + 1);
                })
            })
            .collect();
        sleep(MS); // all five wait
        ev.set();
        ev.clear();
        assert!(!ev.is_set());
        for g in gs {
            g.get().unwrap();
        }
        assert_eq!(woke.get(), 5);
    });
}

#[test]
fn event_wait_timeout_says_whether_it_was_set() {
    each_backend(|_| {
        let ev = Rc::new(Event::new());
        assert!(!ev.wait_timeout(5 * MS));
        let e = ev.clone();
        let setter = spawn(move || {
            sleep(2 * MS);
            e.set()
        });
        assert!(ev.wait_timeout(Duration::from_secs(5)));
        setter.get().unwrap();
        assert!(
            ev.wait_timeout(Duration::ZERO),
            "a set event returns at once"
        );
    });
}

// ---- AsyncResult -----------------------------------------------------------------------------

#[test]
fn async_result_is_set_once_and_every_getter_sees_the_value() {
    each_backend(|_| {
        let r = AsyncResult::new();
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                spawn(move || r.get().unwrap())
            })
            .collect();
        sleep(MS);
        assert!(!r.ready());
        r.set(7).unwrap();
        assert_eq!(r.set(8).unwrap_err().0, 8, "a second set is refused");
        assert!(r.set_error("late").is_err());
        for g in getters {
            assert_eq!(g.get(), Ok(7));
        }
        assert!(r.successful());
    });
}

#[test]
fn async_result_error_and_timeouts() {
    each_backend(|_| {
        let r: AsyncResult<u32> = AsyncResult::new();
        let keep = r.clone(); // another handle: the wait is not hopeless
        assert!(matches!(
            r.get_timeout(2 * MS),
            Err(AsyncError::Wait(WaitError::TimedOut))
        ));
        assert!(!r.wait_timeout(MS));
        keep.set_error("disk on fire").unwrap();
        match r.get() {
            Err(AsyncError::Failed(e)) => assert_eq!(e.to_string(), "disk on fire"),
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(r.ready() && !r.successful());
        let lonely: AsyncResult<u32> = AsyncResult::new();
        assert_eq!(
            lonely.wait(),
            Err(WaitError::WouldBlockForever),
            "nobody else holds it: waiting would block forever"
        );
    });
}

#[test]
fn async_result_set_from_another_thread_wakes_the_waiting_greenlet() {
    each_backend(|_| {
        let r = AsyncResult::new();
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let ticker = spawn(move || {
            for _ in 0..5 {
                sleep(MS);
                t.set(t.get() + 1);
            }
            done_tx.send(()).unwrap();
        });
        let setter = r.clone();
        let th = std::thread::spawn(move || {
            // Sets it only once the ticker has run to its end on the hub, which it can only do
            // while the hub's main greenlet waits cooperatively (no timing involved).
            done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            setter.set(String::from("from a thread")).unwrap();
        });
        let got = grove::timeout(Duration::from_secs(10), || r.get()).expect("woken in time");
        assert_eq!(got.unwrap(), "from a thread");
        assert_eq!(ticks.get(), 5, "other greenlets ran while we waited");
        ticker.get().unwrap();
        th.join().unwrap();
    });
}

#[test]
fn wait_any_sees_an_async_result_set_from_another_thread() {
    each_backend(|_| {
        let r: AsyncResult<()> = AsyncResult::new();
        let ev = Event::new();
        let setter = r.clone();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            setter.set(()).unwrap();
        });
        let which = wait_any(&[&ev as &dyn Waitable, &r], Some(Duration::from_secs(10)));
        assert_eq!(which, Ok(1));
        th.join().unwrap();
    });
}

// ---- Semaphore -------------------------------------------------------------------------------

#[test]
fn semaphore_serves_waiters_in_the_order_they_began_waiting() {
    each_backend(|_| {
        let sem = Rc::new(Semaphore::new(1));
        let order = log();
        let first = sem.try_acquire().expect("one free permit");
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                spawn(move || {
                    let _p = sem.acquire().unwrap();
                    order.borrow_mut().push(format!("g{i}"));
                    yield_now(); // hold it across a switch
                })
            })
            .collect();
        sleep(MS); // all five wait, in spawn order
                   // A newcomer cannot barge in ahead of them.
        assert!(sem.try_acquire().is_none());
        drop(first);
        assert!(sem.try_acquire().is_none(), "the permit went to g0");
        for g in gs {
            g.get().unwrap();
        }
        assert_eq!(*order.borrow(), ["g0", "g1", "g2", "g3", "g4"]);
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn semaphore_try_and_timeout_forms_and_bounded_over_release() {
    each_backend(|_| {
        let sem = Semaphore::new(2);
        let a = sem.try_acquire().unwrap();
        let _b = sem.acquire_timeout(MS).unwrap();
        assert!(sem.locked());
        let t = Instant::now();
        assert!(
            sem.acquire_timeout(5 * MS).is_none(),
            "times out: no permit"
        );
        assert!(t.elapsed() >= 5 * MS);
        drop(a);
        assert_eq!(sem.available(), 1);
        sem.release().unwrap(); // a plain semaphore may grow
        assert_eq!(sem.available(), 2);

        let bounded = Semaphore::bounded(1);
        let err = bounded.release().unwrap_err();
        assert_eq!(err.bound, 1);
        assert!(err
            .to_string()
            .contains("released more times than acquired"));
        let p = bounded.acquire().unwrap();
        p.forget();
        bounded.release().unwrap();
        assert!(bounded.release().is_err());
        assert_eq!(bounded.available(), 1);
    });
}

#[test]
fn a_waiter_killed_or_timed_out_never_swallows_a_permit() {
    each_backend(|_| {
        let sem = Rc::new(Semaphore::new(0));
        let got = Rc::new(Cell::new(0));
        let mk = |patience: Option<Duration>| {
            let (sem, got) = (sem.clone(), got.clone());
            spawn(move || {
                let p = match patience {
                    Some(d) => sem.acquire_timeout(d),
                    None => sem.acquire().ok(),
                };
                if let Some(p) = p {
                    got.set(got.get() + 1);
                    p.forget();
                }
            })
        };
        let impatient = mk(Some(2 * MS));
        let victim = mk(None);
        let patient = mk(None);
        sleep(5 * MS); // impatient has given up
        victim.kill();
        sem.release().unwrap();
        patient.get().unwrap();
        impatient.get().unwrap();
        assert_eq!(
            got.get(),
            1,
            "the one permit went to the one greenlet still waiting"
        );
        assert_eq!(sem.available(), 0);
        assert_eq!(victim.join(), Ok(()));
    });
}

#[test]
fn acquire_that_nothing_could_satisfy_reports_would_block_forever() {
    each_backend(|_| {
        let sem = Semaphore::new(0);
        assert_eq!(sem.acquire().unwrap_err(), WaitError::WouldBlockForever);
        let q: Queue<u8> = Queue::new();
        assert_eq!(q.get().unwrap_err(), QueueError::WouldBlockForever);
    });
}

// ---- Lock and RLock --------------------------------------------------------------------------

#[test]
fn lock_excludes_others_and_only_its_owner_may_unlock() {
    each_backend(|_| {
        let lock = Rc::new(Lock::new());
        let inside = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..10)
            .map(|_| {
                let (lock, inside, most) = (lock.clone(), inside.clone(), most.clone());
                spawn(move || {
                    for _ in 0..3 {
                        let _g = lock.lock().unwrap();
                        inside.set(inside.get() + 1);
                        most.set(most.get().max(inside.get()));
                        sleep(Duration::from_micros(100));
                        inside.set(inside.get() - 1);
                    }
                })
            })
            .collect();
        // A holder that keeps it for a while, spawned last: it queues behind the others.
        let l = lock.clone();
        let holder = spawn(move || {
            let _g = l.lock().unwrap();
            sleep(Duration::from_millis(20));
        });
        grove::timeout(Duration::from_secs(10), || {
            while lock.owner() != Some(holder.id()) {
                sleep(MS / 4);
            }
        })
        .expect("the holder gets the lock");
        match lock.release() {
            Err(LockError::NotOwner {
                owner: Some(o),
                caller,
            }) => {
                assert_eq!(o, holder.id());
                assert_ne!(caller, o);
            }
            other => panic!("main does not own the lock: {other:?}"),
        }
        assert_eq!(
            lock.owner(),
            Some(holder.id()),
            "a refused unlock changes nothing"
        );
        holder.get().unwrap();
        for g in gs {
            g.get().unwrap();
        }
        assert_eq!(most.get(), 1, "never two inside at once");
        assert!(!lock.is_locked());
        assert!(matches!(
            lock.release(),
            Err(LockError::NotOwner { owner: None, .. })
        ));
    });
}

#[test]
fn a_plain_lock_taken_twice_by_its_owner_is_an_error_not_a_hang() {
    each_backend(|_| {
        let lock = Lock::new();
        let _g = lock.lock().unwrap();
        assert!(matches!(lock.lock(), Err(LockError::WouldDeadlock { .. })));
        assert!(lock.try_lock().is_none());
        assert!(lock.lock_timeout(MS).is_none());
    });
}

#[test]
fn rlock_is_reentrant_for_its_owner_and_exclusive_for_others() {
    each_backend(|_| {
        let lock = Rc::new(RLock::new());
        let outer = lock.lock().unwrap();
        let inner = lock.lock().unwrap();
        assert_eq!(lock.depth(), 2);
        let l = lock.clone();
        let other = spawn(move || {
            assert!(l.try_lock().is_none());
            assert!(matches!(l.release(), Err(LockError::NotOwner { .. })));
            let _g = l.lock().unwrap(); // waits for main to release both
            l.depth()
        });
        sleep(MS);
        drop(inner);
        assert!(lock.is_locked(), "one acquisition is still held");
        sleep(MS);
        assert!(!other.ready());
        drop(outer);
        assert_eq!(other.get(), Ok(1));
        assert!(!lock.is_locked());
    });
}

#[test]
fn a_scoped_timeout_interrupts_a_lock_wait() {
    each_backend(|_| {
        let lock = Rc::new(Lock::new());
        let l = lock.clone();
        let holder = spawn(move || {
            let _g = l.lock().unwrap();
            sleep(Duration::from_millis(50));
        });
        sleep(MS);
        let r = grove::timeout(5 * MS, || lock.lock().map(drop));
        assert!(r.is_err(), "the timeout fired inside the wait");
        holder.get().unwrap();
        assert!(
            lock.try_lock().is_some(),
            "the interrupted waiter took nothing"
        );
    });
}

// ---- Queues ----------------------------------------------------------------------------------

#[test]
fn fifo_lifo_and_priority_queues_hand_out_in_their_order() {
    each_backend(|_| {
        let fifo = Queue::new();
        let lifo = LifoQueue::new();
        let prio = PriorityQueue::new();
        for i in [3, 1, 4, 1, 5] {
            fifo.put(i).unwrap();
            lifo.put(i).unwrap();
            prio.put(i).unwrap();
        }
        let drain = |f: &dyn Fn() -> Result<i32, QueueError>| {
            std::iter::from_fn(|| f().ok()).collect::<Vec<_>>()
        };
        assert_eq!(fifo.peek(), Some(3));
        assert_eq!(drain(&|| fifo.try_get()), [3, 1, 4, 1, 5]);
        assert_eq!(lifo.peek(), Some(5));
        assert_eq!(drain(&|| lifo.try_get()), [5, 1, 4, 1, 3]);
        assert_eq!(prio.peek(), Some(5));
        assert_eq!(drain(&|| prio.try_get()), [5, 4, 3, 1, 1]);
        assert_eq!(fifo.try_get(), Err(QueueError::Empty));
    });
}

#[test]
fn a_bounded_queue_makes_putters_wait_and_serves_them_in_order() {
    each_backend(|_| {
        let q = Rc::new(Queue::bounded(2));
        q.put(0).unwrap();
        q.put(1).unwrap();
        assert!(q.is_full());
        assert_eq!(q.try_put(9).unwrap_err().reason(), QueueError::Full);
        let putters: Vec<_> = (2..5)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        sleep(MS); // three putters wait, in order
                   // A newcomer cannot take a slot freed for a waiting putter.
        assert_eq!(q.get(), Ok(0));
        assert_eq!(q.try_put(99).unwrap_err().reason(), QueueError::Full);
        let got: Vec<i32> = (0..4).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        for p in putters {
            p.get().unwrap();
        }
        assert!(q.is_empty());
    });
}

#[test]
fn blocked_getters_receive_items_in_put_order_and_newcomers_never_take_them() {
    each_backend(|_| {
        let q = Rc::new(Queue::new());
        let got = log();
        let getters: Vec<_> = (0..3)
            .map(|i| {
                let (q, got) = (q.clone(), got.clone());
                spawn(move || {
                    let v: i32 = q.get().unwrap();
                    got.borrow_mut().push(format!("g{i}:{v}"));
                })
            })
            .collect();
        sleep(MS);
        for v in 10..13 {
            q.put(v).unwrap();
        }
        assert_eq!(
            q.try_get(),
            Err(QueueError::Empty),
            "all three were handed over"
        );
        for g in getters {
            g.get().unwrap();
        }
        assert_eq!(*got.borrow(), ["g0:10", "g1:11", "g2:12"]);
    });
}

#[test]
fn get_and_put_timeouts_and_no_item_lost_when_a_getter_times_out_or_is_killed() {
    each_backend(|_| {
        let q = Rc::new(Queue::bounded(1));
        let t = Instant::now();
        assert_eq!(q.get_timeout(3 * MS), Err(QueueError::TimedOut));
        assert!(t.elapsed() >= 3 * MS);
        q.put("a").unwrap();
        let e = q.put_timeout("b", 2 * MS).unwrap_err();
        assert_eq!(e.reason(), QueueError::TimedOut);
        assert_eq!(e.into_item(), "b", "a failed put hands its item back");
        assert_eq!(q.get(), Ok("a"));

        let (q1, q2) = (q.clone(), q.clone());
        let impatient = spawn(move || q1.get_timeout(2 * MS));
        let victim = spawn(move || q2.get());
        sleep(5 * MS);
        victim.kill();
        assert_eq!(impatient.get(), Ok(Err(QueueError::TimedOut)));
        q.put("c").unwrap();
        assert_eq!(q.try_get(), Ok("c"), "the item waited for a live getter");
    });
}

#[test]
fn a_kill_after_the_hand_off_does_not_lose_the_item() {
    each_backend(|_| {
        let q = Rc::new(Queue::new());
        let received = log();
        let (q2, r) = (q.clone(), received.clone());
        let getter = spawn(move || {
            let v: &str = q2.get().unwrap();
            r.borrow_mut().push(v.to_string()); // runs: the item was handed over
            sleep(Duration::from_secs(60)); // the kill lands here
        });
        sleep(MS);
        q.put("precious").unwrap(); // handed to the getter, which is woken
        getter.kill_nowait(); // before it runs
        getter.join().unwrap();
        assert_eq!(*received.borrow(), ["precious"]);
        assert!(q.is_empty());
    });
}

#[test]
fn peek_waits_for_an_item_without_taking_it() {
    each_backend(|_| {
        let q = Rc::new(Queue::new());
        let q2 = q.clone();
        let peeker = spawn(move || q2.peek_wait(None));
        sleep(MS);
        q.put(5).unwrap();
        assert_eq!(peeker.get(), Ok(Ok(5)));
        assert_eq!(q.len(), 1, "peek takes nothing");
        let empty: Queue<i32> = Queue::new();
        assert_eq!(empty.peek_wait(Some(MS)), Err(QueueError::TimedOut));
    });
}

#[test]
fn task_done_and_join_track_every_put_item() {
    each_backend(|_| {
        let q = Rc::new(Queue::new());
        let worker = {
            let q = q.clone();
            spawn(move || {
                for _ in 0..3 {
                    let _item: u32 = q.get().unwrap();
                    sleep(MS);
                    q.task_done().unwrap();
                }
            })
        };
        for i in 0..3 {
            q.put(i).unwrap();
        }
        assert_eq!(q.unfinished_tasks(), 3);
        assert!(!q.join_timeout(MS), "not all done yet");
        q.join().unwrap();
        assert_eq!(q.unfinished_tasks(), 0);
        assert_eq!(q.task_done(), Err(QueueError::NoUnfinishedTask));
        worker.get().unwrap();
    });
}

#[test]
fn shutdown_wakes_every_waiter_with_a_clear_error_and_ends_iteration() {
    each_backend(|_| {
        let full = Rc::new(Queue::bounded(1));
        full.put(1).unwrap();
        let empty: Rc<Queue<i32>> = Rc::new(Queue::new());
        let f = full.clone();
        let putter = spawn(move || f.put(2).map_err(|e| (e.reason(), e.into_item())));
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let e = empty.clone();
                spawn(move || e.get())
            })
            .collect();
        let e = empty.clone();
        let iterating = spawn(move || e.iter().count());
        sleep(MS);
        full.shutdown();
        empty.shutdown();
        assert_eq!(putter.get(), Ok(Err((QueueError::ShutDown, 2))));
        for g in getters {
            assert_eq!(g.get(), Ok(Err(QueueError::ShutDown)));
        }
        assert_eq!(iterating.get(), Ok(0));
        // What was queued before the shutdown can still be taken; then it is over.
        assert_eq!(full.get(), Ok(1));
        assert_eq!(full.get(), Err(QueueError::ShutDown));
        assert_eq!(full.put(3).unwrap_err().reason(), QueueError::ShutDown);
        assert!(QueueError::ShutDown.to_string().contains("shut down"));
    });
}

#[test]
fn queues_channels_semaphores_and_locks_work_with_wait_any() {
    each_backend(|_| {
        let q: Rc<Queue<u8>> = Rc::new(Queue::new());
        let ch: Rc<Channel<u8>> = Rc::new(Channel::new());
        let sem = Semaphore::new(0);
        let lock = Lock::new();
        let held = lock.lock().unwrap();
        let objs: [&dyn Waitable; 4] = [&*q, &*ch, &sem, &lock];
        assert_eq!(wait_any(&objs, Some(MS)), Err(WaitError::TimedOut));
        let c = ch.clone();
        let putter = spawn(move || c.put(1).unwrap());
        assert_eq!(wait_any(&objs, Some(Duration::from_secs(5))), Ok(1));
        assert_eq!(ch.get(), Ok(1));
        putter.get().unwrap();
        let q2 = q.clone();
        spawn(move || {
            sleep(MS);
            q2.put(9).unwrap()
        });
        assert_eq!(wait_any(&objs, Some(Duration::from_secs(5))), Ok(0));
        drop(held);
        assert_eq!(wait_any(&objs[2..], Some(MS)), Ok(1));
    });
}

// ---- Channel ---------------------------------------------------------------------------------

#[test]
fn a_channel_put_returns_only_once_a_getter_took_the_item() {
    each_backend(|_| {
        let ch = Rc::new(Channel::new());
        let done = Rc::new(Cell::new(false));
        let (c, d) = (ch.clone(), done.clone());
        let putter = spawn(move || {
            c.put("x").unwrap();
            d.set(true);
        });
        sleep(5 * MS);
        assert!(!done.get(), "nobody took it yet");
        assert_eq!(ch.waiting_putters(), 1);
        assert_eq!(ch.get(), Ok("x"));
        putter.get().unwrap();
        assert!(done.get());
        assert_eq!(
            ch.try_put("y").unwrap_err().reason(),
            QueueError::Full,
            "no getter waits"
        );
    });
}

#[test]
fn a_channel_put_that_times_out_takes_its_item_back() {
    each_backend(|_| {
        let ch: Channel<String> = Channel::new();
        let e = ch.put_timeout("lonely".into(), 2 * MS).unwrap_err();
        assert_eq!(e.reason(), QueueError::TimedOut);
        assert_eq!(e.into_item(), "lonely");
        assert_eq!(
            ch.try_get(),
            Err(QueueError::Empty),
            "nothing was left behind"
        );
        assert_eq!(ch.get_timeout(MS), Err(QueueError::TimedOut));
    });
}

#[test]
fn a_killed_channel_putter_leaves_no_offer_behind() {
    each_backend(|_| {
        let ch = Rc::new(Channel::new());
        let c = ch.clone();
        let putter = spawn(move || c.put(1).unwrap());
        sleep(MS);
        putter.kill();
        assert_eq!(ch.waiting_putters(), 0);
        assert_eq!(ch.try_get(), Err(QueueError::Empty));
    });
}

#[test]
fn channel_shutdown_gives_putters_their_items_back() {
    each_backend(|_| {
        let ch = Rc::new(Channel::new());
        let c = ch.clone();
        let putter = spawn(move || c.put(5).map_err(|e| (e.reason(), e.into_item())));
        sleep(MS);
        assert_eq!(ch.waiting_putters(), 1);
        ch.shutdown();
        let c = ch.clone();
        let getter_after = spawn(move || c.get());
        assert_eq!(putter.get(), Ok(Err((QueueError::ShutDown, 5))));
        assert_eq!(getter_after.get(), Ok(Err(QueueError::ShutDown)));
    });
}

// ---- Cross-thread channel ---------------------------------------------------------------------

#[test]
fn an_mpsc_receiver_waits_cooperatively_for_senders_on_other_threads() {
    each_backend(|_| {
        let (tx, rx) = mpsc::channel();
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let ticker = spawn(move || {
            for _ in 0..3 {
                sleep(MS);
                t.set(t.get() + 1);
            }
            done_tx.send(()).unwrap();
        });
        let th = std::thread::spawn(move || {
            // Sends only once the ticker has run to its end on the hub (see above).
            done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first, 0);
        assert_eq!(ticks.get(), 3, "the hub ran other greenlets meanwhile");
        let rest: Vec<i32> = rx.iter().collect(); // ends when the sender is gone
        assert_eq!(rest, (1..100).collect::<Vec<_>>());
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
        ticker.get().unwrap();
        th.join().unwrap();
    });
}

#[test]
fn mpsc_timeouts_disconnects_and_a_gone_receiver() {
    each_backend(|_| {
        let (tx, rx) = mpsc::channel::<u8>();
        assert_eq!(
            rx.recv_timeout(2 * MS),
            Err(mpsc::RecvError::Wait(WaitError::TimedOut))
        );
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        let tx2 = tx.clone();
        drop(tx);
        tx2.send(1).unwrap();
        drop(tx2);
        assert_eq!(rx.recv(), Ok(1), "the backlog outlives the senders");
        assert_eq!(rx.recv(), Err(mpsc::RecvError::Disconnected));
        let (tx, rx) = mpsc::channel();
        drop(rx);
        assert_eq!(tx.send(5).unwrap_err().0, 5);
    });
}

#[test]
fn two_hubs_on_two_threads_play_ping_pong_through_mpsc() {
    each_backend(|backend| {
        let (to_b, from_a) = mpsc::channel::<u32>();
        let (to_a, from_b) = mpsc::channel::<u32>();
        let b = std::thread::spawn(move || {
            grove::hub::use_backend(backend).unwrap();
            // Hub B serves from a greenlet of its own, while its main greenlet joins it.
            let g = spawn(move || {
                while let Ok(v) = from_a.recv() {
                    to_a.send(v + 1).unwrap();
                }
            });
            g.get().unwrap();
        });
        let mut v = 0;
        for _ in 0..1000 {
            to_b.send(v).unwrap();
            v = from_b.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(v, 1000);
        drop(to_b);
        b.join().unwrap();
    });
}

// ---- Pool and Group --------------------------------------------------------------------------

#[test]
fn a_pool_runs_at_most_its_size_and_spawn_waits_while_it_is_full() {
    each_backend(|_| {
        let pool = Pool::new(3);
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..10)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                pool.spawn(move || {
                    running.set(running.get() + 1);
                    most.set(most.get().max(running.get()));
                    sleep(MS);
                    running.set(running.get() - 1);
                    i
                })
                .unwrap()
            })
            .collect();
        assert!(pool.len() <= 3);
        let done: Vec<i32> = gs.into_iter().map(|g| g.get().unwrap()).collect();
        assert_eq!(done, (0..10).collect::<Vec<_>>());
        assert_eq!(most.get(), 3);
        assert!(pool.join(Some(Duration::from_secs(5))));
        assert_eq!(pool.free_count(), 3);
    });
}

#[test]
fn pool_add_and_spawn_with_a_timeout_fail_with_pool_full() {
    each_backend(|_| {
        let pool = Pool::new(1);
        let busy = pool.spawn(|| sleep(Duration::from_millis(30))).unwrap();
        assert!(pool.is_full());
        assert_eq!(pool.free_count(), 0);
        let outsider = spawn(|| sleep(Duration::from_millis(200)));
        let t = Instant::now();
        match pool.add(&outsider, Some(3 * MS)) {
            Err(PoolError::Full { size: 1 }) => {}
            other => panic!("expected PoolFull, got {other:?}"),
        }
        assert!(t.elapsed() >= 3 * MS);
        assert!(!pool.contains(&outsider));
        assert!(matches!(pool.try_spawn(|| ()), Err(PoolError::Full { .. })));
        assert!(!pool.wait_available(Some(MS)));
        assert!(pool.wait_available(Some(Duration::from_secs(5))));
        busy.get().unwrap();
        pool.add(&outsider, None).unwrap();
        assert!(pool.contains(&outsider));
        assert!(pool.is_full());
        outsider.join().unwrap();
        assert!(!pool.contains(&outsider), "a finished member leaves");
        assert_eq!(pool.free_count(), 1);
    });
}

#[test]
fn a_member_that_panics_or_is_killed_gives_its_slot_back() {
    each_backend(|_| {
        grove::set_panic_hook(|_| {});
        let pool = Pool::new(1);
        let bad = pool.spawn(|| panic!("boom")).unwrap();
        assert!(matches!(bad.join().map(|_| bad.successful()), Ok(false)));
        let sleeper = pool.spawn(|| sleep(Duration::from_secs(60))).unwrap();
        sleep(MS);
        assert!(pool.kill(Some(Duration::from_secs(5))));
        assert_eq!(sleeper.get(), Err(GreenletError::Killed));
        assert_eq!(pool.free_count(), 1);
        assert!(pool.is_empty());
        grove::reset_panic_hook();
    });
}

#[test]
fn map_keeps_input_order_and_reports_the_first_failure() {
    each_backend(|_| {
        let pool = Pool::new(4);
        let out = pool
            .map(
                |i: u64| {
                    sleep(Duration::from_micros(100 * (10 - i)));
                    i * 10
                },
                0..10,
            )
            .unwrap();
        assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        grove::set_panic_hook(|_| {});
        let r = pool.map(
            |i: u32| {
                if i == 3 {
                    panic!("three")
                }
                i
            },
            0..6,
        );
        grove::reset_panic_hook();
        assert!(matches!(r, Err(GreenletError::Panicked { message }) if message == "three"));
    });
}

#[test]
fn imap_is_lazy_and_ordered() {
    each_backend(|_| {
        let pool = Pool::new(2);
        let started = Rc::new(Cell::new(0));
        let s = started.clone();
        let mut it = pool.imap(
            move |i: u32| {
                s.set(s.get() + 1);
                sleep(Duration::from_micros(200 * u64::from(5 - i)));
                i
            },
            0..5,
        );
        sleep(MS);
        assert_eq!(started.get(), 0, "nothing starts before the first next()");
        assert_eq!(it.next(), Some(Ok(0)));
        assert!(
            started.get() <= 3,
            "at most the pool's size ahead: {}",
            started.get()
        );
        let rest: Vec<u32> = it.map(Result::unwrap).collect();
        assert_eq!(rest, [1, 2, 3, 4]);
    });
}

#[test]
fn imap_unordered_yields_in_completion_order_with_bounded_work_ahead() {
    each_backend(|_| {
        let pool = Pool::new(10);
        let started = Rc::new(Cell::new(0));
        let s = started.clone();
        let it = pool.imap_unordered(
            move |ms: u64| {
                s.set(s.get() + 1);
                sleep(Duration::from_millis(ms));
                ms
            },
            [30u64, 10, 20, 1, 1, 1, 1, 1],
            3,
        );
        let mut it = it.peekable();
        let first = it.next().unwrap().unwrap();
        assert_eq!(first, 10, "the quickest of the first three");
        sleep(Duration::from_millis(40)); // a slow consumer
        assert!(
            started.get() <= 4,
            "at most 3 running or finished but not consumed: {} started",
            started.get()
        );
        let mut rest: Vec<u64> = it.map(Result::unwrap).collect();
        rest.sort();
        assert_eq!(rest, [1, 1, 1, 1, 1, 20, 30]);
    });
}

#[test]
fn a_group_has_no_limit_and_joins_or_kills_its_members() {
    each_backend(|_| {
        let group = Group::new();
        let gs: Vec<_> = (0..50)
            .map(|_| group.spawn(|| sleep(Duration::from_secs(60))).unwrap())
            .collect();
        assert_eq!(group.len(), 50);
        assert_eq!(group.size(), None);
        assert!(!group.join(Some(MS)));
        assert!(group.kill(Some(Duration::from_secs(5))));
        assert!(group.is_empty());
        for g in gs {
            assert_eq!(g.get(), Err(GreenletError::Killed));
        }
        let g = group.spawn(|| 1).unwrap();
        group.discard(&g);
        assert!(group.is_empty());
        assert_eq!(g.get(), Ok(1), "discard does not kill");
    });
}
