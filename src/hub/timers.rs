//! The hub's timer queue: pending timers keyed by a monotonic [`Deadline`], earliest first.
//!
//! Time is a plain `u64` of nanoseconds since an arbitrary epoch ([`Deadline`]), not
//! [`std::time::Instant`], so that a test clock can drive the queue with made-up numbers and
//! the hub can convert once at its edge with an [`Epoch`]. The queue never reads a clock
//! itself: callers pass `now` in.
//!
//! [`TimerQueue`] is an indexed 4-ary min-heap:
//!
//! - the heap is a `Vec` of small `Copy` entries (deadline, insertion sequence number, slot),
//!   16 bytes each, ordered by `(deadline, sequence)`; the sequence number makes timers with
//!   equal deadlines come out in insertion order (FIFO), which the hub relies on. It is 32
//!   bits: when it runs out (after 4 billion inserts) the pending timers are renumbered in
//!   the same order, so the FIFO rule holds for ever;
//! - a slab of slots gives each timer a generation number and its position in the heap
//!   (8 bytes, in their own `Vec`, the only slab memory that sifting writes to), and holds
//!   its value (in a parallel `Vec<Option<T>>`); a [`TimerId`] is (slot, generation), so
//!   cancelling or rescheduling is O(log n) and an id whose timer has fired or been cancelled
//!   is simply stale: it returns `None` or `false`, never panics, and never touches a newer
//!   timer that reuses its slot;
//! - a timer can also be inserted *unarmed*, with a delay instead of a deadline
//!   ([`TimerQueue::insert_unarmed`]): it waits in a short list, its FIFO place already
//!   taken, until the next [`TimerQueue::arm`] (or `pop_expired`) gives it `now + delay`. A
//!   caller that wants "in `delay` from now" then needs no clock read of its own: the next
//!   `now` it passes in was read later. A slot's position says which of the two places its
//!   timer is in (the top bit marks the list).
//!
//! Memory is `16 + 8 + size_of::<Option<T>>()` bytes per timer, plus `Vec` growth slack:
//! 32 bytes per timer for an 8-byte `T` with a niche (a `Box`, an `Rc`, a `NonZeroU64`), 40
//! for a plain `u64` or a 16-byte `T` with a niche (the hub's). Small matters: a burst of
//! sleeps writes all of it for the first time, a page fault every 4 KiB, unless the room was
//! made beforehand with [`TimerQueue::prepare`] (the hub does, as greenlets are spawned). The
//! slab never shrinks (a slot's generation must outlive every id that names it); the
//! high-water mark of pending timers sets its size.
//!
//! ```
//! use grove::hub::timers::{Deadline, TimerQueue};
//! use std::time::Duration;
//!
//! let mut q = TimerQueue::new();
//! let now = Deadline::from_nanos(1_000);
//! let a = q.insert(Deadline::after(now, Duration::from_nanos(50)), "a");
//! let b = q.insert(Deadline::after(now, Duration::from_nanos(10)), "b");
//! let c = q.insert(Deadline::after(now, Duration::from_nanos(10)), "c");
//! assert_eq!(q.cancel(c), Some("c"));
//! assert_eq!(q.cancel(c), None); // stale: already cancelled
//! assert_eq!(q.next_deadline(), Some(Deadline::from_nanos(1_010)));
//! assert_eq!(q.pop_expired(now), None); // nothing due yet
//! assert_eq!(q.pop_expired(Deadline::from_nanos(2_000)), Some((b, "b")));
//! assert_eq!(q.pop_expired(Deadline::from_nanos(2_000)), Some((a, "a")));
//! assert!(q.is_empty());
//! ```
#![forbid(unsafe_code)]

use core::time::Duration;
use std::time::Instant;

/// A point in monotonic time: nanoseconds since an arbitrary epoch.
///
/// The epoch is whatever the caller chose (an [`Epoch`] for real time, zero for a test
/// clock); only differences and order matter. [`Deadline::MAX`] is the far future ("never"),
/// about 584 years after the epoch: every arithmetic helper saturates to it rather than
/// overflowing or panicking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub u64);

impl Deadline {
    /// The epoch itself.
    pub const ZERO: Deadline = Deadline(0);
    /// The far future: what overflowing deadlines and `Duration::MAX` clamp to.
    pub const MAX: Deadline = Deadline(u64::MAX);

    /// The deadline `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Deadline {
        Deadline(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The deadline `delay` after `now`, saturating: a delay too long to represent (up to
    /// `Duration::MAX`) gives [`Deadline::MAX`]; a zero delay gives `now` itself, which
    /// [`TimerQueue::pop_expired`] with the same `now` already treats as expired.
    pub fn after(now: Deadline, delay: Duration) -> Deadline {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        Deadline(now.0.saturating_add(nanos))
    }

    /// How long from `now` until this deadline; zero if it has passed. This is the hub's
    /// poll timeout.
    pub fn saturating_duration_since(self, now: Deadline) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(now.0))
    }

    /// Whether this is [`Deadline::MAX`], the "never" deadline.
    pub const fn is_max(self) -> bool {
        self.0 == u64::MAX
    }
}

/// Converts between [`std::time::Instant`] and [`Deadline`], counting from a fixed base
/// instant.
///
/// The hub keeps one per thread and converts at its edge: `epoch.now()` before checking
/// timers, `epoch.deadline(instant)` for a caller's absolute deadline. Instants before the
/// base map to [`Deadline::ZERO`]; instants more than ~584 years after it map to
/// [`Deadline::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch {
    base: Instant,
}

impl Epoch {
    /// An epoch starting now.
    pub fn new() -> Epoch {
        Epoch {
            base: Instant::now(),
        }
    }

    /// An epoch starting at `base`.
    pub fn starting_at(base: Instant) -> Epoch {
        Epoch { base }
    }

    /// The instant that [`Deadline::ZERO`] stands for.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// The current time as a [`Deadline`].
    pub fn now(&self) -> Deadline {
        self.deadline(Instant::now())
    }

    /// `instant` as a [`Deadline`], saturating at both ends.
    pub fn deadline(&self, instant: Instant) -> Deadline {
        let since = instant.saturating_duration_since(self.base);
        Deadline::after(Deadline::ZERO, since)
    }

