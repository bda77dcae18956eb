//! Raw greenlets through the public API: values both ways, parents, states, panics, throw and
//! kill-on-drop, custom stacks.

use grove::greenlet::{Greenlet, GreenletExit, State, SwitchError, Value};
use std::cell::RefCell;
use std::rc::Rc;

fn val<T: 'static>(v: T) -> Value {
    Box::new(v)
}

fn get<T: 'static + Copy>(v: Value) -> T {
    *v.downcast::<T>().expect("value of the expected type")
}

#[test]
fn switch_passes_values_both_ways_and_result_goes_to_parent() {
    let main = Greenlet::current();
    assert!(main.is_main());
    let g = Greenlet::new(move |first| {
        let a: i32 = get(first);
        let b: i32 = get(main.switch(val(a * 2)).unwrap());
        let c: i32 = get(main.switch(val(a + b)).unwrap());
        val(format!("done {c}"))
    })
    .unwrap();
    assert_eq!(g.state(), State::NotStarted);
    assert_eq!(get::<i32>(g.switch(val(21)).unwrap()), 42);
    assert_eq!(g.state(), State::Suspended);
    assert_eq!(get::<i32>(g.switch(val(1)).unwrap()), 22);
    let end = g.switch(val(7)).unwrap();
    assert_eq!(*end.downcast::<String>().unwrap(), "done 7");
    assert_eq!(g.state(), State::Finished);
    assert!(g.is_dead());
    assert!(matches!(g.switch(val(0)), Err(SwitchError::Dead)));
}

#[test]
fn current_and_state_inside_a_greenlet() {
    let g = Greenlet::builder()
        .name("worker")
        .build(|_| {
            let me = Greenlet::current();
            assert_eq!(me.state(), State::Running);
            val((
                me.id(),
                me.name().map(String::from),
                me.parent().unwrap().is_main(),
            ))
        })
        .unwrap();
    let id = g.id();
    let (seen_id, name, parent_is_main) = *g
        .switch(val(()))
        .unwrap()
        .downcast::<(u64, Option<String>, bool)>()
        .unwrap();
    assert_eq!(seen_id, id);
    assert_eq!(name.as_deref(), Some("worker"));
    assert!(parent_is_main);
    assert_eq!(Greenlet::current().state(), State::Running);
}

#[test]
fn switching_to_yourself_returns_the_value() {
    let me = Greenlet::current();
    assert_eq!(get::<u8>(me.switch(val(9u8)).unwrap()), 9);
}

#[test]
fn finishing_returns_to_the_parent_not_the_resumer() {
    // a is the parent of b; main resumes b directly; b's result must go to a.
    let log = Rc::new(RefCell::new(Vec::new()));
    let main = Greenlet::current();
    let l = log.clone();
    let m = main.clone();
    let a = Greenlet::new(move |_| {
        let l2 = l.clone();
        let b = Greenlet::new(move |v| {
            l2.borrow_mut().push(format!("b got {}", get::<i32>(v)));
            val(100)
        })
        .unwrap();
        // Hand b to main, then wait: b's result arrives here when b finishes.
        let from_b = m.switch(val(b)).unwrap();
        l.borrow_mut().push(format!("a got {}", get::<i32>(from_b)));
        val(1)
    })
    .unwrap();
    let b = *a.switch(val(())).unwrap().downcast::<Greenlet>().unwrap();
    assert_eq!(b.parent().unwrap(), a);
    // main -> b; b finishes -> a (its parent) -> a finishes -> main (a's parent).
    let end = b.switch(val(5)).unwrap();
    assert_eq!(get::<i32>(end), 1);
    assert_eq!(
        *log.borrow(),
        vec!["b got 5".to_string(), "a got 100".to_string()]
    );
    assert!(a.is_dead() && b.is_dead());
}

#[test]
fn a_panic_is_caught_and_handed_to_the_parent() {
    let g = Greenlet::builder()
        .name("doomed")
        .build(|_| -> Value { panic!("boom {}", 7) })
        .unwrap();
    match g.switch(val(())) {
        Err(SwitchError::Panicked(p)) => {
            assert_eq!(p.id, g.id());
            assert_eq!(p.name.as_deref(), Some("doomed"));
            assert_eq!(p.message, "boom 7");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(g.is_dead());
    // The thread and its main greenlet carry on.
    let g2 = Greenlet::new(|v| v).unwrap();
    assert_eq!(get::<i32>(g2.switch(val(3)).unwrap()), 3);
}

struct Flag(Rc<RefCell<Vec<&'static str>>>, &'static str);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1);
    }
}

