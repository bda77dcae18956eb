//! Servers (gevent's `gevent.server`): [`StreamServer`] runs a handler greenlet per TCP
//! connection, [`DatagramServer`] one per UDP datagram, and [`Workers`] runs a stream server
//! on several hubs (threads) at once, each accepting on its own `SO_REUSEPORT` listener
//! (gevent needs a process per core for this).
//!
//! | piece | file |
//! |---|---|
//! | [`StreamServer`]: the accept loop, back-off, stop | `stream.rs` |
//! | [`DatagramServer`] | `datagram.rs` |
//! | [`Workers`]: one server per hub, on n threads | `workers.rs` |

mod datagram;
mod stream;
mod workers;

pub use datagram::DatagramServer;
pub use stream::{Handler, StreamServer};
pub use workers::{ServerBuilder, Workers};

use crate::pool::{Group, Pool};
use crate::{Greenlet, GreenletError};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The most connections an accept loop takes per wake-up before it lets handlers run.
pub const MAX_ACCEPT: usize = 100;

/// The first back-off after an accept failed for want of resources.
pub const BACKOFF_START: Duration = Duration::from_millis(10);

/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The greenlet that runs a server's loop (accepting, or receiving datagrams), shared by
/// `serve_forever`, which waits for it, and `stop`, which kills it: the loop may be parked
/// where closing the socket does not reach it (waiting for room in a full handler pool,
/// sleeping in a back-off), and `stop` must not wait for that.
#[derive(Default)]
pub(crate) struct ServerLoop(RefCell<Option<Rc<Greenlet<io::Result<()>>>>>);

impl ServerLoop {
    /// Spawns the loop as a greenlet named `name`, unless it runs already.
    pub(crate) fn start(
        &self,
        name: &str,
        body: impl FnOnce() -> io::Result<()> + 'static,
    ) -> io::Result<()> {
        let mut l = self.0.borrow_mut();
        if l.is_none() {
            *l = Some(Rc::new(crate::Builder::new().name(name).spawn(body)?));
        }
        Ok(())
    }

    /// Waits until the loop ends: `Ok` if `stop` ended it, its error if it failed.
    pub(crate) fn wait(&self) -> io::Result<()> {
        let Some(g) = self.0.borrow().clone() else {
            return Ok(());
        };
        let _ = g.join();
        // Ended: by itself, or killed by a `stop` that still holds its own reference.
        self.0.borrow_mut().take();
        let Ok(g) = Rc::try_unwrap(g) else {
            return Ok(());
        };
        let name = g.name().unwrap_or("server loop").to_owned();
        match g.get() {
            Ok(r) => r,
            Err(GreenletError::Killed) => Ok(()),
            Err(e) => Err(io::Error::other(format!("grove: the {name} ended: {e}"))),
        }
    }

    /// Ends the loop wherever it is parked (it unwinds; handlers are not its to stop).
    pub(crate) fn kill(&self) {
        let g = self.0.borrow_mut().take();
        if let Some(g) = g {
            g.kill();
        }
    }
}

/// A server's handler greenlets: in a pool when their number is limited, else in a group.
pub(crate) struct Handlers {
    pool: Option<Pool>,
    group: Group,
}

impl Handlers {
    pub(crate) fn new(limit: Option<usize>) -> Handlers {
        Handlers {
            pool: limit.map(Pool::new),
            group: Group::new(),
        }
    }

    fn members(&self) -> &Pool {
        match &self.pool {
            Some(p) => p,
            None => &self.group,
        }
    }

    /// How many are running.
    pub(crate) fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether the limit is reached (never, without a limit).
    pub(crate) fn is_full(&self) -> bool {
        self.pool.as_ref().is_some_and(Pool::is_full)
    }

    /// Waits for room if the limit is reached; false if there can never be any.
    pub(crate) fn wait_room(&self) -> bool {
        match &self.pool {
            Some(p) if p.is_full() => p.wait_available(None),
            _ => true,
        }
    }

    /// Starts a handler for `peer` (room was checked); a failure is reported on stderr and
    /// the connection, owned by `body`, is closed as it drops.
    pub(crate) fn spawn(&self, peer: SocketAddr, body: impl FnOnce() + 'static) {
        let r = match &self.pool {
            Some(p) => p.try_spawn(body).map(drop).map_err(|e| e.to_string()),
            None => self.group.spawn(body).map(drop).map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            eprintln!("grove: server could not start a handler for {peer}: {e}");
        }
    }

    /// Waits up to `timeout` for the handlers to finish, then kills the rest; returns
    /// whether all finished on their own.
    pub(crate) fn stop(&self, timeout: Duration) -> bool {
        if self.members().join(Some(timeout)) {
            return true;
        }
        self.members().kill(Some(Duration::from_secs(1)));
        false
    }
}

/// What an accept error means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The connection went away before we took it (`ECONNABORTED`, `EPROTO`, Linux's
    /// `EPERM` from a firewall rule): try the next one at once.
    Retry,
    /// Out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): back off.
    Resources,
    /// Anything else: report it and back off.
    Other,
}

impl AcceptError {
    pub(crate) fn classify(e: &io::Error) -> AcceptError {
        match e.raw_os_error() {
            Some(libc::ECONNABORTED) | Some(libc::EPROTO) | Some(libc::EPERM) => AcceptError::Retry,
            Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
                AcceptError::Resources
            }
            _ => AcceptError::Other,
        }
    }
}

/// The accept loop's back-off: 10 ms doubling to 1 s, reset by a successful accept.
pub(crate) struct Backoff {
    next: Duration,
    reported: bool,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
            reported: false,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_START;
        self.reported = false;
    }

    /// Sleeps the current back-off (cooperatively) and doubles it.
    pub(crate) fn sleep(&mut self) {
        crate::sleep(self.next);
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    /// Reports an unexpected accept error on stderr, once per run of failures.
    pub(crate) fn report_once(&mut self, e: &io::Error) {
        if !self.reported {
            self.reported = true;
            eprintln!("grove: accept failed: {e}; backing off");
        }
    }

    /// The back-off the next failure will sleep.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(
            AcceptError::classify(&os(libc::ECONNABORTED)),
            AcceptError::Retry
        );
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(AcceptError::classify(&os(e)), AcceptError::Resources);
        }
        assert_eq!(AcceptError::classify(&os(libc::EBADF)), AcceptError::Other);
    }

    #[test]
    fn backoff_doubles_from_10_ms_to_1_s_and_resets() {
        std::thread::spawn(|| {
            grove_paused();
            let mut b = Backoff::new();
            let mut seen = vec![b.current()];
            for _ in 0..9 {
                b.sleep();
                seen.push(b.current());
            }
            let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
            assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
            b.reset();
            assert_eq!(b.current(), BACKOFF_START);
        })
        .join()
        .unwrap();
    }

    fn grove_paused() {
        crate::hub::Builder::new()
            .paused_clock(true)
            .install()
            .unwrap();
    }
}
