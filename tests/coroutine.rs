//! Typed coroutines (`grove::coroutine`): values in and out, ends, panics, drops, custom
//! stacks, nesting, use inside greenlets and the hub, backtraces.

use grove::coroutine::{Coroutine, CoroutineResult, ForcedUnwind, StackTooSmall};
use grove::stack::{Stack, StaticStack};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Counts its drops in a shared cell.
struct Tracked(Rc<Cell<u32>>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn values_go_in_and_out_typed_and_the_return_value_ends_it() {
    // Heap-owning values both ways: every one must arrive exactly once.
    let mut co = Coroutine::new(|y, first: String| {
        let mut seen = vec![first];
        loop {
            let next = y.suspend(format!("got {}", seen.len()));
            if next.is_empty() {
                return seen;
            }
            seen.push(next);
        }
    })
    .unwrap();
    assert!(!co.started());
    assert_eq!(
        co.resume("a".into()),
        CoroutineResult::Yield("got 1".into())
    );
    assert!(co.started() && !co.done());
    assert_eq!(
        co.resume("b".into()),
        CoroutineResult::Yield("got 2".into())
    );
    assert_eq!(
        co.resume(String::new()),
        CoroutineResult::Return(vec!["a".to_string(), "b".to_string()])
    );
    assert!(co.done());
}

/// Hands `v` in and gets it back out, through a coroutine that also yields it once.
fn round_trip<T: Clone + PartialEq + std::fmt::Debug + 'static>(v: T) {
    let mut co = Coroutine::<T, T, T>::new(|y, first| y.suspend(first)).unwrap();
    assert_eq!(co.resume(v.clone()), CoroutineResult::Yield(v.clone()));
    assert_eq!(co.resume(v.clone()), CoroutineResult::Return(v));
}

#[test]
fn values_of_every_shape_cross_intact() {
    // In the word (a register): with padding, niches, over-aligned zero-sized.
    #[derive(Clone, PartialEq, Debug)]
    #[repr(align(64))]
    struct Aligned;
    round_trip((7u8, 0xBEEFu16));
    round_trip(Some(0xDEAD_BEEFu32));
    round_trip(None::<u32>);
    round_trip(true);
    round_trip('ß');
    round_trip([1u8, 2, 3, 4, 5, 6, 7, 8]);
    round_trip(-1.5f64);
    round_trip(Aligned);
    round_trip(());
    round_trip(Box::new(42u32));
    // By address: larger than a word.
    round_trip((1u64, 2u8));
    round_trip([9u64; 5]);
    round_trip(String::from("a heap value"));
}

#[test]
fn a_generator_yields_in_order() {
    let mut fib = Coroutine::new(|y, ()| {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..10 {
            y.suspend(a);
            (a, b) = (b, a + b);
        }
    })
    .unwrap();
    let mut got = Vec::new();
    while let CoroutineResult::Yield(v) = fib.resume(()) {
        got.push(v);
    }
    assert_eq!(got, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
}

#[test]
fn a_panic_in_the_body_reaches_the_resumer_and_finishes_it() {
    let mut co = Coroutine::<u32, u32, ()>::new(|y, n| {
        let n = y.suspend(n + 1);
        panic!("body failed at {n}");
    })
    .unwrap();
    assert_eq!(co.resume(1), CoroutineResult::Yield(2));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(7)))
        .expect_err("the body's panic comes out of resume");
    assert_eq!(err.downcast_ref::<String>().unwrap(), "body failed at 7");
    assert!(co.done());
    // Resuming a finished coroutine is a bug, reported as a panic, not undefined behaviour.
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(0)))
        .expect_err("resume after the end panics");
    assert!(again
        .downcast_ref::<&str>()
        .unwrap()
        .contains("has finished"));
}

#[test]
fn dropping_a_suspended_coroutine_unwinds_its_stack() {
    let drops = Rc::new(Cell::new(0));
    let after = Rc::new(Cell::new(false));
    let (d, a) = (drops.clone(), after.clone());
    let mut co = Coroutine::<(), (), ()>::new(move |y, ()| {
        let _local = Tracked(d.clone());
        y.suspend(());
        a.set(true); // never reached: the drop unwinds from the suspend
    })
    .unwrap();
    assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    assert_eq!(drops.get(), 0);
    drop(co);
    assert_eq!(drops.get(), 1, "the body's local was dropped by the unwind");
    assert!(!after.get());
}

