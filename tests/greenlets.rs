//! gevent.Greenlet's API through grove's public API, under every poller backend: kill, links,
//! spawn_later, joinall/killall, wait_any/iwait, scoped timeouts, greenlet-local storage,
//! introspection, the panic hook and the blocking monitor.

mod common;
use common::{each_backend, paused};
use grove::debug::{run_info, GreenletState};
use grove::sync::WaitError;
use grove::{
    iwait, joinall, killall, sleep, spawn, spawn_later, timeout, wait_any, yield_now, Event,
    GreenletError, Waitable,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts drops: proves destructors ran.
struct Guard(Rc<Cell<u32>>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

const LONG: Duration = Duration::from_secs(600);

#[test]
fn kill_unwinds_a_parked_greenlet_and_runs_its_destructors() {
    each_backend(|_| {
        let drops = Rc::new(Cell::new(0));
        let after = Rc::new(Cell::new(false));
        let (d, a) = (drops.clone(), after.clone());
        let g = spawn(move || {
            let _guard = Guard(d);
            sleep(LONG);
            a.set(true); // never reached
        });
        yield_now(); // it starts and parks in sleep
        let t = Instant::now();
        g.kill();
        assert!(t.elapsed() < Duration::from_secs(5), "kill blocked");
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1, "the destructor ran once");
        assert!(!after.get());
        g.kill(); // killing twice is harmless
        g.kill_nowait();
        assert_eq!(g.get(), Err(GreenletError::Killed));
    });
}

#[test]
fn killing_a_not_started_greenlet_skips_its_body_but_fires_its_links() {
    each_backend(|_| {
        let ran = Rc::new(Cell::new(false));
        let linked = Rc::new(RefCell::new(None));
        let r = ran.clone();
        let g = spawn(move || r.set(true));
        let l = linked.clone();
        g.link(move |res| *l.borrow_mut() = Some(res.clone()));
        g.kill();
        assert!(!ran.get(), "the body never ran");
        assert_eq!(*linked.borrow(), Some(Err(GreenletError::Killed)));
        // The same for a delayed start: the kill does not wait for the delay.
        let r = ran.clone();
        let later = spawn_later(LONG, move || r.set(true));
        let t = Instant::now();
        assert!(later.kill_timeout(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!ran.get());
    });
}

#[test]
fn kill_timeout_reports_a_greenlet_that_refuses_to_die() {
    each_backend(|_| {
        let g = spawn(|| {
            // Catches the kill and keeps going for a while.
            let r = std::panic::catch_unwind(|| sleep(LONG));
            assert!(r.is_err());
            sleep(Duration::from_millis(100));
            "survived"
        });
        yield_now();
        assert!(!g.kill_timeout(Duration::from_millis(10)));
        assert!(!g.is_dead());
        assert_eq!(g.get(), Ok("survived"));
    });
}

#[test]
fn a_greenlet_can_kill_itself_and_cannot_join_itself() {
    each_backend(|_| {
        let slot: Rc<RefCell<Option<grove::Greenlet<()>>>> = Rc::default();
        let s = slot.clone();
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        let g = spawn(move || {
            let s = s.borrow();
            let me = s.as_ref().unwrap();
            *o.borrow_mut() = Some(me.join());
            me.kill_nowait();
            unreachable!("killing yourself unwinds at once");
        });
        *slot.borrow_mut() = Some(g);
        let r = slot.borrow().as_ref().unwrap().join();
        assert!(r.is_ok());
        let g = slot.borrow_mut().take().unwrap();
        assert_eq!(g.get(), Err(GreenletError::Killed));
        assert_eq!(*out.borrow(), Some(Err(GreenletError::WouldBlockForever)));
    });
}

#[test]
fn links_fire_once_each_in_order_and_filter_by_outcome() {
    each_backend(|_| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let ok = spawn(|| 5);
        let bad = spawn(|| -> i32 { panic!("boom") });
        for (g, tag) in [(&ok, "ok"), (&bad, "bad")] {
            let l = log.clone();
            g.link(move |_| l.borrow_mut().push(format!("{tag}:any1")));
            let l = log.clone();
            g.link_value(move |v| l.borrow_mut().push(format!("{tag}:value {v}")));
            let l = log.clone();
            g.link_error(move |e| l.borrow_mut().push(format!("{tag}:error {e}")));
            let l = log.clone();
            g.link(move |_| l.borrow_mut().push(format!("{tag}:any2")));
        }
        // A panicking link is contained and does not stop the others.
        ok.link(|_| panic!("a bad link"));
        let l = log.clone();
        ok.link(move |_| l.borrow_mut().push("ok:after-bad-link".into()));
        assert!(joinall(&[ok, bad], Some(Duration::from_secs(5))).is_ok());
        assert_eq!(
            *log.borrow(),
            [
                "ok:any1",
                "ok:value 5",
                "ok:any2",
                "ok:after-bad-link",
                "bad:any1",
                "bad:error greenlet panicked: boom",
                "bad:any2",
            ]
        );
        // Linking to a finished greenlet runs the link at once.
        let done = spawn(|| 1);
        done.join().unwrap();
        let hit = Rc::new(Cell::new(false));
        let h = hit.clone();
        done.link_value(move |v| h.set(*v == 1));
        assert!(hit.get());
    });
}

#[test]
fn spawn_later_starts_after_the_delay_in_deadline_order() {
    each_backend(|_| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let t0 = Instant::now();
        let mk = |tag: &'static str| {
            let l = log.clone();
            move || l.borrow_mut().push((tag, t0.elapsed()))
        };
        let b = spawn_later(Duration::from_millis(40), mk("b"));
        let a = spawn_later(Duration::from_millis(20), mk("a"));
        let now = spawn(mk("now"));
        assert!(joinall(&[b, a, now], Some(Duration::from_secs(5))).is_ok());
        let log = log.borrow();
        let tags: Vec<_> = log.iter().map(|e| e.0).collect();
        assert_eq!(tags, ["now", "a", "b"]);
        assert!(log[1].1 >= Duration::from_millis(20));
        assert!(log[2].1 >= Duration::from_millis(40));
    });
}

