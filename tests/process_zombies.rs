//! Reaping at scale: a thousand children, waited for, killed, or dropped without a wait, on
//! hubs that stay and hubs whose threads exit, and then no zombie (and no child at all) is
//! left. Linux only: the children are counted through `/proc`. The only test in its binary,
//! so that no other test's children are counted.
#![cfg(target_os = "linux")]

mod common;
#[cfg(target_os = "linux")]
use common::children;
use common::each_backend;
use grove::pool::Pool;
use grove::process::{Child, Command};
use std::time::{Duration, Instant};

/// Waits (bounded) until this process has no child left; returns what is left then.
fn settle() -> Vec<(u32, char)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = children();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_true() -> Child {
    Command::new("true").spawn().unwrap()
}

#[test]
fn a_thousand_children_waited_killed_or_dropped_leave_no_zombie() {
    assert!(children().is_empty(), "the test starts with no child");
    each_backend(|_| {
        // A thousand children, at most 50 at a time.
        let pool = Pool::new(50);
        for i in 0..1000 {
            pool.spawn(move || match i % 10 {
                // Dropped without a wait, most likely still running.
                0 => drop(spawn_true()),
                // Dropped without a wait after it has surely exited (a zombie at the drop).
                1 => {
                    let c = spawn_true();
                    grove::sleep(Duration::from_millis(5));
                    drop(c);
                }
                // Killed and waited for.
                2 => {
                    let mut c = Command::new("sleep").arg("10").spawn().unwrap();
                    c.kill().unwrap();
                    assert!(c.wait().unwrap().signal_death());
                }
                // Killed and dropped without a wait.
                3 => {
                    let mut c = Command::new("sleep").arg("10").spawn().unwrap();
                    c.kill().unwrap();
                }
                // Dropped while running for a while yet.
                4 => drop(Command::new("sleep").arg("0.05").spawn().unwrap()),
                _ => assert!(Command::new("true").status().unwrap().success()),
            })
            .unwrap();
        }
        assert!(
            pool.join(Some(Duration::from_secs(120))),
            "the pool finished"
        );
    });

    // A hub whose thread exits while its dropped children still run.
    std::thread::spawn(|| {
        for _ in 0..20 {
            drop(Command::new("sleep").arg("0.1").spawn().unwrap());
        }
    })
    .join()
    .unwrap();

    let left = settle();
    let zombies: Vec<_> = left.iter().filter(|(_, s)| *s == 'Z').collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    assert!(left.is_empty(), "children left: {left:?}");
}

/// `ExitStatus::signal`, as a bool, for the assertions above.
trait SignalDeath {
    fn signal_death(&self) -> bool;
}

impl SignalDeath for std::process::ExitStatus {
    fn signal_death(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(libc::SIGKILL)
    }
}
