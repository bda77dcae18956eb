//! The `SIGCHLD` watcher (the reaper of macOS and the BSDs, and Linux's fallback without
//! pidfds), forced on Linux with `GROVE_CHILD_WATCH=sigchld` so that it runs here too: waits,
//! timeouts, kills, output, many children at once, dropped children, and (on Linux) no zombie
//! left. One test in its own binary: the variable must be set before the first child starts,
//! and no other test's children may be counted.

mod common;
#[cfg(target_os = "linux")]
use common::children;
use common::each_backend;
use grove::pool::Pool;
use grove::process::{Command, Stdio};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[test]
fn the_sigchld_watcher_waits_kills_collects_output_and_reaps_dropped_children() {
    // Before any child starts: read once, at the first spawn.
    std::env::set_var(grove::process::CHILD_WATCH_ENV, "sigchld");

    each_backend(|_| {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap();
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(out.status.code(), Some(3));

        let big = Command::new("sh")
            .args([
                "-c",
                "head -c 2000000 /dev/zero; head -c 2000000 /dev/zero >&2",
            ])
            .output()
            .unwrap();
        assert_eq!((big.stdout.len(), big.stderr.len()), (2_000_000, 2_000_000));

        let mut c = Command::new("sleep").arg("10").spawn().unwrap();
        assert_eq!(c.wait_timeout(Duration::from_millis(30)).unwrap(), None);
        assert_eq!(c.try_wait().unwrap(), None);
        c.kill().unwrap();
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
        c.kill().unwrap(); // reaped: nothing is sent, and that is fine

        let mut c = Command::new("sleep").arg("10").spawn().unwrap();
        c.send_signal(libc::SIGTERM).unwrap();
        assert_eq!(
            c.wait_timeout(Duration::from_secs(30))
                .unwrap()
                .unwrap()
                .signal(),
            Some(libc::SIGTERM)
        );

        // try_wait sees an exit without waiting for the SIGCHLD sweep.
        let mut c = Command::new("true").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "true never exited");
            grove::sleep(Duration::from_millis(1));
        };
        assert!(status.success());

        let mut c = Command::new("sh")
            .args(["-c", "sleep 0.1; echo late"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = String::new();
        c.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "late\n");
        assert!(c.wait().unwrap().success());

        // Many at once, some dropped unwaited, some killed and dropped.
        let pool = Pool::new(50);
        for i in 0..300 {
            pool.spawn(move || match i % 4 {
                0 => drop(Command::new("true").spawn().unwrap()),
                1 => {
                    let mut c = Command::new("sleep").arg("10").spawn().unwrap();
                    c.kill().unwrap();
                }
                _ => assert!(Command::new("true").status().unwrap().success()),
            })
            .unwrap();
        }
        assert!(pool.join(Some(Duration::from_secs(120))));
    });

    #[cfg(target_os = "linux")]
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        let left = loop {
            let left = children();
            if left.is_empty() || Instant::now() > deadline {
                break left;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(left.is_empty(), "children left (Z: zombie): {left:?}");
    }
}