#[test]
fn joinall_and_killall_over_many() {
    each_backend(|_| {
        let drops = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..50)
            .map(|_| {
                let d = drops.clone();
                spawn(move || {
                    let _g = Guard(d);
                    sleep(LONG)
                })
            })
            .collect();
        assert_eq!(
            joinall(&gs, Some(Duration::from_millis(10))),
            Err(WaitError::TimedOut),
            "they sleep"
        );
        assert!(killall(&gs, Some(Duration::from_secs(5))));
        assert_eq!(drops.get(), 50);
        assert!(gs.iter().all(|g| g.is_dead()));
    });
}

#[test]
fn iwait_yields_in_the_order_things_became_ready() {
    each_backend(|_| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let slow = spawn(|| sleep(Duration::from_millis(30)));
        let fast = spawn(|| sleep(Duration::from_millis(5)));
        let setter = spawn(move || {
            sleep(Duration::from_millis(15));
            e.set();
        });
        let objs: [&dyn Waitable; 3] = [&slow, &*ev, &fast];
        let order: Vec<usize> = iwait(&objs, Some(Duration::from_secs(5))).collect();
        assert_eq!(order, [2, 1, 0]);
        setter.get().unwrap();
        // Those ready already come first, in list order.
        let order: Vec<usize> = iwait(&objs, None).collect();
        assert_eq!(order, [0, 1, 2]);
    });
}

#[test]
fn wait_any_times_out_or_returns_the_first_ready() {
    each_backend(|_| {
        let never = Event::new();
        let t = Instant::now();
        for _ in 0..1000 {
            assert_eq!(
                wait_any(&[&never], Some(Duration::ZERO)),
                Err(WaitError::TimedOut)
            );
        }
        assert_eq!(
            wait_any(&[&never], Some(Duration::from_millis(10))),
            Err(WaitError::TimedOut)
        );
        assert!(t.elapsed() >= Duration::from_millis(10));
        let ready = Event::new();
        ready.set();
        assert_eq!(wait_any(&[&never, &ready], None), Ok(1));
        // Nothing could ever set `never`: LoopExit, said as an error, and said by all three.
        assert_eq!(wait_any(&[&never], None), Err(WaitError::WouldBlockForever));
        let mut it = iwait(&[&ready, &never], None);
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next(), None);
        assert_eq!(it.ended_by(), Some(WaitError::WouldBlockForever));
        let stuck = spawn(move || never.wait());
        assert_eq!(joinall(&[stuck], None), Err(WaitError::WouldBlockForever));
    });
}

