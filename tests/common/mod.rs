//! Helpers shared by the behaviour tests.
#![allow(dead_code)]

use grove::sys::Backend;

/// Runs `body` once per poller backend this platform has, each on a fresh thread whose hub
/// uses that backend.
pub fn each_backend(body: fn(Backend)) {
    for b in Backend::available() {
        std::thread::Builder::new()
            .name(format!("{b:?}"))
            .spawn(move || {
                grove::hub::use_backend(b).unwrap();
                body(b);
                assert_eq!(grove::hub::backend(), b);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("under the {b:?} backend"));
    }
}

/// Runs `body` on a fresh thread whose hub has a paused (virtual) clock.
pub fn paused(body: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        grove::hub::Builder::new()
            .paused_clock(true)
            .install()
            .unwrap();
        body();
    })
    .join()
    .unwrap_or_else(|_| panic!("under the paused clock"));
}

/// The processes whose parent is this process, with their state letter (`Z` for a zombie),
/// from `/proc` (Linux only).
#[cfg(target_os = "linux")]
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut v = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Gone already, or unreadable: not a child of ours that matters.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == me {
            v.push((pid, state));
        }
    }
    v
}

/// A command that runs this test binary again (for a test that needs a process of its own),
/// through the emulator when the tests run under one: CI runs the aarch64 build under
/// qemu-user, which cannot exec a foreign binary by itself, and names it in
/// `GROVE_TEST_RUNNER`.
pub fn this_test_binary() -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    match std::env::var_os("GROVE_TEST_RUNNER") {
        Some(runner) => {
            let mut c = std::process::Command::new(runner);
            c.arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    }
}