#[test]
fn throw_unwinds_a_suspended_greenlet_and_runs_destructors() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let main = Greenlet::current();
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        let _outer = Flag(l.clone(), "outer");
        let _inner = Flag(l.clone(), "inner");
        let _ = main.switch(val(()));
        l.borrow_mut().push("not reached");
        val(())
    })
    .unwrap();
    g.switch(val(())).unwrap();
    assert!(log.borrow().is_empty());
    match g.throw() {
        Err(SwitchError::Killed { id }) => assert_eq!(id, g.id()),
        other => panic!("expected Killed, got {other:?}"),
    }
    assert_eq!(*log.borrow(), vec!["inner", "outer"]);
    assert!(g.is_dead());
    assert!(matches!(g.throw(), Err(SwitchError::Dead)));
}

#[test]
fn throw_into_a_not_started_greenlet_never_runs_it_but_drops_its_closure() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let flag = Flag(log.clone(), "closure dropped");
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |v| {
        let _keep = &flag;
        *r.borrow_mut() = true;
        v
    })
    .unwrap();
    assert!(matches!(g.throw(), Err(SwitchError::Killed { .. })));
    assert!(!*ran.borrow());
    assert_eq!(*log.borrow(), vec!["closure dropped"]);
    assert!(g.is_dead());
}

#[test]
fn a_greenlet_may_catch_greenlet_exit_and_answer() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |_| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main.switch(val(()))));
        let caught = matches!(&r, Err(p) if p.is::<GreenletExit>());
        let _ = main.switch(val(caught));
        val(())
    })
    .unwrap();
    g.switch(val(())).unwrap();
    assert!(get::<bool>(g.throw().unwrap()));
    assert_eq!(g.state(), State::Suspended);
    drop(g); // kills it again; this time it is not caught
}

#[test]
fn dropping_the_last_handle_kills_a_suspended_greenlet() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let main = Greenlet::current();
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        let _f = Flag(l, "unwound");
        loop {
            let _ = main.switch(val(()));
        }
    })
    .unwrap();
    g.switch(val(())).unwrap();
    let clone = g.clone();
    drop(g);
    assert!(log.borrow().is_empty(), "a remaining handle keeps it alive");
    drop(clone);
    assert_eq!(*log.borrow(), vec!["unwound"]);
}

#[test]
fn dropping_a_not_started_greenlet_drops_its_closure() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let flag = Flag(log.clone(), "dropped");
    let g = Greenlet::new(move |v| {
        let _keep = &flag;
        v
    })
    .unwrap();
    drop(g);
    assert_eq!(*log.borrow(), vec!["dropped"]);
}

#[test]
fn set_parent_rejects_cycles() {
    let a = Greenlet::new(|v| v).unwrap();
    let b = Greenlet::builder().parent(&a).build(|v| v).unwrap();
    assert!(matches!(a.set_parent(&b), Err(SwitchError::ParentCycle)));
    assert!(matches!(a.set_parent(&a), Err(SwitchError::ParentCycle)));
    let c = Greenlet::new(|v| v).unwrap();
    b.set_parent(&c).unwrap();
    assert_eq!(b.parent().unwrap(), c);
}

#[test]
fn many_greenlets_in_a_ring() {
    // 200 greenlets pass a counter around a ring 50 times, each adding its index.
    const N: usize = 200;
    const LAPS: usize = 50;
    let main = Greenlet::current();
    let ring: Rc<RefCell<Vec<Greenlet>>> = Rc::new(RefCell::new(Vec::new()));
    for i in 0..N {
        let ring2 = ring.clone();
        let main2 = main.clone();
        let g = Greenlet::new(move |mut v| {
            for lap in 0..LAPS {
                let n: usize = get(v);
                let next = if i + 1 == N {
                    if lap + 1 == LAPS {
                        return val(n + i);
                    }
                    ring2.borrow()[0].clone()
                } else {
                    ring2.borrow()[i + 1].clone()
                };
                v = next.switch(val(n + i)).unwrap_or_else(|e| panic!("{e}"));
            }
            let _ = main2;
            val(0usize)
        })
        .unwrap();
        g.set_parent(&main).unwrap();
        ring.borrow_mut().push(g);
    }
    let first = ring.borrow()[0].clone();
    let total: usize = get(first.switch(val(0usize)).unwrap());
    assert_eq!(total, LAPS * (0..N).sum::<usize>());
    ring.borrow_mut().clear(); // kills the ones still suspended
}