#[test]
fn timeout_interrupts_any_blocking_call_and_runs_destructors() {
    each_backend(|_| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let t = Instant::now();
        let r = timeout(Duration::from_millis(20), move || {
            let _g = Guard(d);
            sleep(LONG);
        });
        let e = r.unwrap_err();
        assert_eq!(e.duration(), Duration::from_millis(20));
        assert!(e.to_string().contains("timed out"));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(drops.get(), 1);

        // A join, an event wait and an fd wait are interrupted the same way.
        let sleeper = spawn(|| sleep(LONG));
        assert!(timeout(Duration::from_millis(5), || sleeper.join()).is_err());
        let ev = Event::new();
        assert!(timeout(Duration::from_millis(5), || ev.wait()).is_err());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let fd = a.as_raw_fd();
        assert!(timeout(Duration::from_millis(5), || grove::wait_readable(fd, None)).is_err());
        // The fd is no longer watched: waiting on it again works.
        assert!(grove::wait_readable(fd, Some(Duration::from_millis(1))).is_err());
        sleeper.kill();

        // Finishing in time gives the value; the timer is gone afterwards.
        assert_eq!(timeout(Duration::from_millis(50), || 7), Ok(7));
        sleep(Duration::from_millis(60)); // a stale timeout must not fire here
    });
}

#[test]
fn nested_timeouts_report_the_one_that_fired_and_never_lose_the_outer() {
    paused(|| {
        // The inner one fires: only it returns Err; the outer scope goes on.
        let r = timeout(Duration::from_secs(10), || {
            let inner = timeout(Duration::from_secs(1), || sleep(LONG));
            assert!(inner.is_err());
            "outer finished"
        });
        assert_eq!(r, Ok("outer finished"));

        // The outer one fires while the inner is blocked: the inner does not swallow it.
        let reached = Cell::new(false);
        let r = timeout(Duration::from_secs(1), || {
            let _ = timeout(Duration::from_secs(10), || sleep(LONG));
            reached.set(true);
        });
        assert!(r.is_err());
        assert!(
            !reached.get(),
            "the outer unwind passed through the inner scope"
        );

        // Both due at the same instant: the outer one wins.
        let r = timeout(Duration::from_secs(1), || {
            let inner = timeout(Duration::from_secs(1), || sleep(LONG));
            reached.set(inner.is_err());
        });
        assert!(r.is_err());
    });
}

#[test]
fn a_kill_beats_a_timeout_inside_the_victim() {
    each_backend(|_| {
        let g = spawn(|| timeout(Duration::from_secs(60), || sleep(LONG)));
        yield_now();
        g.kill();
        assert_eq!(g.get(), Err(GreenletError::Killed));
    });
}

#[test]
fn zero_and_huge_durations_are_clamped_never_a_panic() {
    paused(|| {
        assert!(timeout(Duration::ZERO, || sleep(LONG)).is_err());
        assert_eq!(timeout(Duration::MAX, || 1), Ok(1));
        let g = spawn(|| sleep(Duration::MAX));
        yield_now();
        assert!(!g.join_timeout(Duration::from_secs(1)).unwrap());
        g.kill();
        let ev = Event::new();
        assert!(!ev.wait_timeout(Duration::from_secs(3600 * 24 * 365)));
    });
}

#[test]
fn paused_clock_runs_hours_of_sleeps_at_once_in_deadline_order() {
    paused(|| {
        let t = Instant::now();
        let log = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = [5u64, 1, 3, 2, 4]
            .into_iter()
            .map(|h| {
                let l = log.clone();
                spawn(move || {
                    sleep(Duration::from_secs(3600 * h));
                    l.borrow_mut().push(h);
                })
            })
            .collect();
        assert!(joinall(&gs, None).is_ok());
        assert_eq!(*log.borrow(), [1, 2, 3, 4, 5]);
        assert!(t.elapsed() < Duration::from_secs(30));
    });
}

grove::greenlet_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static DROPS_SEEN: RefCell<Option<Guard>> = RefCell::new(None);
}

