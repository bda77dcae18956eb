//! Synchronisation between greenlets: gevent's `gevent.event`, `gevent.lock` and
//! `gevent.queue`, in Rust idiom, plus a channel that crosses threads.
//!
//! | primitive | file | what it is |
//! |---|---|---|
//! | [`Event`] | `event.rs` | a flag; `set` wakes every waiter |
//! | [`AsyncResult`] | `async_result.rs` | a value or an error, set once, from any thread |
//! | [`Semaphore`] | `semaphore.rs` | counted permits; [`Semaphore::bounded`] refuses to over-release |
//! | [`Lock`], [`RLock`] | `lock.rs` | mutual exclusion owned by a greenlet; the reentrant one counts |
//! | [`Queue`], [`LifoQueue`], [`PriorityQueue`] | `queue.rs` | bounded or unbounded, `task_done`/`join`, `shutdown` |
//! | [`Channel`] | `channel.rs` | a rendezvous: `put` waits until a getter takes the item |
//! | [`mpsc`] | `mpsc.rs` | a channel whose senders may be on other threads (or other hubs) |
//!
//! Greenlets on one thread share these through `Rc` (they are `!Sync`, like the greenlets
//! themselves), except [`AsyncResult`] and the [`mpsc`] senders, which are `Send`.
//!
//! # Rules every primitive keeps
//!
//! * **FIFO service.** Greenlets blocked on the same primitive are served in the order they
//!   began waiting: a released permit, a put item, freed queue space goes to the greenlet
//!   that has waited longest. What is released is *handed over* to that greenlet at once
//!   (it is woken owning it), so a newcomer can never barge ahead of a waiter.
//! * **Nothing lost, nothing duplicated.** A waiter that times out or is killed has left
//!   the wait before anything can be handed to it, so it is skipped; once handed something,
//!   it keeps it even if a kill or a timeout arrives before it runs (the interrupt is raised
//!   at its next blocking call). A putter whose put did not happen gets its item back in the
//!   error.
//! * **Timeouts everywhere.** Every blocking operation has a form with a timeout, and
//!   [`timeout`](crate::timeout) interrupts any of them.
//! * **`wait_any`/`iwait`.** Every primitive is [`Waitable`](crate::Waitable): ready when
//!   the operation it stands for would not block (an event set, a permit free, an item to
//!   get).
//! * **No hang.** A wait that nothing could ever end returns
//!   [`WaitError::WouldBlockForever`] (gevent's `LoopExit`).

mod async_result;
mod channel;
mod event;
mod lock;
pub mod mpsc;
mod queue;
mod semaphore;

pub use async_result::{AlreadySet, AsyncError, AsyncResult};
pub use channel::Channel;
pub use event::Event;
pub use lock::{Lock, LockError, LockGuard, RLock, RLockGuard};
pub use queue::{
    BaseQueue, Discipline, Fifo, Lifo, LifoQueue, Priority, PriorityQueue, PutError, Queue,
    QueueError, QueueIter,
};
pub use semaphore::{OverRelease, Semaphore, SemaphorePermit};

use crate::hub::event_loop::Wake;
use std::fmt;
use std::io;

/// Why a blocking wait ended without what it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// Its timeout passed first.
    TimedOut,
    /// Nothing left in the loop could ever end the wait: no greenlet ready, no timer, no I/O,
    /// no handle another thread could use (gevent's `LoopExit`).
    WouldBlockForever,
    /// A kill or a scoped timeout arrived while the waiter was already unwinding, so it could
    /// not be raised; the wait was abandoned.
    Interrupted,
}

impl WaitError {
    /// The error for a wait that ended for reason `why` (anything but [`Wake::Ready`]).
    pub(crate) fn from_wake(why: Wake) -> WaitError {
        match why {
            Wake::Timeout => WaitError::TimedOut,
            Wake::LoopExit => WaitError::WouldBlockForever,
            Wake::Interrupted | Wake::Ready => WaitError::Interrupted,
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitError::TimedOut => "grove: the wait timed out",
            WaitError::WouldBlockForever => {
                "grove: this wait would block forever: no greenlet is ready, no timer is pending and no I/O is awaited (LoopExit)"
            }
            WaitError::Interrupted => {
                "grove: the wait was interrupted (kill or timeout) while the waiter was unwinding"
            }
        })
    }
}

impl std::error::Error for WaitError {}

impl From<WaitError> for io::Error {
    fn from(e: WaitError) -> io::Error {
        let kind = match e {
            WaitError::TimedOut => io::ErrorKind::TimedOut,
            WaitError::WouldBlockForever => io::ErrorKind::WouldBlock,
            WaitError::Interrupted => io::ErrorKind::Interrupted,
        };
        io::Error::new(kind, e)
    }
}