#[test]
fn dropping_an_unstarted_coroutine_drops_its_closure_without_running_it() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let captured = Tracked(drops.clone());
    let r = ran.clone();
    let co = Coroutine::<(), (), ()>::new(move |_, ()| {
        let _keep = &captured;
        r.set(true);
    })
    .unwrap();
    drop(co);
    assert_eq!(drops.get(), 1);
    assert!(!ran.get());
}

#[test]
fn a_body_that_refuses_to_unwind_is_leaked_not_resumed_wrongly() {
    // The body catches the forced unwind and suspends again: the drop cannot finish it, so
    // its stack is leaked (never reused), and what it yielded is dropped.
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co = Coroutine::<(), Tracked, ()>::new(move |y, ()| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            y.suspend(Tracked(d.clone()));
        }));
        assert!(r.unwrap_err().is::<ForcedUnwind>());
        y.suspend(Tracked(d.clone()));
    })
    .unwrap();
    let first = co.resume(()).into_yield().unwrap();
    drop(first);
    assert_eq!(drops.get(), 1);
    drop(co);
    assert_eq!(
        drops.get(),
        2,
        "the value yielded during the drop was dropped"
    );
}

#[test]
fn a_static_stack_is_used_and_given_back() {
    let raw: *mut StaticStack<{ 64 * 1024 }> = Box::into_raw(Box::new(StaticStack::new()));
    // SAFETY: leaked for the test's duration; only this reference uses it.
    let stack: &'static mut StaticStack<{ 64 * 1024 }> = unsafe { &mut *raw };
    let (lo, hi) = (stack.base() as usize, stack.top() as usize);
    let mut co = Coroutine::with_stack(stack, |y, x: u32| {
        let here = &x as *const u32 as usize;
        let x = y.suspend(here);
        x * 2
    })
    .unwrap();
    let addr = co.resume(5).into_yield().unwrap();
    assert!(
        (lo..hi).contains(&addr),
        "the body's locals live on the given stack"
    );
    assert_eq!(co.resume(21), CoroutineResult::Return(42));
    let stack = co.into_stack();
    // The same memory again, for a second coroutine.
    let mut again = Coroutine::<u32, (), u32, _>::with_stack(stack, |_, x| x + 1).unwrap();
    assert_eq!(again.resume(1), CoroutineResult::Return(2));
    drop(again);
    // SAFETY: the coroutines that borrowed it are gone.
    drop(unsafe { Box::from_raw(raw) });
}

#[test]
fn a_closure_too_big_for_its_stack_is_an_error() {
    let raw: *mut StaticStack<{ 16 * 1024 }> = Box::into_raw(Box::new(StaticStack::new()));
    // SAFETY: as above.
    let stack: &'static mut StaticStack<{ 16 * 1024 }> = unsafe { &mut *raw };
    let big = [7u8; 12 * 1024];
    let err: StackTooSmall = Coroutine::<(), (), u8, _>::with_stack(stack, move |_, ()| big[0])
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.available, 16 * 1024);
    assert!(err.needed >= 12 * 1024, "{err:?}");
    assert!(err.to_string().contains("box the captured data"), "{err}");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    // SAFETY: the failed constructor dropped its borrow of the stack.
    drop(unsafe { Box::from_raw(raw) });
}

#[test]
fn coroutines_nest() {
    // The outer body drives an inner generator and passes its values on, doubled.
    let mut outer = Coroutine::<(), u32, &'static str>::new(|y, ()| {
        let mut inner = Coroutine::<(), u32, ()>::new(|yi, ()| {
            for i in 1..=3 {
                yi.suspend(i);
            }
        })
        .unwrap();
        while let CoroutineResult::Yield(v) = inner.resume(()) {
            y.suspend(v * 2);
        }
        "inner done"
    })
    .unwrap();
    let mut got = Vec::new();
    let end = loop {
        match outer.resume(()) {
            CoroutineResult::Yield(v) => got.push(v),
            CoroutineResult::Return(r) => break r,
        }
    };
    assert_eq!(got, [2, 4, 6]);
    assert_eq!(end, "inner done");
}