    /// `deadline` as an [`Instant`], or `None` if the platform's `Instant` cannot represent
    /// it (typically [`Deadline::MAX`]).
    pub fn instant(&self, deadline: Deadline) -> Option<Instant> {
        self.base
            .checked_add(Duration::from_nanos(deadline.as_nanos()))
    }
}

impl Default for Epoch {
    fn default() -> Epoch {
        Epoch::new()
    }
}

/// Names one timer in a [`TimerQueue`]: a slot index and the slot's generation.
///
/// Once the timer fires or is cancelled its id is stale for good: the slot's generation moves
/// on when it is freed, so an old id does not match the next timer stored in the same slot.
/// (Generations are 32 bits and wrap: an id kept across four billion reuses of one slot could
/// alias, which the hub never does.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

impl TimerId {
    /// The id packed into a `u64` (generation in the high half), e.g. to stash it in a
    /// user-data word.
    pub const fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | self.slot as u64
    }

    /// The id [`to_bits`](TimerId::to_bits) packed. Any `u64` is accepted: one that names no
    /// live timer just behaves as a stale id.
    pub const fn from_bits(bits: u64) -> TimerId {
        TimerId {
            slot: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// One heap entry. `Copy` and small, so sifting moves 16 bytes, never a `T`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: u64,
    /// Insertion order, unique among the pending timers: breaks deadline ties FIFO.
    seq: u32,
    slot: u32,
}

impl Entry {
    #[inline]
    fn key(&self) -> (u64, u32) {
        (self.deadline, self.seq)
    }
}

/// The bookkeeping half of one slab slot; the slot is occupied while its value (in
/// `TimerQueue::values`, same index) is `Some`.
#[derive(Clone, Copy, Debug)]
struct Meta {
    generation: u32,
    /// Occupied: the entry's index in the heap. Vacant: the next free slot, or `NONE`.
    link: u32,
}

const NONE: u32 = u32::MAX;

/// How many timers' worth of room [`TimerQueue::prepare`] adds at a time: a page of heap
/// entries.
pub const PREPARE_STEP: usize = 256;

/// The smallest page size: writing once every this many bytes touches every page.
const PAGE: usize = 4096;

/// Grows `v` to hold `n` elements without reallocating, and writes (zeroes) one element per
/// page of its spare room from index `from` (from its length if its buffer is no longer at
/// `was_at`, the address it had when last prepared) up to `n`, so that those pages are
/// resident. Returns the buffer's address. The spare room stays uninitialized as far as the
/// `Vec` is concerned: only `MaybeUninit` slots beyond its length are written.
fn prepare_vec<X>(v: &mut Vec<X>, n: usize, from: usize, was_at: usize) -> usize {
    v.reserve(n.saturating_sub(v.len()));
    let at = v.as_ptr() as usize;
    let from = if at == was_at { from } else { 0 };
    let len = v.len();
    let spare = v.spare_capacity_mut();
    let (lo, hi) = (from.max(len) - len, n.saturating_sub(len).min(spare.len()));
    if lo < hi {
        let step = (PAGE / core::mem::size_of::<X>().max(1)).max(1);
        for i in (lo..hi).step_by(step).chain([hi - 1]) {
            spare[i] = core::mem::MaybeUninit::zeroed();
        }
        // The writes must happen even though nothing reads these slots before an insert
        // overwrites them.
        core::hint::black_box(&mut spare[lo..hi]);
    }
    at
}

/// Children per heap node. Four halves the depth of a binary heap and keeps the children of
/// a node within one or two cache lines.
const ARITY: usize = 4;

/// Pending timers, earliest deadline first, FIFO among equal deadlines.
///
/// Every operation is O(log n) except [`next_deadline`](TimerQueue::next_deadline),
/// [`len`](TimerQueue::len) and the lookups, which are O(1). See the [module
/// docs](self) for the layout and memory cost.
#[derive(Debug)]
pub struct TimerQueue<T> {
    heap: Vec<Entry>,
    meta: Vec<Meta>,
    values: Vec<Option<T>>,
    free: u32,
    next_seq: u32,
    /// What [`prepare`](TimerQueue::prepare) last made ready: room for this many timers, in
    /// the buffers at these addresses (heap, values). A buffer that has moved since (grown
    /// by an insert past the prepared count) is prepared again from its length.
    prepared: usize,
    prepared_at: [usize; 2],
    /// Timers inserted with [`insert_unarmed`](TimerQueue::insert_unarmed), in insertion
    /// order, waiting for the `now` of the next [`arm`](TimerQueue::arm). A cancelled or
    /// rescheduled one stays as a tombstone (slot `NONE`) until then.
    unarmed: Vec<Unarmed>,
    /// How many of `unarmed` are not tombstones.
    unarmed_live: usize,
}

/// A timer waiting to be armed: due `delay` nanoseconds after the `now` it is armed with.
#[derive(Clone, Copy, Debug)]
struct Unarmed {
    delay: u64,
    /// Its place in the FIFO order, taken when it was inserted.
    seq: u32,
    slot: u32,
}

/// A slot's `link` with this bit set: its timer is unarmed, at index `link & !UNARMED` of
/// `unarmed`. Heap positions stay below it (at most `UNARMED - 1` timers are pending).
const UNARMED: u32 = 1 << 31;

/// Where a live timer is.
enum Place {
    Heap(usize),
    Unarmed(usize),
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue::new()
    }
}

impl<T> TimerQueue<T> {
    /// An empty queue. Allocates nothing until the first insert.
    pub const fn new() -> Self {
        TimerQueue {
            heap: Vec::new(),
            meta: Vec::new(),
            values: Vec::new(),
            free: NONE,
            next_seq: 0,
            prepared: 0,
            prepared_at: [0; 2],
            unarmed: Vec::new(),
            unarmed_live: 0,
        }
    }

