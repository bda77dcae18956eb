//! Subprocesses through the public API, under every poller backend: output and status, pipes
//! in both directions, waits with timeouts, kills and signals, errors that name the program,
//! and the hub running other greenlets while a greenlet waits for a child.
//!
//! (Reaping at scale, and "no zombie left", are in `process_zombies.rs`; the `SIGCHLD`
//! watcher, forced on Linux, in `process_sigchld.rs`.)

mod common;
use common::each_backend;
use grove::process::{Command, Stdio};
use grove::{sleep, spawn};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn output_gives_both_streams_and_the_status() {
    each_backend(|_| {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
        assert!(!out.status.success());
    });
}

#[test]
fn output_of_megabytes_on_both_streams_does_not_deadlock() {
    each_backend(|_| {
        // Each stream is far larger than a pipe's buffer: reading one to its end before the
        // other would stall the child on the other forever.
        let out = Command::new("sh")
            .args([
                "-c",
                "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2; head -c 1000000 /dev/zero",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 4_000_000);
        assert_eq!(out.stderr.len(), 2_000_000);
        assert!(out.stdout.iter().all(|&b| b == 0));
    });
}

#[test]
fn stdin_piped_to_cat_round_trips() {
    each_backend(|_| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // More than a pipe holds, so writer and reader must take turns.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut stdin = child.stdin.take().unwrap();
        let sent = data.clone();
        let writer = spawn(move || {
            stdin.write_all(&sent).unwrap();
            // Dropping stdin closes it: cat sees end of file.
        });
        let mut back = Vec::new();
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        writer.get().unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(back.len(), data.len());
        assert!(back == data);
    });
}

#[test]
fn wait_timeout_times_out_then_kill_and_wait_report_a_signal_death() {
    each_backend(|_| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        assert_eq!(child.wait_timeout(Duration::from_millis(30)).unwrap(), None);
        assert_eq!(child.try_wait().unwrap(), None);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        // Once reaped, it stays reaped; killing it again is harmless.
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.wait().unwrap(), status);
        child.kill().unwrap();
    });
}

#[test]
fn wait_timeout_returns_the_status_of_a_child_that_exits_in_time() {
    each_backend(|_| {
        let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let status = child.wait_timeout(LONG).unwrap().expect("it exits in time");
        assert_eq!(status.code(), Some(7));
    });
}

#[test]
fn send_signal_delivers_the_signal_asked_for() {
    each_backend(|_| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        child.send_signal(libc::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    });
}

#[test]
fn other_greenlets_run_while_a_greenlet_waits_for_a_child() {
    each_backend(|_| {
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = spawn(move || loop {
            sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        });
        let status = Command::new("sleep").arg("0.2").status().unwrap();
        assert!(status.success());
        let during_wait = ticks.get();
        assert!(during_wait > 0, "the ticker never ran while main waited");

        // And while a greenlet reads a child's stdout that is slow to come.
        let before = ticks.get();
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.2; echo done"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "done\n");
        assert!(ticks.get() > before, "the ticker never ran while main read");
        child.wait().unwrap();
        ticker.kill();
    });
}

#[test]
fn several_greenlets_wait_for_several_children_at_once() {
    each_backend(|_| {
        let gs: Vec<_> = (0..20)
            .map(|i| {
                spawn(move || {
                    Command::new("sh")
                        .args(["-c", &format!("sleep 0.0{}; exit {i}", i % 10)])
                        .status()
                        .unwrap()
                        .code()
                })
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            assert_eq!(g.get().unwrap(), Some(i as i32));
        }
    });
}

#[test]
fn environment_arguments_and_working_directory_reach_the_child() {
    each_backend(|_| {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let out = Command::new("sh")
            .args([
                "-c",
                "echo \"$GROVE_T_A|${GROVE_T_B-unset}|$1\"; pwd",
                "sh",
                "arg one",
            ])
            .env("GROVE_T_A", "a")
            .env("GROVE_T_B", "b")
            .env_remove("GROVE_T_B")
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("a|unset|arg one"));
        assert_eq!(lines.next().map(std::path::PathBuf::from), Some(dir));

        let out = Command::new("/usr/bin/env")
            .env_clear()
            .env("ONLY", "1")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ONLY=1\n");
    });
}

#[test]
fn output_defaults_do_not_stick_to_the_command() {
    each_backend(|_| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi"]);
        assert_eq!(cmd.output().unwrap().stdout, b"hi\n");
        // spawn after output: stdout is inherited again, so no pipe is made.
        let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
        assert!(child.stdout.is_none());
        assert!(child.wait().unwrap().success());
        // An explicit choice is kept by output: stdout not captured.
        assert!(cmd.output().unwrap().stdout.is_empty());
    });
}

/// Under an emulator (CI runs the aarch64 build under qemu-user, whose vfork is a fork) an
/// exec failure is not reported back to `spawn`: the child exits with 127 instead.
fn emulated() -> bool {
    std::env::var_os("GROVE_TEST_RUNNER").is_some()
}

#[test]
fn a_program_that_does_not_exist_is_named_in_the_error() {
    each_backend(|_| {
        match Command::new("/nonexistent/grove-no-such-program").spawn() {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NotFound);
                assert!(
                    e.to_string().contains("grove-no-such-program"),
                    "unhelpful error: {e}"
                );
            }
            Ok(mut c) if emulated() => assert_eq!(c.wait().unwrap().code(), Some(127)),
            Ok(c) => panic!("a program that does not exist started: {c:?}"),
        }
        match Command::new("grove-no-such-program-either").output() {
            Err(e) => assert!(e.to_string().contains("grove-no-such-program-either")),
            Ok(out) if emulated() => assert_eq!(out.status.code(), Some(127)),
            Ok(out) => panic!("a program that does not exist ran: {out:?}"),
        }
    });
}

#[test]
fn a_child_pipe_read_times_out_when_asked_to() {
    each_backend(|_| {
        let mut child = Command::new("sleep")
            .arg("10")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        out.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 16];
        let e = (&out).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        child.kill().unwrap();
        child.wait().unwrap();
        // The child is gone and so is its end of the pipe: end of file.
        out.set_read_timeout(None).unwrap();
        assert_eq!((&out).read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn writing_to_a_child_that_closed_its_stdin_is_broken_pipe_not_a_signal_death() {
    each_backend(|_| {
        let mut child = Command::new("sh")
            .args(["-c", "exec 0<&-; sleep 0.05"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        child.wait().unwrap();
        let e = stdin.write_all(&[0u8; 100_000]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn a_pipe_can_feed_another_child() {
    each_backend(|_| {
        let mut first = Command::new("sh")
            .args(["-c", "echo one; echo two"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let feed = Stdio::try_from(first.stdout.take().unwrap()).unwrap();
        let out = Command::new("wc").arg("-l").stdin(feed).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "2");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn children_can_be_waited_for_on_several_hubs_at_once() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    let out = Command::new("sh")
                        .args(["-c", &format!("echo {t}-{i}")])
                        .output()
                        .unwrap();
                    assert_eq!(out.stdout, format!("{t}-{i}\n").as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
