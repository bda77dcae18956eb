//! The hub's table of file descriptors: who waits on which fd, in which direction, and what
//! the poller has been told about it.
//!
//! # Rules
//!
//! * Each fd has an *owner*: a socket or pipe of grove's (`Evented`, a non-zero id), or a
//!   caller of the public `wait_readable`/`wait_writable` (owner 0, *transient*).
//! * **Transient** registrations last one wait: when the last waiter leaves, the fd is
//!   deleted from the poller. grove cannot know when a foreign fd will be closed.
//! * **Owned** registrations persist across waits: when the last waiter leaves, the interest
//!   stays registered, so a socket that waits again costs no system call (the echo pattern:
//!   read, would block, wait, read...). Two things end it:
//!   - the poller reports the fd ready in a direction nobody waits for, and did so already
//!     at an earlier poll, with a poll made on a *drained* run queue since (see
//!     [`FdTable::drained`]): that direction is dropped from the registration (the fd is
//!     deleted when none is left), so an idle socket with unread data, a hang-up or an error
//!     costs the loop at most one extra wake-up, never a spin. The first such report only
//!     starts a *grace*: while greenlets are ready the loop polls every so often without
//!     running them all first, so a socket whose reader was woken but has not run yet is
//!     reported again, unread. Dropping it then would cost two system calls per message
//!     (delete now, add back when the reader waits again): the lot of every server with more
//!     busy connections than the loop runs between two polls. A new waiter ends the grace;
//!   - the owner is dropped ([`FdTable::forget`], before its fd is closed).
//! * A number reused by a new owner while an old registration lingers (the old owner was
//!   dropped on another thread, so this hub never heard of it) is re-registered on first use:
//!   entries remember their owner, and a different owner starts afresh.
//! * The loop sleeps forever only if no greenlet waits on any fd: [`FdTable::waiting`] counts
//!   waiters, not registrations.

use super::event_loop::{Wake, Waker};
use crate::sys::{Event, Interest, Poller};
use std::io;
use std::os::fd::RawFd;

/// Who waits on one fd, and what the poller has registered for it.
#[derive(Default)]
struct Entry {
    readers: Vec<Waker>,
    writers: Vec<Waker>,
    /// The directions registered with the poller, `None` if the fd is not registered.
    registered: Option<(bool, bool)>,
    owner: u64,
    /// Per direction (read, write): the [`FdTable::drained`] count when the poller reported it
    /// ready with nobody waiting, 0 if it has not since the last waiter came (the grace).
    unwaited: [u64; 2],
}

impl Entry {
    fn want(&self) -> (bool, bool) {
        (!self.readers.is_empty(), !self.writers.is_empty())
    }
}

fn interest(dirs: (bool, bool)) -> Interest {
    Interest {
        readable: dirs.0,
        writable: dirs.1,
    }
}

/// The table; see the [module docs](self). Indexed by the fd number itself: descriptors are
/// small integers the kernel hands out lowest first, so a vector is dense, and a lookup on
/// every park and every event costs no hashing.
pub(crate) struct FdTable {
    slots: Vec<Entry>,
    /// Wakers in all the lists (live or spent but not yet pruned).
    waiters: usize,
    /// 1 + the polls made with no greenlet ready (0 is the "no grace" of
    /// [`Entry::unwaited`]); see [`FdTable::drained`].
    drained: u64,
}

impl Default for FdTable {
    fn default() -> FdTable {
        FdTable {
            slots: Vec::new(),
            waiters: 0,
            drained: 1,
        }
    }
}

impl FdTable {
    fn get_mut(&mut self, fd: RawFd) -> Option<&mut Entry> {
        self.slots.get_mut(usize::try_from(fd).ok()?)
    }

