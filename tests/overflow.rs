//! Stack overflow in a greenlet: the process dies of SIGABRT with a message naming the
//! greenlet; other crashes keep their ordinary behaviour. Each case runs in a child process
//! (this same binary, re-executed with `GROVE_OVERFLOW_CASE` set), since it must die.
//!
//! A custom harness (`harness = false`): it prints `N passed, N failed` like any test runner.

mod common;

use grove::greenlet::{Greenlet, Value};
use std::os::unix::process::ExitStatusExt;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let buf = std::hint::black_box([n as u8; 512]);
    recurse(n + 1) + buf[7] as u64
}

fn child(case: &str) {
    // The main greenlet exists (so grove's handler is installed) in every case.
    let main = Greenlet::current();
    match case {
        "greenlet-overflow" => {
            let g = Greenlet::builder()
                .name("deep")
                .stack_size(64 * 1024)
                .build(|_| Box::new(recurse(0)) as Value)
                .unwrap();
            let _ = g.switch(Box::new(()));
        }
        "greenlet-bad-pointer" => {
            let g = Greenlet::new(|_| {
                // SAFETY: none; this is the crash under test.
                unsafe { std::ptr::write_volatile(std::ptr::without_provenance_mut::<u8>(1), 0) };
                Box::new(()) as Value
            })
            .unwrap();
            let _ = g.switch(Box::new(()));
        }
        "coroutine-overflow" => {
            // No greenlet of ours is involved: the coroutine runs on a 64 KiB pooled stack
            // with a guard, resumed from the main thread.
            let mut co = grove::coroutine::Coroutine::<(), (), u64, _>::with_stack(
                grove::stack::pool::PooledStack::new(64 * 1024).unwrap(),
                |_, ()| recurse(0),
            )
            .unwrap();
            let _ = co.resume(());
        }
        "coroutine-in-greenlet-overflow" => {
            // Resumed inside a greenlet: the fault is in the coroutine's guard, not the
            // greenlet's, and is reported as the coroutine's.
            let g = Greenlet::new(|_| {
                let mut co = grove::coroutine::Coroutine::<(), (), u64, _>::with_stack(
                    grove::stack::pool::PooledStack::new(64 * 1024).unwrap(),
                    |_, ()| recurse(0),
                )
                .unwrap();
                let _ = co.resume(());
                Box::new(()) as Value
            })
            .unwrap();
            let _ = g.switch(Box::new(()));
        }
        "main-thread-overflow" => {
            let _ = main;
            println!("{}", recurse(0));
        }
        other => panic!("unknown case {other}"),
    }
    eprintln!("child case {case} survived");
    std::process::exit(0);
}

fn run(case: &str) -> (Option<i32>, String) {
    let out = common::this_test_binary()
        .env("GROVE_OVERFLOW_CASE", case)
        .output()
        .expect("re-executing the test binary");
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn main() {
    if let Ok(case) = std::env::var("GROVE_OVERFLOW_CASE") {
        child(&case);
    }
    let mut passed = 0;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        if ok {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED\n{detail}");
            failed += 1;
        }
    };

    let (sig, err) = run("greenlet-overflow");
    check(
        "greenlet_overflow_aborts_with_a_message_naming_it",
        sig == Some(libc::SIGABRT)
            && err.contains("grove: greenlet ")
            && err.contains(" (deep) overflowed its 64 KiB stack"),
        format!("signal {sig:?}, stderr:\n{err}"),
    );

    let (sig, err) = run("greenlet-bad-pointer");
    check(
        "a_wild_write_in_a_greenlet_is_a_plain_segfault",
        sig == Some(libc::SIGSEGV) && !err.contains("overflowed"),
        format!("signal {sig:?}, stderr:\n{err}"),
    );

    for case in ["coroutine-overflow", "coroutine-in-greenlet-overflow"] {
        let (sig, err) = run(case);
        check(
            &format!("{}_aborts_with_a_message", case.replace('-', "_")),
            sig == Some(libc::SIGABRT)
                && err.contains("grove: a coroutine overflowed its 64 KiB stack")
                && !err.contains("grove: greenlet"),
            format!(
                "signal {sig:?}, stderr:
{err}"
            ),
        );
    }

    let (sig, err) = run("main-thread-overflow");
    check(
        "rusts_own_main_thread_overflow_message_still_appears",
        sig == Some(libc::SIGABRT)
            && err.contains("has overflowed its stack")
            && !err.contains("grove:"),
        format!("signal {sig:?}, stderr:\n{err}"),
    );

    println!("\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 {
        std::process::exit(1);
    }
}