#[test]
fn greenlets_on_other_threads_are_independent() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let main = Greenlet::current();
                let g = Greenlet::new(move |v| {
                    let mut x: u64 = get(v);
                    for _ in 0..1000 {
                        x = get(main.switch(val(x + 1)).unwrap());
                    }
                    val(x)
                })
                .unwrap();
                let mut x = t as u64 * 1_000_000;
                for _ in 0..1000 {
                    x = get(g.switch(val(x)).unwrap());
                }
                get::<u64>(g.switch(val(x)).unwrap())
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), t as u64 * 1_000_000 + 1000);
    }
}

#[test]
fn a_static_stack_works_without_the_pool() {
    use grove::stack::StaticStack;
    // An embedder's buffer: heap memory here, freed once the greenlet has let go of it.
    let raw: *mut StaticStack<{ 64 * 1024 }> = Box::into_raw(Box::new(StaticStack::new()));
    // SAFETY: `raw` is a live allocation; the borrow ends when `g` is dropped, before the free.
    let stack: &'static mut StaticStack<{ 64 * 1024 }> = unsafe { &mut *raw };
    let g = Greenlet::builder()
        .stack(stack)
        .build(|v| val(get::<u32>(v) + 1))
        .unwrap();
    assert_eq!(g.stack_size(), 64 * 1024);
    assert_eq!(get::<u32>(g.switch(val(41u32)).unwrap()), 42);
    drop(g);
    // SAFETY: the greenlet (and with it the only borrow of the buffer) is gone.
    drop(unsafe { Box::from_raw(raw) });
}

#[test]
fn deep_recursion_within_the_stack_is_fine() {
    fn depth(n: u32) -> u32 {
        let pad = std::hint::black_box([n as u8; 256]);
        if n == 0 {
            pad[0] as u32
        } else {
            depth(n - 1) + 1 + (u32::from(pad[1]) >> 8)
        }
    }
    // ~300 bytes a frame, 400 frames: ~120 KiB of a 256 KiB stack.
    let g = Greenlet::new(|_| val(depth(400))).unwrap();
    assert_eq!(get::<u32>(g.switch(val(())).unwrap()), 400);
}

#[test]
fn forty_thousand_live_stacks_fit_under_the_default_map_count() {
    use grove::stack::{guard_kind, GuardKind};
    let main = Greenlet::current();
    let first = Greenlet::builder()
        .stack_size(64 * 1024)
        .build(|v| v)
        .unwrap();
    drop(first.switch(val(())));
    if guard_kind() != Some(GuardKind::GuardRegion) {
        // With mprotect guards each stack costs two mappings: ~32k live stacks is the kernel's
        // limit there, and the error then names vm.max_map_count (tested in src/stack/mmap.rs).
        eprintln!("skipped: this kernel has no MADV_GUARD_INSTALL");
        return;
    }
    // 40,000 parked greenlets: more than mprotect guards would allow (65530 mappings / 2).
    let gs: Vec<Greenlet> = (0..40_000u32)
        .map(|i| {
            let m = main.clone();
            let g = Greenlet::builder()
                .stack_size(64 * 1024)
                .build(move |_| {
                    let _ = m.switch(val(()));
                    val(i)
                })
                .unwrap_or_else(|e| panic!("stack {i}: {e}"));
            g.switch(val(())).unwrap();
            g
        })
        .collect();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    assert!(
        maps < 10_000,
        "{maps} mappings for 40,000 stacks: guards split the mappings"
    );
    // Resume a sample to show they are alive and intact.
    for i in (0..40_000).step_by(4_999) {
        assert_eq!(get::<u32>(gs[i].switch(val(())).unwrap()), i as u32);
    }
}

#[test]
fn the_default_stack_size_can_be_set_for_the_process() {
    // Larger than the built-in default, so that other tests running meanwhile lose nothing.
    let size = 512 * 1024;
    let before = grove::stack::set_default_size(size);
    assert_eq!(grove::stack::default_size(), size);
    let g = Greenlet::new(|v| v).unwrap();
    assert_eq!(
        g.stack_size(),
        size,
        "a builder that names no size takes the default"
    );
    let small = Greenlet::builder()
        .stack_size(64 * 1024)
        .build(|v| v)
        .unwrap();
    assert_eq!(small.stack_size(), 64 * 1024, "a size given wins");
    drop((g, small));
    grove::stack::set_default_size(before);
}

#[test]
fn a_closure_larger_than_its_stack_is_an_error_not_a_wild_write() {
    // The closure lies at the top of the stack: one bigger than the whole stack must be
    // refused (before, the check's subtraction wrapped in release builds and the closure was
    // written below the stack).
    let big = [7u8; 256 * 1024];
    let err = Greenlet::builder()
        .stack_size(64 * 1024)
        .build(move |_| Box::new(big[1]) as Value)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("box the captured data"), "{err}");
}