    /// An empty queue with room for `capacity` timers before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        TimerQueue {
            heap: Vec::with_capacity(capacity),
            meta: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
            free: NONE,
            next_seq: 0,
            prepared: 0,
            prepared_at: [0; 2],
            unarmed: Vec::new(),
            unarmed_live: 0,
        }
    }

    /// Makes room for `n` pending timers in memory that has been written once already, so
    /// that inserts bringing the queue up to `n` timers reallocate neither the heap nor the
    /// values, nor touch a fresh page of theirs. Changes nothing a caller can observe but
    /// [`allocated_bytes`](Self::allocated_bytes).
    ///
    /// Why: the first write to a fresh page is a page fault, microseconds on a virtual
    /// machine (about 2 µs measured on the benchmark box), one every hundred or so inserts.
    /// In a burst of first waits (many greenlets just spawned, each going to sleep) those
    /// faults land inside hub turns, and every greenlet queued behind waits for them. The hub
    /// calls this as its number of live greenlets reaches a new high (see
    /// `event_loop::register`), so the faults are paid at spawn instead, a page at a time:
    /// a greenlet brings room for its first timer with it, as a task of tokio's carries its
    /// timer entry.
    ///
    /// Amortized O(1): it does nothing until `n` passes the prepared count by
    /// [`PREPARE_STEP`], then prepares that many more.
    pub fn prepare(&mut self, n: usize) {
        if n <= self.prepared {
            return;
        }
        let n = n.max(self.prepared.saturating_add(PREPARE_STEP));
        let from = self.prepared;
        // The slab's `meta` (8 bytes a timer) is left to grow as it fills: it is written only
        // when a timer takes a slot never used before, and leaving it out keeps what an idle
        // greenlet costs (one that waits without a timer, on a semaphore say) to 32 bytes of
        // room here instead of 40.
        let at = [
            prepare_vec(&mut self.heap, n, from, self.prepared_at[0]),
            prepare_vec(&mut self.values, n, from, self.prepared_at[1]),
        ];
        self.prepared = n;
        self.prepared_at = at;
    }

    /// The number of pending timers (armed or not).
    pub fn len(&self) -> usize {
        self.heap.len() + self.unarmed_live
    }

    /// Whether no timer is pending (armed or not).
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.unarmed_live == 0
    }

    /// Bytes this queue has allocated (heap and slab capacity; not what the values
    /// themselves own).
    pub fn allocated_bytes(&self) -> usize {
        self.heap.capacity() * core::mem::size_of::<Entry>()
            + self.meta.capacity() * core::mem::size_of::<Meta>()
            + self.values.capacity() * core::mem::size_of::<Option<T>>()
    }

    /// Adds a timer due at `deadline` holding `value`, and returns its id. O(log n).
    ///
    /// Among timers with equal deadlines, the one inserted first fires first.
    ///
    /// # Panics
    ///
    /// If more than `2^31 - 1` timers are pending at once.
    pub fn insert(&mut self, deadline: Deadline, value: T) -> TimerId {
        let pos = self.heap.len() as u32;
        let (slot, generation) = self.take_slot(value, pos);
        let seq = self.take_seq();
        self.push_entry(deadline.0, seq, slot);
        TimerId { slot, generation }
    }

    /// Adds a timer due `delay` after the `now` of the next [`arm`](Self::arm) (which
    /// [`pop_expired`](Self::pop_expired) does first), and returns its id. O(1).
    ///
    /// For a caller that wants a timer `delay` from *now* without reading a clock: the next
    /// `now` the queue is given is read later than this call, so the timer is due no
    /// earlier than `delay` after it. Until armed, the timer counts in [`len`](Self::len),
    /// can be cancelled, rescheduled and looked up, but has no [`deadline`](Self::deadline)
    /// and does not count in [`next_deadline`](Self::next_deadline). Its place in the FIFO
    /// order among equal deadlines is taken now, as [`insert`](Self::insert) takes it.
    ///
    /// # Panics
    ///
    /// If more than `2^31 - 1` timers are pending at once.
    pub fn insert_unarmed(&mut self, delay: Duration, value: T) -> TimerId {
        let at = self.unarmed.len() as u32;
        let (slot, generation) = self.take_slot(value, UNARMED | at);
        let seq = self.take_seq();
        self.unarmed.push(Unarmed {
            delay: u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX),
            seq,
            slot,
        });
        self.unarmed_live += 1;
        TimerId { slot, generation }
    }

    /// Arms the timers inserted with [`insert_unarmed`](Self::insert_unarmed): each is due
    /// its delay after `now` (saturating). `now` must have been read after they were
    /// inserted. O(k log n) for k unarmed timers.
    pub fn arm(&mut self, now: Deadline) {
        if self.unarmed.is_empty() {
            return;
        }
        let mut list = core::mem::take(&mut self.unarmed);
        for u in list.drain(..).filter(|u| u.slot != NONE) {
            self.push_entry(now.0.saturating_add(u.delay), u.seq, u.slot);
        }
        self.unarmed = list; // empty, keeping its room
        self.unarmed_live = 0;
    }

    /// Removes the timer `id` and returns its value, or `None` if `id` is stale (fired or
    /// cancelled already) or was never issued by this queue. O(log n); never panics.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        match self.locate(id)? {
            Place::Heap(pos) => self.remove_at(pos),
            Place::Unarmed(i) => self.bury(i),
        }
        Some(self.free_slot(id.slot))
    }

    /// Moves the timer `id` to `deadline`; returns `false` (and does nothing) if `id` is
    /// stale. O(log n).
    ///
    /// A rescheduled timer counts as newly inserted for the FIFO rule: it fires after every
    /// timer already pending with the same deadline, even if its deadline did not change.
    pub fn reschedule(&mut self, id: TimerId, deadline: Deadline) -> bool {
        let pos = match self.locate(id) {
            None => return false,
            Some(Place::Heap(pos)) => pos,
            Some(Place::Unarmed(i)) => {
                // Armed now, at the deadline given, as if newly inserted.
                self.bury(i);
                let seq = self.take_seq();
                self.push_entry(deadline.0, seq, id.slot);
                return true;
            }
        };
        let seq = self.take_seq();
        let entry = &mut self.heap[pos];
        entry.deadline = deadline.0;
        entry.seq = seq;
        if self.sift_up(pos) == pos {
            self.sift_down(pos);
        }
        true
    }

    /// The earliest deadline of the armed timers, or `None` if none is pending. O(1).
    pub fn next_deadline(&self) -> Option<Deadline> {
        self.heap.first().map(|e| Deadline(e.deadline))
    }

    /// Removes and returns the earliest timer if it is due, that is if its deadline is at or
    /// before `now`; `None` otherwise. O(log n).
    ///
    /// Calling it until it returns `None` yields every expired timer in deadline order, and
    /// timers with equal deadlines in the order they were inserted (or last rescheduled).
    ///
    /// It first [arms](Self::arm) the unarmed timers with `now`.
    pub fn pop_expired(&mut self, now: Deadline) -> Option<(TimerId, T)> {
        if !self.unarmed.is_empty() {
            self.arm(now);
        }
        let top = *self.heap.first()?;
        if top.deadline > now.0 {
            return None;
        }
        self.remove_at(0);
        let generation = self.meta[top.slot as usize].generation;
        let value = self.free_slot(top.slot);
        Some((
            TimerId {
                slot: top.slot,
                generation,
            },
            value,
        ))
    }

    /// Whether `id` names a pending timer.
    pub fn contains(&self, id: TimerId) -> bool {
        self.locate(id).is_some()
    }

    /// The deadline of the pending timer `id`, or `None` if `id` is stale or not armed yet.
    pub fn deadline(&self, id: TimerId) -> Option<Deadline> {
        match self.locate(id)? {
            Place::Heap(pos) => Some(Deadline(self.heap[pos].deadline)),
            Place::Unarmed(_) => None,
        }
    }

    /// Every pending timer's value with when it is due, in no particular order: armed
    /// timers `Ok(deadline)`, unarmed ones `Err(delay)` (due that long after they are
    /// armed). O(n); for introspection.
    pub fn pending(&self) -> impl Iterator<Item = (Result<Deadline, Duration>, &T)> + '_ {
        let value = |slot: u32| {
            self.values[slot as usize]
                .as_ref()
                .expect("a pending timer's slot is occupied")
        };
        let armed = (self.heap.iter()).map(move |e| (Ok(Deadline(e.deadline)), value(e.slot)));
        let unarmed = (self.unarmed.iter())
            .filter(|u| u.slot != NONE)
            .map(move |u| (Err(Duration::from_nanos(u.delay)), value(u.slot)));
        armed.chain(unarmed)
    }

    /// The value of the pending timer `id`, or `None` if `id` is stale.
    pub fn get(&self, id: TimerId) -> Option<&T> {
        let m = self.meta.get(id.slot as usize)?;
        if m.generation != id.generation {
            return None;
        }
        self.values[id.slot as usize].as_ref()
    }

    /// The value of the pending timer `id`, mutably, or `None` if `id` is stale.
    pub fn get_mut(&mut self, id: TimerId) -> Option<&mut T> {
        let m = self.meta.get(id.slot as usize)?;
        if m.generation != id.generation {
            return None;
        }
        self.values[id.slot as usize].as_mut()
    }

    // ---- internals ----

    fn take_seq(&mut self) -> u32 {
        if self.next_seq == u32::MAX {
            self.renumber();
        }
        let seq = self.next_seq;
        self.next_seq = seq + 1;
        seq
    }

    /// Gives the pending timers, armed and unarmed, the sequence numbers `0..len` in the
    /// order they had (all were handed out in increasing order since the last renumbering,
    /// so that is insertion order): no comparison between two entries changes, so the heap
    /// stays ordered.
    #[cold]
    fn renumber(&mut self) {
        // (seq, true for the heap, index)
        let mut order: Vec<(u32, bool, usize)> = (self.heap.iter().enumerate())
            .map(|(i, e)| (e.seq, true, i))
            .chain(
                (self.unarmed.iter().enumerate())
                    .filter(|(_, u)| u.slot != NONE)
                    .map(|(i, u)| (u.seq, false, i)),
            )
            .collect();
        order.sort_unstable_by_key(|&(seq, ..)| seq);
        for (seq, &(_, heap, i)) in order.iter().enumerate() {
            match heap {
                true => self.heap[i].seq = seq as u32,
                false => self.unarmed[i].seq = seq as u32,
            }
        }
        self.next_seq = order.len() as u32;
    }

    /// Adds a heap entry for the occupied `slot` and sifts it into place (which sets the
    /// slot's position).
    fn push_entry(&mut self, deadline: u64, seq: u32, slot: u32) {
        let pos = self.heap.len();
        self.heap.push(Entry {
            deadline,
            seq,
            slot,
        });
        self.sift_up(pos);
    }

    /// Takes a free slot (or a new one) for `value`, its `link` set to `link`; returns it and
    /// its generation.
    fn take_slot(&mut self, value: T, link: u32) -> (u32, u32) {
        if self.free != NONE {
            let slot = self.free;
            let m = &mut self.meta[slot as usize];
            self.free = m.link;
            m.link = link;
            self.values[slot as usize] = Some(value);
            (slot, m.generation)
        } else {
            let slot = u32::try_from(self.meta.len())
                .ok()
                .filter(|&s| s < UNARMED - 1)
                .expect("grove: more than 2^31 - 1 pending timers");
            self.meta.push(Meta {
                generation: 0,
                link,
            });
            self.values.push(Some(value));
            (slot, 0)
        }
    }

    /// Where the live timer `id` is.
    fn locate(&self, id: TimerId) -> Option<Place> {
        let m = self.meta.get(id.slot as usize)?;
        if m.generation != id.generation || self.values[id.slot as usize].is_none() {
            return None;
        }
        Some(match m.link & UNARMED {
            0 => Place::Heap(m.link as usize),
            _ => Place::Unarmed((m.link & !UNARMED) as usize),
        })
    }

    /// Takes the unarmed timer at index `i` out (its slot is the caller's): the last one is
    /// popped, with any tombstones before it, so that a timer cancelled right after it was
    /// inserted (a wait that ended at once) leaves nothing behind; another is left as a
    /// tombstone until the next `arm`.
    fn bury(&mut self, i: usize) {
        self.unarmed[i].slot = NONE;
        self.unarmed_live -= 1;
        while self.unarmed.last().is_some_and(|u| u.slot == NONE) {
            self.unarmed.pop();
        }
    }

    /// Empties `slot` (which must be occupied and already out of the heap), bumps its
    /// generation so old ids go stale, and puts it on the free list.
    fn free_slot(&mut self, slot: u32) -> T {
        let m = &mut self.meta[slot as usize];
        m.generation = m.generation.wrapping_add(1);
        m.link = self.free;
        self.free = slot;
        self.values[slot as usize]
            .take()
            .expect("freeing an occupied slot")
    }

    /// Removes the heap entry at `pos`, keeping the heap ordered. The slot is left alone.
    fn remove_at(&mut self, pos: usize) {
        let last = self.heap.pop().expect("remove_at on an empty heap");
        if pos < self.heap.len() {
            self.heap[pos] = last;
            self.meta[last.slot as usize].link = pos as u32;
            if self.sift_up(pos) == pos {
                self.sift_down(pos);
            }
        }
    }

    #[inline]
    fn place(&mut self, pos: usize, entry: Entry) {
        self.heap[pos] = entry;
        self.meta[entry.slot as usize].link = pos as u32;
    }

    /// Moves the entry at `pos` up while it is smaller than its parent; returns where it
    /// ended.
    fn sift_up(&mut self, mut pos: usize) -> usize {
        let entry = self.heap[pos];
        let key = entry.key();
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            let p = self.heap[parent];
            if p.key() <= key {
                break;
            }
            self.place(pos, p);
            pos = parent;
        }
        self.place(pos, entry);
        pos
    }

    /// Moves the entry at `pos` down while a child is smaller; returns where it ended.
    ///
    /// In a large queue each level down is a cache miss that the next depends on (a pop from
    /// 100k timers goes 8 levels deep); so at each level the children's children are
    /// prefetched, and the misses of consecutive levels overlap.
    fn sift_down(&mut self, mut pos: usize) -> usize {
        let entry = self.heap[pos];
        let key = entry.key();
        let len = self.heap.len();
        loop {
            let first = pos * ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            if first * ARITY + 1 < len {
                let base = self.heap.as_ptr();
                for child in first..end {
                    // The first and last grandchild under `child`: one or two cache lines.
                    let g = child * ARITY + 1;
                    crate::hub::prefetch::line(base.wrapping_add(g) as usize);
                    crate::hub::prefetch::line(base.wrapping_add(g + ARITY - 1) as usize);
                }
            }
            let mut best = first;
            let mut best_key = self.heap[first].key();
            for child in first + 1..end {
                let k = self.heap[child].key();
                if k < best_key {
                    best = child;
                    best_key = k;
                }
            }
            if best_key >= key {
                break;
            }
            self.place(pos, self.heap[best]);
            pos = best;
        }
        self.place(pos, entry);
        pos
    }

    /// Checks every structural invariant; panics with a description on the first broken one.
    #[cfg(test)]
    fn check_invariants(&self) {
        for (i, e) in self.heap.iter().enumerate() {
            if i > 0 {
                let parent = &self.heap[(i - 1) / ARITY];
                assert!(parent.key() <= e.key(), "heap order broken at {i}");
            }
            let slot = e.slot as usize;
            assert!(
                self.values[slot].is_some(),
                "heap entry {i} points at a vacant slot"
            );
            assert_eq!(
                self.meta[slot].link as usize, i,
                "slot {slot} has a wrong position"
            );
        }
        assert_eq!(
            self.meta.len(),
            self.values.len(),
            "slab halves differ in length"
        );
        let mut live = 0;
        for (i, u) in self.unarmed.iter().enumerate() {
            if u.slot == NONE {
                continue;
            }
            live += 1;
            let slot = u.slot as usize;
            assert!(
                self.values[slot].is_some(),
                "unarmed {i} points at a vacant slot"
            );
            assert_eq!(
                self.meta[slot].link,
                UNARMED | i as u32,
                "slot {slot} has a wrong unarmed index"
            );
        }
        assert_eq!(live, self.unarmed_live, "unarmed count");
        let occupied = self.values.iter().filter(|v| v.is_some()).count();
        assert_eq!(
            occupied,
            self.heap.len() + live,
            "occupied slots != heap entries + unarmed"
        );
        let mut free = 0;
        let mut at = self.free;
        while at != NONE {
            assert!(
                self.values[at as usize].is_none(),
                "occupied slot {at} on the free list"
            );
            free += 1;
            assert!(free <= self.meta.len(), "free list cycles");
            at = self.meta[at as usize].link;
        }
        assert_eq!(
            free + occupied,
            self.meta.len(),
            "slots lost from the free list"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u64) -> Deadline {
        Deadline(n)
    }

    #[test]
    fn deadline_after_saturates() {
        let now = d(1_000);
        assert_eq!(Deadline::after(now, Duration::ZERO), now);
        assert_eq!(Deadline::after(now, Duration::from_nanos(5)), d(1_005));
        assert_eq!(
            Deadline::after(now, Duration::from_secs(1)),
            d(1_000_001_000)
        );
        assert_eq!(Deadline::after(now, Duration::MAX), Deadline::MAX);
        assert_eq!(
            Deadline::after(d(u64::MAX - 3), Duration::from_nanos(10)),
            Deadline::MAX
        );
        assert_eq!(
            Deadline::after(Deadline::MAX, Duration::ZERO),
            Deadline::MAX
        );
        // u64::MAX ns is ~584 years; a Duration just past it clamps.
        let just_past = Duration::from_nanos(u64::MAX) + Duration::from_nanos(1);
        assert_eq!(Deadline::after(Deadline::ZERO, just_past), Deadline::MAX);
        assert!(Deadline::MAX.is_max() && !now.is_max());
    }

    #[test]
    fn duration_until() {
        assert_eq!(
            d(10).saturating_duration_since(d(4)),
            Duration::from_nanos(6)
        );
        assert_eq!(d(4).saturating_duration_since(d(10)), Duration::ZERO);
    }

    #[test]
    fn zero_delay_expires_at_the_next_check() {
        let mut q = TimerQueue::new();
        let now = d(77);
        let id = q.insert(Deadline::after(now, Duration::ZERO), ());
        assert_eq!(q.pop_expired(now), Some((id, ())));
    }

    #[test]
    fn epoch_round_trips() {
        let base = Instant::now();
        let e = Epoch::starting_at(base);
        assert_eq!(e.base(), base);
        assert_eq!(e.deadline(base), Deadline::ZERO);
        let later = base + Duration::from_millis(1500);
        assert_eq!(e.deadline(later), d(1_500_000_000));
        assert_eq!(e.instant(d(1_500_000_000)), Some(later));
        // Before the base clamps to zero.
        let e2 = Epoch::starting_at(later);
        assert_eq!(e2.deadline(base), Deadline::ZERO);
        assert!(e.now() <= Epoch::starting_at(base).now());
        let _ = Epoch::default().now();
    }

    #[test]
    fn empty_queue() {
        let mut q: TimerQueue<u32> = TimerQueue::default();
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop_expired(Deadline::MAX), None);
        assert_eq!(q.cancel(TimerId::from_bits(0)), None);
        assert_eq!(q.cancel(TimerId::from_bits(u64::MAX)), None);
        assert!(!q.reschedule(TimerId::from_bits(0), d(1)));
        assert_eq!(q.allocated_bytes(), 0);
    }

    #[test]
    fn fifo_among_equal_deadlines() {
        let mut q = TimerQueue::new();
        let ids: Vec<_> = (0..100).map(|i| q.insert(d(5), i)).collect();
        q.insert(d(3), 1000);
        q.check_invariants();
        assert_eq!(q.pop_expired(d(5)).map(|p| p.1), Some(1000));
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(q.pop_expired(d(5)), Some((id, i)));
        }
        assert!(q.is_empty());
    }

    #[test]
    fn stale_ids_do_not_touch_reused_slots() {
        let mut q = TimerQueue::new();
        let a = q.insert(d(1), "a");
        assert_eq!(q.cancel(a), Some("a"));
        let b = q.insert(d(2), "b"); // reuses a's slot
        assert_eq!(a.slot, b.slot);
        assert_ne!(a, b);
        assert_eq!(q.cancel(a), None);
        assert!(!q.reschedule(a, d(0)));
        assert!(!q.contains(a));
        assert_eq!(q.get(a), None);
        assert_eq!(q.get_mut(a), None);
        assert_eq!(q.deadline(a), None);
        assert_eq!(q.get(b), Some(&"b"));
        assert_eq!(q.deadline(b), Some(d(2)));
        // Fired ids are stale too.
        assert_eq!(q.pop_expired(d(2)), Some((b, "b")));
        assert_eq!(q.cancel(b), None);
        // Forged ids are harmless.
        let c = q.insert(d(3), "c");
        let forged = TimerId {
            slot: c.slot,
            generation: c.generation.wrapping_add(7),
        };
        assert_eq!(q.cancel(forged), None);
        assert_eq!(q.cancel(TimerId::from_bits(c.to_bits())), Some("c"));
        q.check_invariants();
    }

    #[test]
    fn reschedule_moves_both_ways_and_goes_to_the_back() {
        let mut q = TimerQueue::new();
        let a = q.insert(d(10), 'a');
        let b = q.insert(d(20), 'b');
        let c = q.insert(d(20), 'c');
        assert!(q.reschedule(b, d(20))); // same deadline: now behind c
        assert!(q.reschedule(a, d(30))); // later
        let e = q.insert(d(40), 'e');
        assert!(q.reschedule(e, d(1))); // earlier
        *q.get_mut(e).unwrap() = 'E';
        q.check_invariants();
        let order: Vec<_> = core::iter::from_fn(|| q.pop_expired(Deadline::MAX)).collect();
        assert_eq!(order, vec![(e, 'E'), (c, 'c'), (b, 'b'), (a, 'a')]);
    }

    #[test]
    fn not_due_is_not_popped() {
        let mut q = TimerQueue::new();
        q.insert(d(10), ());
        assert_eq!(q.pop_expired(d(9)), None);
        assert_eq!(q.len(), 1);
        assert!(q.pop_expired(d(10)).is_some());
    }

    #[test]
    fn drops_pending_values() {
        use std::rc::Rc;
        let v = Rc::new(());
        {
            let mut q = TimerQueue::new();
            for i in 0..10 {
                q.insert(d(i), Rc::clone(&v));
            }
            assert_eq!(Rc::strong_count(&v), 11);
        }
        assert_eq!(Rc::strong_count(&v), 1);
    }

    #[test]
    fn memory_per_timer() {
        assert_eq!(core::mem::size_of::<Entry>(), 16);
        assert_eq!(core::mem::size_of::<Meta>(), 8);
        assert_eq!(core::mem::size_of::<Option<Box<u8>>>(), 8);
        assert_eq!(core::mem::size_of::<Option<u64>>(), 16);
        let mut q = TimerQueue::with_capacity(1000);
        for i in 0..1000u64 {
            q.insert(d(i), i);
        }
        assert_eq!(q.allocated_bytes(), 1000 * 40);
    }

    #[test]
    fn fifo_survives_the_sequence_running_out() {
        let mut q = TimerQueue::new();
        // Timers with one deadline, inserted before and after the renumbering, with others
        // in between (some cancelled, so the sequence numbers have gaps).
        let mut want = Vec::new();
        for i in 0..10u32 {
            let id = q.insert(d(7), i);
            if i % 3 == 0 {
                q.cancel(id);
            } else {
                want.push(i);
            }
            q.insert(d(u64::from(i) * 2), 100 + i);
        }
        q.next_seq = u32::MAX - 3;
        for i in 10..20u32 {
            q.insert(d(7), i);
            want.push(i);
            q.insert(d(u64::from(i) * 3), 100 + i);
        }
        assert!(q.next_seq < 100, "renumbered");
        q.check_invariants();
        let sevens: Vec<u32> = core::iter::from_fn(|| q.pop_expired(Deadline::MAX))
            .filter_map(|(_, v)| (v < 100).then_some(v))
            .collect();
        assert_eq!(sevens, want);
    }

    #[test]
    fn unarmed_timers_keep_their_place_among_equal_deadlines() {
        // Armed at 0 with a delay of 7, an unarmed timer is due at 7 like `insert(d(7))`, and
        // comes out in insertion order among them, across a renumbering too.
        let mut q = TimerQueue::new();
        let mut want = Vec::new();
        for i in 0..20u32 {
            if i == 10 {
                q.next_seq = u32::MAX - 5;
            }
            let id = if i % 2 == 0 {
                q.insert(d(7), i)
            } else {
                q.insert_unarmed(Duration::from_nanos(7), i)
            };
            if i % 5 == 4 {
                assert_eq!(q.cancel(id), Some(i));
            } else {
                want.push(i);
            }
        }
        assert!(q.next_seq < 100, "renumbered");
        q.check_invariants();
        assert_eq!(q.len(), want.len());
        assert_eq!(
            q.next_deadline(),
            Some(d(7)),
            "only the armed ones count before arming"
        );
        assert_eq!(q.pop_expired(d(0)), None, "armed at 0: due at 7");
        q.check_invariants();
        let got: Vec<u32> = core::iter::from_fn(|| q.pop_expired(d(7)))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, want);
        assert!(q.is_empty());
    }

    #[test]
    fn an_unarmed_timer_cancelled_at_once_leaves_nothing_behind() {
        let mut q = TimerQueue::new();
        let keep = q.insert_unarmed(Duration::from_nanos(5), 0u32);
        for i in 1..10_000 {
            let id = q.insert_unarmed(Duration::from_nanos(1), i);
            assert_eq!(q.cancel(id), Some(i));
        }
        assert_eq!(q.unarmed.len(), 1, "tombstones piled up");
        let mid = q.insert_unarmed(Duration::from_nanos(3), 1);
        let last = q.insert_unarmed(Duration::from_nanos(4), 2);
        assert_eq!(q.cancel(mid), Some(1)); // a tombstone, behind `last`
        assert_eq!(q.cancel(last), Some(2)); // pops `last` and the tombstone
        assert_eq!(q.unarmed.len(), 1);
        q.check_invariants();
        assert_eq!(q.pop_expired(d(10)), None, "armed at 10: due at 15");
        assert_eq!(q.pop_expired(d(15)), Some((keep, 0)));
        assert!(q.is_empty());
    }

    /// A million timers: insert in a scrambled order, cancel every other one, pop the rest.
    /// Takes about a second in a debug build; `GROVE_STRESS=1` multiplies it by 4.
    #[test]
    fn million_timers() {
        let n: u64 = if std::env::var_os("GROVE_STRESS").is_some() {
            4_000_000
        } else {
            1_000_000
        };
        let mut q = TimerQueue::with_capacity(n as usize);
        // Deadlines in a scrambled order (7919 is prime, so i -> i * 7919 mod n is a
        // permutation), colliding in groups of 4; the value is the insertion index.
        let deadline_of = |i: u64| d((i * 7_919) % n / 4);
        let ids: Vec<_> = (0..n).map(|i| q.insert(deadline_of(i), i)).collect();
        assert_eq!(q.len(), n as usize);
        eprintln!(
            "{} timers: {} bytes allocated, {:.1} bytes/timer",
            n,
            q.allocated_bytes(),
            q.allocated_bytes() as f64 / n as f64
        );
        for id in ids.iter().step_by(2) {
            assert!(q.cancel(*id).is_some());
        }
        assert_eq!(q.len(), (n / 2) as usize);
        let mut last: Option<(Deadline, u64)> = None;
        let mut count = 0;
        while let Some((id, i)) = q.pop_expired(Deadline::MAX) {
            assert_eq!(i % 2, 1, "a cancelled timer fired");
            assert_eq!(id, ids[i as usize]);
            // Deadline order, FIFO among equal deadlines.
            let key = (deadline_of(i), i);
            if let Some(prev) = last {
                assert!(prev < key, "{prev:?} then {key:?}");
            }
            last = Some(key);
            count += 1;
        }
        assert_eq!(count, n / 2);
        for id in ids.iter().take(100) {
            assert_eq!(q.cancel(*id), None);
        }
    }

    #[test]
    fn prepared_room_takes_inserts_without_reallocating() {
        let mut q = TimerQueue::new();
        q.prepare(1);
        // Room comes a step at a time, at least what was asked for.
        assert!(q.heap.capacity() >= PREPARE_STEP && q.values.capacity() >= PREPARE_STEP);
        let n = 3 * PREPARE_STEP + 7;
        q.prepare(n);
        assert!(q.heap.capacity() >= n && q.values.capacity() >= n);
        let before = (q.heap.as_ptr(), q.values.as_ptr(), q.allocated_bytes());
        for i in 0..n as u64 {
            q.insert(d(1_000 - i % 100), i);
        }
        let meta = q.meta.capacity() * core::mem::size_of::<Meta>();
        assert_eq!(
            (
                q.heap.as_ptr(),
                q.values.as_ptr(),
                q.allocated_bytes() - meta
            ),
            (before.0, before.1, before.2),
            "an insert within the prepared room reallocated the heap or the values"
        );
        // Preparing less than is prepared does nothing; the timers are all there, in order.
        q.prepare(10);
        assert_eq!(q.heap.as_ptr(), before.0);
        let mut last = (0, 0);
        let mut popped = 0;
        while let Some((_, v)) = q.pop_expired(Deadline::MAX) {
            let key = (1_000 - v % 100, v); // deadline order, then insertion order
            assert!(key > last, "{key:?} came out after {last:?}");
            last = key;
            popped += 1;
        }
        assert_eq!(popped, n);
    }

    // ---- property tests against a naive model ----

    #[derive(Clone, Debug)]
    enum Op {
        /// Insert at `now + delay` (small delays, so deadlines collide).
        Insert(u8),
        /// Cancel the `n % issued`-th id ever issued (often stale).
        Cancel(usize),
        /// Reschedule the `n % issued`-th id ever issued to `now + delay`.
        Reschedule(usize, u8),
        /// Cancel an id that was never issued.
        CancelForged(u64),
        /// Advance the clock.
        Advance(u8),
        /// Pop everything expired at `now`.
        PopAll,
        /// Pop one timer if one is due.
        PopOne,
        /// Make room for this many timers (changes nothing observable).
        Prepare(u16),
        /// Insert unarmed, due `delay` after the `now` it is armed with.
        InsertUnarmed(u8),
        /// Arm the unarmed timers with `now`.
        Arm,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(|x| Op::Insert(x % 16)),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Op::Reschedule(i, x % 16)),
            1 => any::<u64>().prop_map(Op::CancelForged),
            2 => any::<u8>().prop_map(|x| Op::Advance(x % 8)),
            1 => Just(Op::PopAll),
            2 => Just(Op::PopOne),
            1 => any::<u16>().prop_map(|n| Op::Prepare(n % 600)),
            3 => any::<u8>().prop_map(|x| Op::InsertUnarmed(x % 16)),
            1 => Just(Op::Arm),
        ]
    }

    /// The reference: a plain Vec of (deadline, seq, id, value), searched linearly, and the
    /// unarmed ones as (delay, seq, id, value).
    #[derive(Default)]
    struct Model {
        live: Vec<(u64, u64, TimerId, u32)>,
        unarmed: Vec<(u64, u64, TimerId, u32)>,
        seq: u64,
    }

    impl Model {
        fn arm(&mut self, now: u64) {
            for (delay, seq, id, v) in self.unarmed.drain(..) {
                self.live.push((now.saturating_add(delay), seq, id, v));
            }
        }
        fn pop_expired(&mut self, now: u64) -> Option<(TimerId, u32)> {
            self.arm(now);
            let i = (0..self.live.len())
                .filter(|&i| self.live[i].0 <= now)
                .min_by_key(|&i| (self.live[i].0, self.live[i].1))?;
            let (_, _, id, v) = self.live.remove(i);
            Some((id, v))
        }
        fn find(&self, id: TimerId) -> Option<usize> {
            self.live.iter().position(|e| e.2 == id)
        }
        fn find_unarmed(&self, id: TimerId) -> Option<usize> {
            self.unarmed.iter().position(|e| e.2 == id)
        }
    }

    fn run_ops(ops: &[Op]) {
        let mut q = TimerQueue::new();
        let mut m = Model::default();
        let mut issued: Vec<TimerId> = Vec::new();
        let mut now = 0u64;
        let mut next_value = 0u32;
        for op in ops {
            match *op {
                Op::Insert(delay) => {
                    let dl = Deadline::after(d(now), Duration::from_nanos(delay as u64));
                    let id = q.insert(dl, next_value);
                    assert!(!issued.contains(&id), "id {id:?} issued twice");
                    issued.push(id);
                    m.live.push((dl.0, m.seq, id, next_value));
                    m.seq += 1;
                    next_value += 1;
                }
                Op::InsertUnarmed(delay) => {
                    let id = q.insert_unarmed(Duration::from_nanos(delay as u64), next_value);
                    assert!(!issued.contains(&id), "id {id:?} issued twice");
                    issued.push(id);
                    m.unarmed.push((delay as u64, m.seq, id, next_value));
                    m.seq += 1;
                    next_value += 1;
                }
                Op::Arm => {
                    q.arm(d(now));
                    m.arm(now);
                }
                Op::Cancel(i) if !issued.is_empty() => {
                    let id = issued[i % issued.len()];
                    let want = match (m.find(id), m.find_unarmed(id)) {
                        (Some(i), _) => Some(m.live.remove(i).3),
                        (None, Some(i)) => Some(m.unarmed.remove(i).3),
                        (None, None) => None,
                    };
                    assert_eq!(q.cancel(id), want);
                }
                Op::Reschedule(i, delay) if !issued.is_empty() => {
                    let id = issued[i % issued.len()];
                    let dl = now + delay as u64;
                    let want = match (m.find(id), m.find_unarmed(id)) {
                        (Some(i), _) => {
                            m.live[i].0 = dl;
                            m.live[i].1 = m.seq;
                            m.seq += 1;
                            true
                        }
                        (None, Some(i)) => {
                            let (_, _, id, v) = m.unarmed.remove(i);
                            m.live.push((dl, m.seq, id, v));
                            m.seq += 1;
                            true
                        }
                        (None, None) => false,
                    };
                    assert_eq!(q.reschedule(id, d(dl)), want);
                }
                Op::Cancel(_) | Op::Reschedule(..) => {}
                Op::CancelForged(bits) => {
                    let id = TimerId::from_bits(bits);
                    if !issued.contains(&id) {
                        assert_eq!(q.cancel(id), None);
                        assert!(!q.reschedule(id, d(0)));
                    }
                }
                Op::Advance(dt) => now += dt as u64,
                Op::Prepare(n) => q.prepare(n as usize),
                Op::PopOne => assert_eq!(q.pop_expired(d(now)), m.pop_expired(now)),
                Op::PopAll => loop {
                    let got = q.pop_expired(d(now));
                    assert_eq!(got, m.pop_expired(now));
                    if got.is_none() {
                        break;
                    }
                },
            }
            assert_eq!(q.len(), m.live.len() + m.unarmed.len());
            assert_eq!(q.is_empty(), m.live.is_empty() && m.unarmed.is_empty());
            assert_eq!(
                q.next_deadline(),
                m.live.iter().map(|e| d(e.0)).min(),
                "next_deadline"
            );
            for &(dl, _, id, v) in &m.live {
                assert_eq!(q.get(id), Some(&v));
                assert_eq!(q.deadline(id), Some(d(dl)));
            }
            for &(_, _, id, v) in &m.unarmed {
                assert_eq!(q.get(id), Some(&v));
                assert!(q.contains(id));
                assert_eq!(q.deadline(id), None, "an unarmed timer has no deadline yet");
            }
            let mut got: Vec<_> = q.pending().map(|(due, &v)| (v, due)).collect();
            let mut want: Vec<_> = (m.live.iter().map(|&(dl, _, _, v)| (v, Ok(d(dl)))))
                .chain(
                    (m.unarmed.iter())
                        .map(|&(delay, _, _, v)| (v, Err(Duration::from_nanos(delay)))),
                )
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "pending()");
            q.check_invariants();
        }
        // Drain: everything left comes out in model order.
        loop {
            let got = q.pop_expired(Deadline::MAX);
            assert_eq!(got, m.pop_expired(u64::MAX));
            if got.is_none() {
                break;
            }
        }
        for id in issued {
            assert_eq!(q.cancel(id), None);
        }
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 0..300)) {
            run_ops(&ops);
        }
    }
}