    fn slot(&mut self, fd: RawFd) -> &mut Entry {
        let i = usize::try_from(fd).expect("grove: a negative file descriptor");
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, Entry::default);
        }
        &mut self.slots[i]
    }

    /// Whether any greenlet waits on an fd.
    pub(crate) fn waiting(&self) -> bool {
        self.waiters > 0
    }

    /// The loop is about to poll with no greenlet ready: every greenlet woken before this
    /// point has run, so a direction reported with nobody waiting before it and again after
    /// it is idle for real (the module rules).
    pub(crate) fn drained(&mut self) {
        self.drained += 1;
    }

    /// Adds `w` as a waiter of `fd` in one direction, registering what is needed.
    pub(crate) fn watch(
        &mut self,
        poller: &mut Poller,
        fd: RawFd,
        write: bool,
        w: Waker,
        owner: u64,
    ) -> io::Result<()> {
        let entry = self.slot(fd);
        if entry.owner != owner {
            // A new user of this number: whatever is registered belongs to an earlier one.
            entry.owner = owner;
            entry.unwaited = [0, 0];
            if entry.registered.is_some() {
                let _ = poller.delete(fd);
                entry.registered = None;
            }
        }
        let list = if write {
            &mut entry.writers
        } else {
            &mut entry.readers
        };
        list.push(w);
        entry.unwaited[usize::from(write)] = 0;
        let want = entry.want();
        let need = match entry.registered {
            Some(have) if owner != 0 => (have.0 || want.0, have.1 || want.1),
            _ => want,
        };
        let r = match entry.registered {
            None => match poller.add(fd, fd as usize, interest(need)) {
                // The number was registered by an owner this table forgot (the kernel or
                // the table backend still has it): take the registration over.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    poller.modify(fd, fd as usize, interest(need))
                }
                r => r,
            },
            Some(have) if have != need => poller.modify(fd, fd as usize, interest(need)),
            Some(_) => Ok(()),
        };
        match r {
            Ok(()) => {
                entry.registered = Some(need);
                self.waiters += 1;
                Ok(())
            }
            Err(e) => {
                let list = if write {
                    &mut entry.writers
                } else {
                    &mut entry.readers
                };
                list.pop();
                Err(e)
            }
        }
    }

    /// Drops the spent waiters of `fd` (woken, timed out, killed); a transient fd with no
    /// waiter left is deleted from the poller.
    pub(crate) fn unwatch(&mut self, poller: &mut Poller, fd: RawFd) {
        let Some(entry) = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)) else {
            return;
        };
        let before = entry.readers.len() + entry.writers.len();
        entry.readers.retain(|w| !w.is_stale());
        entry.writers.retain(|w| !w.is_stale());
        self.waiters -= before - (entry.readers.len() + entry.writers.len());
        if entry.owner != 0 {
            return; // owned: the registration persists (see the module rules)
        }
        let want = entry.want();
        if want == (false, false) {
            if entry.registered.is_some() {
                let _ = poller.delete(fd);
            }
            *entry = Entry::default();
        } else if entry.registered != Some(want)
            && poller.modify(fd, fd as usize, interest(want)).is_ok()
        {
            entry.registered = Some(want);
        }
    }

    /// The owner of `fd` is about to close it: deletes its registration.
    pub(crate) fn forget(&mut self, poller: &mut Poller, fd: RawFd, owner: u64) {
        let Some(entry) = self.get_mut(fd) else {
            return;
        };
        if entry.owner != owner {
            return;
        }
        if entry.registered.is_some() {
            let _ = poller.delete(fd);
        }
        let entry = std::mem::take(entry);
        self.waiters -= entry.readers.len() + entry.writers.len();
        // Anyone still parked on it learns of the close from its own socket.
        for w in entry.readers.into_iter().chain(entry.writers) {
            w.wake(Wake::Ready);
        }
    }

    /// Wakes the waiters of `fd` (closing it): each learns the outcome from its socket.
    pub(crate) fn wake_all(&self, fd: RawFd) {
        if let Some(e) = usize::try_from(fd).ok().and_then(|i| self.slots.get(i)) {
            for w in e.readers.iter().chain(e.writers.iter()) {
                w.wake(Wake::Ready);
            }
        }
    }

    /// Handles one event from the poller: wakes the waiters of the directions it reports,
    /// and drops from the registration a ready direction nobody waits for once its grace is
    /// over (the module rules).
    pub(crate) fn dispatch(&mut self, poller: &mut Poller, ev: &Event) {
        let fd = ev.token as RawFd;
        let drained = self.drained;
        let Some(entry) = self.get_mut(fd) else {
            return;
        };
        // Waking only queues the greenlet (it touches the run queue, not this table).
        let mut idle = [false, false];
        for (dir, ready, list) in [
            (0, ev.readable, &entry.readers),
            (1, ev.writable, &entry.writers),
        ] {
            if !ready {
                continue;
            }
            let mut any = false;
            for w in list {
                any |= w.wake(Wake::Ready);
            }
            if any {
                entry.unwaited[dir] = 0;
            } else if entry.unwaited[dir] == 0 {
                entry.unwaited[dir] = drained; // the grace starts
            } else if entry.unwaited[dir] < drained {
                idle[dir] = true; // reported again after the queue drained: idle
            }
        }
        let Some(have) = entry.registered else {
            return;
        };
        if idle == [false, false] {
            return;
        }
        for (dir, is_idle) in idle.into_iter().enumerate() {
            if is_idle {
                entry.unwaited[dir] = 0;
            }
        }
        let keep = (have.0 && !idle[0], have.1 && !idle[1]);
        if keep == have {
            return;
        }
        if keep == (false, false) {
            let _ = poller.delete(fd);
            entry.registered = None;
        } else if poller.modify(fd, fd as usize, interest(keep)).is_ok() {
            entry.registered = Some(keep);
        }
    }

    /// Forgets everything (the hub is being torn down).
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.waiters = 0;
    }
}