#[test]
fn greenlet_locals_are_per_greenlet_and_drop_when_it_ends() {
    each_backend(|_| {
        COUNTER.with(|c| c.set(100));
        let drops = Rc::new(Cell::new(0));
        let gs: Vec<_> = (1..=3)
            .map(|i| {
                let d = drops.clone();
                spawn(move || {
                    DROPS_SEEN.with(|s| *s.borrow_mut() = Some(Guard(d)));
                    for _ in 0..i {
                        COUNTER.with(|c| c.set(c.get() + 1));
                        yield_now(); // interleave with the others
                    }
                    COUNTER.with(|c| c.get())
                })
            })
            .collect();
        let got: Vec<u32> = gs.into_iter().map(|g| g.get().unwrap()).collect();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(
            drops.get(),
            3,
            "each greenlet's value dropped when it ended"
        );
        assert_eq!(COUNTER.with(|c| c.get()), 100, "main's value untouched");
    });
}

/// `run_info` tells how long a sleeper has left from its timer, armed or not yet, however
/// long ago the hub last read its clock.
#[test]
fn run_info_tells_a_sleepers_time_left_from_its_timer() {
    each_backend(|_| {
        let remaining = |id: u64| {
            let info = run_info();
            match info.greenlets.iter().find(|g| g.id == id).map(|g| &g.state) {
                Some(GreenletState::Sleeping { remaining }) => *remaining,
                other => panic!("greenlet {id}: {other:?} in {info}"),
            }
        };
        // The hub reads no clock while it has no timer: this leaves its last reading stale.
        yield_now(); // the hub is made and runs
        std::thread::sleep(Duration::from_millis(300));
        let g = spawn(|| sleep(Duration::from_secs(1)));
        yield_now(); // g runs up to its sleep, whose timer the turn has not armed yet
        let left = remaining(g.id());
        assert!(left > Duration::from_millis(900), "unarmed: {left:?} left");
        yield_now(); // the turn ended: armed
        let left = remaining(g.id());
        assert!(
            left > Duration::from_millis(800) && left <= Duration::from_secs(1),
            "armed: {left:?} left"
        );
        g.kill();
    });
}

#[test]
fn run_info_shows_every_greenlet_its_state_and_the_spawn_tree() {
    each_backend(|_| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let parent = grove::Builder::new()
            .name("parent")
            .spawn(move || {
                let child = grove::Builder::new()
                    .name("child")
                    .spawn(|| sleep(LONG))
                    .unwrap();
                e.wait().unwrap();
                child.kill();
            })
            .unwrap();
        let waiter = grove::Builder::new()
            .name("waiter")
            .spawn(|| sleep(Duration::from_millis(1)))
            .unwrap();
        let fresh = spawn(|| ());
        sleep(Duration::ZERO); // parent, waiter start; the child is spawned
        sleep(Duration::ZERO); // the child starts
        let info = run_info();
        let find = |name: &str| {
            info.greenlets
                .iter()
                .find(|g| g.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from {info}"))
        };
        assert_eq!(find("main").state, GreenletState::Running);
        assert_eq!(find("parent").state, GreenletState::Waiting("Event::wait"));
        assert!(
            matches!(find("child").state, GreenletState::Sleeping { remaining } if remaining > Duration::from_secs(60))
        );
        assert_eq!(find("child").spawner, Some(parent.id()));
        assert!(find("parent")
            .spawned_at
            .unwrap()
            .file()
            .ends_with("greenlets.rs"));
        let _ = &fresh;
        let text = info.to_string();
        let parent_line = text.lines().position(|l| l.contains("(parent)")).unwrap();
        let child_line = text.lines().position(|l| l.contains("(child)")).unwrap();
        assert!(
            child_line > parent_line && text.lines().nth(child_line).unwrap().starts_with("  "),
            "{text}"
        );
        ev.set();
        parent.get().unwrap();
        waiter.get().unwrap();
        // Finished greenlets leave the report.
        assert!(run_info()
            .greenlets
            .iter()
            .all(|g| g.name.as_deref() != Some("child")));
    });
}