#[test]
fn a_body_may_block_cooperatively_inside_a_greenlet() {
    // Two greenlets each drive a coroutine whose body sleeps: the sleeps overlap (the hub runs
    // the other greenlet meanwhile), so the order of events interleaves.
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut gs = Vec::new();
    for name in ["a", "b"] {
        let log = log.clone();
        gs.push(grove::spawn(move || {
            let l = log.clone();
            let mut co = Coroutine::<(), (), ()>::new(move |y, ()| {
                for i in 0..2 {
                    l.borrow_mut().push(format!("{name}{i}"));
                    grove::sleep(std::time::Duration::from_millis(5));
                    y.suspend(());
                }
            })
            .unwrap();
            while let CoroutineResult::Yield(()) = co.resume(()) {}
        }));
    }
    for g in gs {
        g.get().unwrap();
    }
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1"]);
}

#[test]
fn killing_a_greenlet_blocked_inside_a_coroutine_body_unwinds_both() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = grove::spawn(move || {
        let d2 = d.clone();
        let mut co = Coroutine::<(), (), ()>::new(move |_, ()| {
            let _in_body = Tracked(d2);
            grove::sleep(std::time::Duration::from_secs(3600));
        })
        .unwrap();
        let _in_greenlet = Tracked(d);
        let _ = co.resume(());
    });
    grove::sleep(std::time::Duration::from_millis(5));
    g.kill();
    let r = g.get();
    assert!(matches!(r, Err(grove::GreenletError::Killed)), "{r:?}");
    assert_eq!(drops.get(), 2, "the body's and the greenlet's locals");
}

#[inline(never)]
fn coroutine_resumer_marker(co: &mut Coroutine<(), (), String>) -> String {
    std::hint::black_box(co.resume(()).into_return().unwrap())
}

#[test]
fn a_backtrace_inside_a_body_reaches_the_resumer() {
    let mut co = Coroutine::<(), (), String, _>::with_stack(
        grove::stack::pool::PooledStack::new(1024 * 1024).unwrap(),
        |_, ()| std::backtrace::Backtrace::force_capture().to_string(),
    )
    .unwrap();
    let bt = coroutine_resumer_marker(&mut co);
    assert!(bt.contains("coroutine_resumer_marker"), "{bt}");
    assert!(
        bt.contains("a_backtrace_inside_a_body_reaches_the_resumer"),
        "{bt}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Several generators resumed in a random order: each one's values come out in its own
    /// order, its end comes once, after its last value, and values never cross between them.
    #[test]
    fn interleaved_generators_match_a_model(
        lens in prop::collection::vec(0usize..6, 1..6),
        order in prop::collection::vec(0usize..6, 0..60),
    ) {
        let mut cos: Vec<Coroutine<u64, (usize, u64), usize>> = lens
            .iter()
            .enumerate()
            .map(|(id, &len)| {
                Coroutine::new(move |y, mut input| {
                    for k in 0..len as u64 {
                        // Echo the input so that a value handed to the wrong body shows.
                        input = y.suspend((id, k * 1000 + input));
                    }
                    id
                })
                .unwrap()
            })
            .collect();
        let mut next = vec![0u64; lens.len()];
        let mut done = vec![false; lens.len()];
        for (step, &pick) in order.iter().enumerate() {
            let i = pick % lens.len();
            if done[i] {
                continue;
            }
            let input = step as u64;
            match cos[i].resume(input) {
                CoroutineResult::Yield((id, v)) => {
                    prop_assert_eq!(id, i);
                    prop_assert!(next[i] < lens[i] as u64);
                    prop_assert_eq!(v, next[i] * 1000 + input);
                    next[i] += 1;
                }
                CoroutineResult::Return(id) => {
                    prop_assert_eq!(id, i);
                    prop_assert_eq!(next[i], lens[i] as u64);
                    done[i] = true;
                }
            }
            prop_assert_eq!(cos[i].done(), done[i]);
        }
        // The rest are dropped suspended or unstarted: their stacks unwind.
        drop(cos);
    }
}
