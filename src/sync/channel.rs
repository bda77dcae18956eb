//! [`Channel`]: a rendezvous between greenlets (gevent's `Channel`, a queue of size 0). A
//! `put` completes only when a getter takes the item.
//!
//! # Rules
//!
//! * A put with a getter parked hands the item to the longest-waiting getter and returns at
//!   once (that getter is woken owning it). Otherwise the putter parks with its item as an
//!   *offer*; getters take offers in the order they were made and wake their putters.
//! * Whether a parked put succeeded is decided by one fact: its offer was taken. A putter
//!   whose timer fires just as a getter takes the offer reports success (the item was
//!   delivered, once); a putter that leaves with its offer still there takes the item back
//!   (in the error, or dropped with a killed putter's stack). So an item is never lost and
//!   never delivered twice.
//! * `shutdown` wakes everyone: parked putters take their items back with
//!   [`QueueError::ShutDown`], getters take offers still there and then fail.

use super::{PutError, QueueError, WaitError};
use crate::hub::event_loop::{self as hub, WaitOn, Waiting, Wake, Waker};
use crate::hub::wait_list::WaitList;
use crate::wait::{Waitable, Watcher};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

struct Offer<T> {
    id: u64,
    item: T,
    putter: Waker,
}

/// A rendezvous: `put` waits until a getter has taken the item.
///
/// ```
/// use grove::sync::Channel;
/// use std::rc::Rc;
///
/// let ch = Rc::new(Channel::new());
/// let c = ch.clone();
/// let putter = grove::spawn(move || {
///     c.put("hello").unwrap(); // returns once main has taken it
///     "delivered"
/// });
/// assert_eq!(ch.get(), Ok("hello"));
/// assert_eq!(putter.get(), Ok("delivered"));
/// ```
pub struct Channel<T> {
    /// Parked putters' items, oldest first.
    offers: RefCell<VecDeque<Offer<T>>>,
    /// Items put while getters were parked, owned by the getters woken for them.
    handed: RefCell<VecDeque<T>>,
    getters: WaitList,
    /// Watchers (`wait_any`), told when an offer appears.
    watchers: WaitList,
    next_offer: Cell<u64>,
    shut: Cell<bool>,
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("offers", &self.offers.borrow().len())
            .field("shut_down", &self.shut.get())
            .finish()
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

/// Takes the offer back if it is still there, when dropped (a killed putter).
struct OfferGuard<'a, T> {
    ch: &'a Channel<T>,
    id: u64,
}

impl<T> OfferGuard<'_, T> {
    /// The item, if no getter took it.
    fn take_back(self) -> Option<T> {
        let r = self.ch.remove_offer(self.id);
        std::mem::forget(self);
        r
    }
}

impl<T> Drop for OfferGuard<'_, T> {
    fn drop(&mut self) {
        let item = self.ch.remove_offer(self.id);
        drop(item);
    }
}

impl<T> Channel<T> {
    /// A new channel.
    pub fn new() -> Channel<T> {
        Channel {
            offers: RefCell::new(VecDeque::new()),
            handed: RefCell::new(VecDeque::new()),
            getters: WaitList::new(),
            watchers: WaitList::new(),
            next_offer: Cell::new(0),
            shut: Cell::new(false),
        }
    }

    /// How many putters wait for a getter.
    pub fn waiting_putters(&self) -> usize {
        self.offers.borrow().len()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut.get()
    }

    fn remove_offer(&self, id: u64) -> Option<T> {
        let mut offers = self.offers.borrow_mut();
        let at = offers.iter().position(|o| o.id == id)?;
        offers.remove(at).map(|o| o.item)
    }

    /// Hands `item` to a getter, waiting until one takes it.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, true, None)
    }

    /// Hands `item` to a getter that is waiting now; else [`QueueError::Full`].
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, false, None)
    }

    /// Hands `item` to a getter, waiting at most `timeout`; else [`QueueError::TimedOut`]
    /// with the item back.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_inner(item, true, Some(timeout))
    }

    fn put_inner(
        &self,
        item: T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), PutError<T>> {
        if self.shut.get() {
            return Err(PutError::new(QueueError::ShutDown, item));
        }
        if self.getters.wake_one() {
            self.handed.borrow_mut().push_back(item);
            return Ok(());
        }
        if !block {
            return Err(PutError::new(QueueError::Full, item));
        }
        let id = self.next_offer.get();
        self.next_offer.set(id + 1);
        let (why, (offer, _timer)) = hub::park(Waiting::On(WaitOn::ChannelPut), |w| {
            self.offers.borrow_mut().push_back(Offer {
                id,
                item,
                putter: w.clone(),
            });
            self.watchers.wake_all();
            (OfferGuard { ch: self, id }, hub::timeout_guard(w, timeout))
        });
        match offer.take_back() {
            None => Ok(()), // taken by a getter, whatever woke us
            Some(item) => {
                let reason = match why {
                    Wake::Ready => QueueError::ShutDown,
                    other => WaitError::from_wake(other).into(),
                };
                Err(PutError::new(reason, item))
            }
        }
    }

    /// Takes an item, waiting for a putter.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_inner(true, None)
    }

    /// Takes an item from a putter waiting now; else [`QueueError::Empty`].
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.get_inner(false, None)
    }

    /// Takes an item, waiting at most `timeout`; else [`QueueError::TimedOut`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_inner(true, Some(timeout))
    }

    fn take_offer(&self) -> Option<T> {
        let o = self.offers.borrow_mut().pop_front()?;
        o.putter.wake(Wake::Ready);
        Some(o.item)
    }

    fn get_inner(&self, block: bool, timeout: Option<Duration>) -> Result<T, QueueError> {
        if let Some(item) = self.take_offer() {
            return Ok(item);
        }
        if self.shut.get() {
            return Err(QueueError::ShutDown);
        }
        if !block {
            return Err(QueueError::Empty);
        }
        let (why, _timer) = hub::park(Waiting::On(WaitOn::ChannelGet), |w| {
            self.getters.push(w);
            hub::timeout_guard(w, timeout)
        });
        match why {
            Wake::Ready => {
                let handed = self.handed.borrow_mut().pop_front();
                match handed {
                    Some(item) => Ok(item),
                    None => self.take_offer().ok_or(QueueError::ShutDown),
                }
            }
            other => Err(WaitError::from_wake(other).into()),
        }
    }

    /// Shuts the channel down: parked putters get their items back with
    /// [`QueueError::ShutDown`], getters take the offers left and then fail.
    pub fn shutdown(&self) {
        if self.shut.replace(true) {
            return;
        }
        let putters: Vec<Waker> = self
            .offers
            .borrow()
            .iter()
            .map(|o| o.putter.clone())
            .collect();
        for p in putters {
            p.wake(Wake::Ready);
        }
        self.getters.wake_all();
        self.watchers.wake_all();
    }

    /// Iterates over items as they are got; ends at shutdown.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.get().ok())
    }
}

impl<T> Waitable for Channel<T> {
    /// Ready when a get would not wait: a putter is waiting, or the channel is shut down.
    fn is_ready(&self) -> bool {
        !self.offers.borrow().is_empty() || self.shut.get()
    }

    fn watch(&self, watcher: &Watcher) {
        self.watchers.watch(watcher);
    }
}
