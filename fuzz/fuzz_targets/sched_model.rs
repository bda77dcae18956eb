//! Drives the scheduler model of `tests/model` with arbitrary programs: the real hub (paused
//! clock) must produce exactly the model's trace, and every greenlet must be dropped once.
//!
//!   cargo +nightly fuzz run sched_model
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{check_invariants, normalize, run_on_hub, simulate, Op};

/// Bytes to a program: the first byte picks the number of greenlets, then each pair of bytes
/// is one op (kind, argument); a kind byte of 255 starts the next greenlet's list.
fn program(data: &[u8]) -> Vec<Vec<Op>> {
    let Some((&first, rest)) = data.split_first() else {
        return vec![vec![]];
    };
    let n = (first % 16) as usize + 1;
    let mut p = vec![Vec::new(); n];
    let mut g = 0;
    for pair in rest.chunks(2) {
        let (kind, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        if kind == 255 {
            g = (g + 1) % n;
            continue;
        }
        if p[g].len() >= 32 {
            continue;
        }
        let op = match kind % 7 {
            0 => Op::Yield,
            1 => Op::Sleep(arg),
            2 => Op::Set(arg),
            3 => Op::Wait(arg),
            4 => Op::Kill(arg),
            5 => Op::Join(arg),
            _ => Op::Spawn(arg),
        };
        p[g].push(normalize(op, n));
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let p = program(data);
    let expected = simulate(&p);
    check_invariants(&p, &expected);
    assert_eq!(run_on_hub(&p), expected, "program {p:?}");
});