#[test]
fn a_panic_is_reported_once_through_the_replaceable_hook() {
    static REPORTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::spawn(|| {
        grove::set_panic_hook(|r| {
            if std::thread::current().name() == Some("hook-test") {
                REPORTS.lock().unwrap().push(r.to_string());
            }
        });
        let g = grove::Builder::new()
            .name("doomed")
            .spawn(|| -> u8 { panic!("kaboom") })
            .unwrap();
        let fine = spawn(|| 1);
        assert_eq!(
            g.get(),
            Err(GreenletError::Panicked {
                message: "kaboom".into()
            })
        );
        assert_eq!(fine.get(), Ok(1), "other greenlets are unaffected");
        grove::reset_panic_hook();
    })
    // Joined before the next part sets its own hook (the hook is process-wide), and so that
    // this part's assertions count.
    .join()
    .unwrap();
    std::thread::Builder::new()
        .name("hook-test".into())
        .spawn(|| {
            grove::set_panic_hook(|r| REPORTS.lock().unwrap().push(r.to_string()));
            let g = grove::Builder::new()
                .name("doomed")
                .spawn(|| -> u8 { panic!("kaboom") })
                .unwrap();
            let _ = g.get();
            grove::reset_panic_hook();
        })
        .unwrap()
        .join()
        .unwrap();
    let reports = REPORTS.lock().unwrap();
    let mine: Vec<_> = reports.iter().filter(|r| r.contains("kaboom")).collect();
    assert!(!mine.is_empty());
    let r = mine[0];
    assert!(
        r.contains("(doomed) panicked at tests/greenlets.rs:"),
        "{r}"
    );
    assert!(r.contains("spawned at tests/greenlets.rs:"), "{r}");
}

#[test]
fn the_monitor_reports_a_greenlet_that_hogs_the_hub_once_per_incident() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    std::thread::spawn(move || {
        let cfg = grove::hub::MonitorConfig::new(Duration::from_millis(50))
            .report_with(move |rep| r.lock().unwrap().push(rep.clone()));
        grove::hub::Builder::new()
            .monitor_with(cfg)
            .install()
            .unwrap();
        // A well-behaved greenlet: yields often, never reported.
        let polite = grove::Builder::new()
            .name("polite")
            .spawn(|| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(100) {
                    sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
        polite.get().unwrap();
        // A hog: 300 ms without yielding.
        let hog = grove::Builder::new()
            .name("hog")
            .spawn(|| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(300) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        hog.get().unwrap();
        sleep(Duration::from_millis(100));
    })
    .join()
    .unwrap();
    let reports = reports.lock().unwrap();
    let hog: Vec<_> = reports
        .iter()
        .filter(|r| r.name.as_deref() == Some("hog"))
        .collect();
    assert_eq!(hog.len(), 1, "one report per incident: {reports:?}");
    assert!(
        reports.iter().all(|r| r.name.as_deref() != Some("polite")),
        "{reports:?}"
    );
    let rep = hog[0];
    assert!(rep.spawned_at.unwrap().file().ends_with("greenlets.rs"));
    assert!(rep.running_for >= Duration::from_millis(50));
    assert!(rep.to_string().contains("hog"));
}

#[test]
fn current_names_the_running_greenlet_and_outside_any_the_main_one() {
    each_backend(|_| {
        let main = grove::current();
        assert!(main.is_main());
        assert_eq!(main.name(), None);
        assert_eq!(main.spawned_at(), None);
        assert_eq!(grove::current(), main, "the same greenlet, asked twice");
        let main_id = main.id();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let seen = seen.clone();
                grove::Builder::new()
                    .name(name)
                    .spawn(move || {
                        let before = grove::current();
                        yield_now(); // still itself after others ran
                        let after = grove::current();
                        assert_eq!(before, after);
                        seen.borrow_mut().push((
                            after.id(),
                            after.name().map(String::from),
                            after.is_main(),
                            after.spawned_at().is_some(),
                        ));
                    })
                    .unwrap()
            })
            .collect();
        let anonymous = spawn(|| grove::current().name().map(String::from));
        let want: Vec<_> = gs
            .iter()
            .map(|g| (g.id(), g.name().map(String::from), false, true))
            .collect();
        for g in gs {
            g.get().unwrap();
        }
        assert_eq!(anonymous.get().unwrap(), None);
        assert_eq!(*seen.borrow(), want);
        assert!(want.iter().all(|w| w.0 != main_id));
        assert_eq!(grove::current().id(), main_id);
    });
}
