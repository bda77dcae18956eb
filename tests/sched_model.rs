//! The property-tested scheduler: random programs of spawn, sleep, yield, kill, join and
//! event set/wait across many greenlets run on the real hub (paused clock) and in the
//! reference model of `tests/model`; their traces must be identical. That one comparison
//! covers the invariants users rely on: no lost wake-up (a waiter the model wakes runs), FIFO
//! among equally ready greenlets, every greenlet ends or is reported stuck (LoopExit), and
//! kills run destructors (every greenlet's captures are dropped exactly once).

mod model;
use model::{check_invariants, normalize, run_on_hub, simulate, Ev, Op};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Yield),
        3 => any::<u8>().prop_map(Op::Sleep),
        2 => any::<u8>().prop_map(Op::Set),
        2 => any::<u8>().prop_map(Op::Wait),
        1 => any::<u8>().prop_map(Op::Kill),
        2 => any::<u8>().prop_map(Op::Join),
        2 => any::<u8>().prop_map(Op::Spawn),
    ]
}

fn program() -> impl Strategy<Value = Vec<Vec<Op>>> {
    (1usize..=16).prop_flat_map(|n| {
        prop::collection::vec(prop::collection::vec(op(), 0..12), n).prop_map(move |p| {
            p.into_iter()
                .map(|ops| ops.into_iter().map(|o| normalize(o, n)).collect())
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_hub_schedules_exactly_as_the_model_says(p in program()) {
        let expected = simulate(&p);
        check_invariants(&p, &expected);
        let got = run_on_hub(&p);
        prop_assert_eq!(got, expected);
    }
}

/// Hand-written programs for the rules the model states, so a failure names the rule.
#[test]
fn known_programs() {
    use Op::*;
    let cases: Vec<Vec<Vec<Op>>> = vec![
        // FIFO, yields interleave.
        vec![vec![Yield, Yield], vec![Yield, Yield], vec![Yield]],
        // Sleeps wake in deadline order; ties in creation order.
        vec![
            vec![Sleep(3)],
            vec![Sleep(1)],
            vec![Sleep(3)],
            vec![Sleep(2)],
        ],
        // An event wakes its waiters in order; a set before wait returns at once.
        vec![vec![Wait(0), Yield], vec![Wait(0)], vec![Set(0), Wait(0)]],
        // Kill while sleeping, kill before start, kill yourself.
        vec![vec![Sleep(5)], vec![Kill(0), Kill(2), Kill(1)], vec![Yield]],
        // A deadlock: everyone waits on an event nobody sets, and on each other.
        vec![vec![Wait(1)], vec![Join(0)], vec![Join(1), Set(2)]],
        // Kill of a woken greenlet is raised at its next blocking call.
        vec![vec![Wait(0), Set(1), Sleep(1)], vec![Set(0), Kill(0)]],
        // Spawns in mid-program: greenlets 2 and 3 are latent; 0 spawns 3 (queued behind 1),
        // then kills and joins 2 before anyone spawned it (both nothing); main spawns 2.
        vec![
            vec![Spawn(3), Kill(2), Join(2), Yield, Spawn(3)],
            vec![Yield],
            vec![Yield],
            vec![Sleep(1)],
        ],
        // A latent greenlet nobody spawns before a deadlock never runs.
        vec![vec![Wait(0)], vec![], vec![Set(0)]],
    ];
    for p in cases {
        let expected = simulate(&p);
        check_invariants(&p, &expected);
        assert_eq!(run_on_hub(&p), expected, "program {p:?}");
    }
    // The deadlock case is reported stuck, not hung.
    // (Four greenlets, so that 0 and 1 are both spawned up front; 2 and 3 are latent.)
    let p = vec![vec![Op::Wait(1)], vec![Op::Join(0)], vec![], vec![]];
    assert!(simulate(&p).contains(&Ev::Stuck(vec![0, 1])));
}
