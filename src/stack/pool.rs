//! A per-thread pool of [`MmapStack`]s, so that creating a greenlet costs no `mmap` in steady
//! state.
//!
//! Each thread keeps, per stack size, up to [`set_limit`] idle stacks (1024 by default).
//! [`take`] reuses one or maps a new one; [`give`] returns one, or retires it when the pool for
//! its size is full.
//!
//! # Unmapping in batches, out of the hot path
//!
//! A `munmap` costs microseconds: several on a VM, and more in a process with many stacks,
//! which the kernel merges into one large VMA that each unmapping must split. Unmapping a run
//! of adjacent stacks at once costs about as much as unmapping one. So [`give`] does not
//! unmap a stack the pool has no room for: it *retires* it (releasing its deep pages first,
//! by the rule below), and retired stacks are unmapped later, sorted by address, one `munmap`
//! per run of adjacent mappings:
//!
//! * on a thread whose hub runs, by the hub, when it has nothing to do for a while (nothing
//!   ready, no timer due within a millisecond): [`trim`] a batch ([`TRIM_BATCH`]) at a time,
//!   polling I/O in between. A burst of finishing greenlets then costs the loop no system
//!   call, and stacks that finished in random order are unmapped once most of their
//!   neighbours have finished too, in few calls. Until then they stay mapped, reusable by
//!   [`take`]: at most as many as were live at the peak;
//! * elsewhere, by [`give`] itself, [`RETIRE_BATCH`] at a time;
//! * by [`set_limit`] and [`clear`], and at thread exit.
//!
//! [`take`] reuses the last retired stack before it maps a new one. With the limit at 0
//! (pooling off) nothing is retired: [`give`] unmaps at once.
//!
//! # Mapping in chunks
//!
//! A thread that keeps needing new stacks maps them several at a time
//! (`MmapStack::new_chunk`: one `mmap`, and one system call for all the guard pages where
//! the kernel allows), half as many as it has mapped so far, up to [`CHUNK`]; the rest wait,
//! untouched (costing no memory), for the next takes. They are not idle stacks: [`pooled`]
//! does not count them.
//!
//! # Giving memory back
//!
//! A stack that a deep call ran on keeps those pages resident. Returning them to the kernel
//! (`madvise(MADV_DONTNEED)`, [`MmapStack::release_below`]) is a system call, about a
//! microsecond, while a pooled take and give must cost nanoseconds; so [`give`] releases only:
//!
//! * when the deepest stack pointer the caller saw (`deepest_sp`, e.g. the lowest one saved at
//!   a switch) lies below the stack's top page: the stack certainly holds more than one page
//!   of touched memory;
//! * on every 4096th give on a thread (`TRIM_EVERY`), unconditionally: a deep call that
//!   returned before any switch recorded a low stack pointer leaves touched pages no
//!   `deepest_sp` shows, and this bounds how long such memory can sit in the pool, at an
//!   amortised cost of a few nanoseconds per give.
//!
//! The top page is always kept: a greenlet's header lives there and is touched at once by the
//! next user.
//!
//! All functions work during thread-local destruction: once this thread's pool is gone,
//! [`take`] maps a fresh stack and [`give`] unmaps the stack.

use super::mmap::{page_size, unmap_batch, usable_size};
use super::{MmapStack, Stack};
use std::cell::UnsafeCell;
use std::io;

/// The default for [`set_limit`]: idle stacks kept per size and thread.
pub const DEFAULT_LIMIT: usize = 1024;

/// Bytes at the top of a stack that [`give`] never releases.
const KEEP: usize = 4096;

/// Every this many gives on a thread, [`give`] releases a stack's pages regardless.
const TRIM_EVERY: u32 = 4096;

/// On a thread whose hub does not unmap retired stacks, [`give`] unmaps them once this many
/// have piled up (see the [module docs](self)).
pub const RETIRE_BATCH: usize = 256;

/// How many retired stacks the hub unmaps at a time ([`trim`]): at worst (no two adjacent)
/// a few hundred microseconds of system calls, after which it polls I/O again.
pub const TRIM_BATCH: usize = 32;

/// The most stacks [`take`] maps at once (see the [module docs](self)).
pub const CHUNK: usize = 64;

struct Pool {
    /// The stack given back last, when its size has no other idle stack: the steady state of
    /// one greenlet ending and the next starting reuses it without touching a list (and in the
    /// cache lines just used). It counts toward the limit.
    hot: Option<MmapStack>,
    /// Idle stacks by usable size. Few sizes are in use at once, so a linear scan is fastest.
    classes: Vec<(usize, Vec<MmapStack>)>,
    /// Idle stacks kept per size.
    limit: usize,
    /// Gives so far (wrapping; a power of two, TRIM_EVERY, divides the wrap).
    gives: u32,
    /// Stacks the pool had no room for, waiting to be unmapped in a batch.
    retired: Vec<MmapStack>,
    /// Whether `retired` is in ascending address order (trim sorts it when not).
    sorted: bool,
    /// Whether this thread's hub unmaps retired stacks (`defer_unmapping`).
    deferred: bool,
    /// Stacks mapped ahead with the last chunks, never used yet, taken from the end.
    fresh: Vec<MmapStack>,
    /// How many stacks this thread has mapped (the next chunk maps half as many).
    mapped: usize,
}

/// What `Pool::give` hands back for unmapping (outside the pool's borrow).
enum Spill {
    None,
    One(MmapStack),
    Batch(Vec<MmapStack>),
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            hot: None,
            classes: Vec::new(),
            limit: DEFAULT_LIMIT,
            gives: 0,
            retired: Vec::new(),
            sorted: true,
            deferred: false,
            fresh: Vec::new(),
            mapped: 0,
        }
    }

    #[inline]
    fn take(&mut self, size: usize) -> Option<MmapStack> {
        if self.hot.as_ref().is_some_and(|h| h.size() == size) {
            return self.hot.take();
        }
        self.take_listed(size)
    }

    /// `take` when the hot slot does not have it.
    #[inline(never)]
    fn take_listed(&mut self, size: usize) -> Option<MmapStack> {
        if let Some((_, class)) = self.classes.iter_mut().find(|(s, _)| *s == size) {
            if let Some(s) = class.pop() {
                return Some(s);
            }
        }
        // A retired stack is as good as a pooled one (only its deep pages may still be
        // resident: a new user cannot tell).
        if self.retired.last().is_some_and(|s| s.size() == size) {
            return self.retired.pop();
        }
        if let Some(i) = self.fresh.iter().rposition(|s| s.size() == size) {
            return Some(self.fresh.remove(i));
        }
        None
    }

    /// Maps a new stack of `size` bytes, and with it, in one chunk, more for the next takes
    /// (see the [module docs](self)).
    #[cold]
    fn map_new(&mut self, size: usize) -> io::Result<MmapStack> {
        let n = if self.limit == 0 {
            1
        } else {
            (self.mapped / 2).clamp(1, CHUNK)
        };
        let mut chunk = MmapStack::new_chunk(size, n)?;
        self.mapped += chunk.len();
        let first = chunk.pop().expect("a chunk has a stack");
        // The highest first, as the kernel would have placed them one by one.
        self.fresh.append(&mut chunk);
        Ok(first)
    }

    /// Pools `stack`, or retires it if the pool for its size is full; hands back what must
    /// be unmapped now.
    #[inline]
    fn give(&mut self, stack: MmapStack, deepest_sp: usize) -> Spill {
        // The steady state of one greenlet ending and the next starting: the hot slot is free.
        // It counts toward the limit: use it only while the size's list is empty.
        let size = stack.size();
        if self.hot.is_none()
            && self.limit > 0
            && !self
                .classes
                .iter()
                .any(|(s, v)| *s == size && !v.is_empty())
        {
            self.clean(&stack, deepest_sp);
            self.hot = Some(stack);
            return Spill::None;
        }
        self.give_listed(stack, deepest_sp)
    }

    /// `give` when the hot slot is no place for the stack.
    #[inline(never)]
    fn give_listed(&mut self, stack: MmapStack, deepest_sp: usize) -> Spill {
        match self.pool(stack, deepest_sp) {
            None => Spill::None,
            // Pooling is off: nothing waits.
            Some(stack) if self.limit == 0 => Spill::One(stack),
            Some(stack) => self.retire(stack, deepest_sp),
        }
    }

    #[cold]
    fn retire(&mut self, stack: MmapStack, deepest_sp: usize) -> Spill {
        // It may wait long: give back what a deep call left on it, as the pool does.
        if deepest_sp < stack.top() as usize - kept() {
            release(&stack);
        }
        self.retired.push(stack);
        self.sorted = false;
        if self.deferred || self.retired.len() < RETIRE_BATCH {
            return Spill::None;
        }
        self.sorted = true;
        Spill::Batch(std::mem::take(&mut self.retired))
    }

    /// Puts `stack` in its size's list (the hot slot being no place for it, see `give`), or
    /// hands it back if the pool for its size is full.
    fn pool(&mut self, stack: MmapStack, deepest_sp: usize) -> Option<MmapStack> {
        let size = stack.size();
        let limit = self.limit;
        let hot_here = usize::from(self.hot.as_ref().is_some_and(|h| h.size() == size));
        let i = match self.classes.iter().position(|(s, _)| *s == size) {
            Some(i) => i,
            None if limit == 0 => return Some(stack),
            None => self.new_class(size),
        };
        if self.classes[i].1.len() + hot_here >= limit {
            return Some(stack);
        }
        self.clean(&stack, deepest_sp);
        self.classes[i].1.push(stack);
        None
    }

    /// Before a stack is pooled: gives back its deep pages, when `deepest_sp` shows it has
    /// them, or periodically (see the [module docs](self)).
    #[inline]
    fn clean(&mut self, stack: &MmapStack, deepest_sp: usize) {
        self.gives = self.gives.wrapping_add(1);
        if deepest_sp < stack.top() as usize - kept() || self.gives % TRIM_EVERY == 0 {
            release(stack);
        }
    }

    /// Adds an empty list for `size`; returns its index in `classes`.
    #[cold]
    fn new_class(&mut self, size: usize) -> usize {
        self.classes.push((size, Vec::new()));
        self.classes.len() - 1
    }
}

impl Drop for Pool {
    /// Thread exit: everything still here is unmapped, in batches.
    fn drop(&mut self) {
        let mut all = std::mem::take(&mut self.retired);
        all.append(&mut self.fresh);
        all.extend(self.hot.take());
        for (_, v) in std::mem::take(&mut self.classes) {
            all.extend(v);
        }
        unmap_batch(all);
    }
}

/// [`KEEP`] rounded up to whole pages: both are powers of two, so that is the larger one.
/// (Not `next_multiple_of`, which divides: a division costs more than the rest of `give`.)
#[inline]
fn kept() -> usize {
    KEEP.max(page_size())
}

/// Gives back what a deep call touched (the slow path of `give`).
#[cold]
#[inline(never)]
fn release(stack: &MmapStack) {
    stack.release_below(KEEP);
}

thread_local! {
    /// This thread's pool. An `UnsafeCell` rather than a `RefCell`: the borrow flag and the
    /// closure it needs cost more than the rest of the hot path (see `with_pool`).
    static POOL: UnsafeCell<Pool> = const { UnsafeCell::new(Pool::new()) };
}

/// Runs `f` on this thread's pool; `None` if it is gone (thread exit).
///
/// `f` gets the pool mutably: every `f` in this module only works on the pool's vectors and
/// maps, releases or unmaps stacks (`MmapStack::new`, `new_chunk`, `release_below`, `drop`),
/// none of which reaches this module again; so no two `&mut Pool` ever exist at once.
#[inline(always)]
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
    let pool = POOL.try_with(UnsafeCell::get).ok()?;
    // SAFETY: `pool` points to this thread's live pool (try_with succeeded, and it is destroyed
    // only by this thread's exit, which cannot begin while we run); no other reference to it
    // exists (the pool is thread-local and `f` does not re-enter this module, see above).
    Some(f(unsafe { &mut *pool }))
}

/// A stack with at least `size` usable bytes: an idle one of this thread's pool with the same
/// (rounded) size, else a new [`MmapStack::new`].
#[inline]
pub fn take(size: usize) -> io::Result<MmapStack> {
    let rounded = usable_size(size)?;
    match with_pool(|p| p.take(rounded)) {
        Some(Some(s)) => Ok(s),
        _ => map_new(rounded),
    }
}

/// `take` when the pool has none: out of line, so that the pooled path stays small enough to
/// inline.
#[inline(never)]
fn map_new(size: usize) -> io::Result<MmapStack> {
    // A chunk mapped through the pool, or one stack if the pool is gone.
    with_pool(|p| p.map_new(size)).unwrap_or_else(|| MmapStack::new(size))
}

/// A stack from this thread's pool ([`take`]) that goes back to it ([`give`]) when dropped,
/// with the deepest stack pointer it was told of ([`Stack::used_down_to`]). The default
/// stack of a [`Coroutine`](crate::coroutine::Coroutine).
#[derive(Debug)]
pub struct PooledStack {
    stack: std::mem::ManuallyDrop<MmapStack>,
    deepest_sp: usize,
}

impl PooledStack {
    /// A stack with at least `size` usable bytes, from the pool if it has one (see [`take`]).
    pub fn new(size: usize) -> io::Result<PooledStack> {
        let stack = take(size)?;
        let deepest_sp = stack.top() as usize;
        Ok(PooledStack {
            stack: std::mem::ManuallyDrop::new(stack),
            deepest_sp,
        })
    }
}

// SAFETY: forwarded to the MmapStack, which this value exclusively owns until it drops.
unsafe impl Stack for PooledStack {
    fn top(&self) -> *mut u8 {
        self.stack.top()
    }
    fn base(&self) -> *mut u8 {
        self.stack.base()
    }
    fn guard_size(&self) -> usize {
        self.stack.guard_size()
    }
    fn used_down_to(&mut self, deepest_sp: usize) {
        self.deepest_sp = self.deepest_sp.min(deepest_sp);
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // SAFETY: taken once, here; the field is not used again.
        let stack = unsafe { std::mem::ManuallyDrop::take(&mut self.stack) };
        give(stack, self.deepest_sp);
    }
}

/// Returns `stack` to this thread's pool (see the [module docs](self) for when its memory is
/// released first), or unmaps it if the pool for its size is full or gone.
///
/// `deepest_sp` is the lowest stack pointer known to have been used on it (`top()` if
/// unknown).
#[inline]
pub fn give(stack: MmapStack, deepest_sp: usize) {
    // What the pool does not keep is unmapped here, outside the pool's borrow. If the pool is
    // gone, `stack` was dropped with the unrun closure.
    match with_pool(move |p| p.give(stack, deepest_sp)) {
        None | Some(Spill::None) => {}
        Some(Spill::One(s)) => drop(s),
        Some(Spill::Batch(v)) => unmap_batch(v),
    }
}

/// Unmaps up to `max` of this thread's retired stacks, the highest addresses first (in address
/// order, adjacent ones go in one system call), and returns how many remain retired. The hub
/// calls it when it has nothing to do; see the [module docs](self).
pub fn trim(max: usize) -> usize {
    let (batch, left) = with_pool(|p| {
        if !p.sorted {
            // A sorted run (what was sorted last time) plus the stacks retired since: the
            // stable sort finds the run and merges the rest into it, O(n + k log k).
            p.retired.sort_by_key(|s| s.top() as usize);
            p.sorted = true;
        }
        let n = p.retired.len();
        let batch = p.retired.split_off(n - max.min(n));
        (batch, p.retired.len())
    })
    .unwrap_or_default();
    if !batch.is_empty() {
        unmap_batch(batch);
    }
    left
}

/// Says that this thread's hub will unmap retired stacks ([`trim`]) when it idles, so that
/// [`give`] never does (see the [module docs](self)).
pub(crate) fn defer_unmapping() {
    with_pool(|p| p.deferred = true);
}

/// How many stacks of this thread wait, retired, to be unmapped.
pub fn retired() -> usize {
    with_pool(|p| p.retired.len()).unwrap_or(0)
}

/// Sets how many idle stacks of each size this thread keeps (default [`DEFAULT_LIMIT`]);
/// unmaps the ones above a lowered limit, and the retired ones. 0 turns pooling off: [`give`]
/// then unmaps every stack at once.
pub fn set_limit(n: usize) {
    let excess = with_pool(|p| {
        p.limit = n;
        let mut excess = std::mem::take(&mut p.retired);
        p.sorted = true;
        if n == 0 {
            excess.extend(p.hot.take());
            excess.append(&mut p.fresh);
        }
        let hot_size = p.hot.as_ref().map(|h| h.size());
        for (size, v) in &mut p.classes {
            let room = n.saturating_sub(usize::from(hot_size == Some(*size)));
            if v.len() > room {
                excess.extend(v.drain(room..));
            }
        }
        excess
    });
    unmap_batch(excess.unwrap_or_default());
}

/// How many idle stacks this thread's pool holds, all sizes together.
pub fn pooled() -> usize {
    with_pool(|p| {
        usize::from(p.hot.is_some()) + p.classes.iter().map(|(_, v)| v.len()).sum::<usize>()
    })
    .unwrap_or(0)
}

/// Unmaps all idle and retired stacks of this thread's pool, and those mapped ahead.
pub fn clear() {
    let all = with_pool(|p| {
        let mut all = std::mem::take(&mut p.retired);
        p.sorted = true;
        all.append(&mut p.fresh);
        all.extend(p.hot.take());
        for (_, v) in std::mem::take(&mut p.classes) {
            all.extend(v);
        }
        all
    });
    unmap_batch(all.unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Tests run on fresh threads (each test gets one), so the pool starts empty; still, start
    /// from a known state.
    fn reset() {
        clear();
        set_limit(DEFAULT_LIMIT);
    }

    #[test]
    fn reuse_returns_the_same_stack() {
        reset();
        let s = take(64 * 1024).unwrap();
        let base = s.base();
        let top = s.top() as usize;
        give(s, top);
        assert_eq!(pooled(), 1);
        let again = take(64 * 1024).unwrap();
        assert_eq!(again.base(), base);
        assert_eq!(pooled(), 0);
        // A request that rounds to the same size reuses it too; another size does not.
        give(again, top);
        let same = take(64 * 1024 - 100).unwrap();
        assert_eq!(same.base(), base);
        give(same, top);
        let other = take(128 * 1024).unwrap();
        assert_ne!(other.base(), base);
        assert_eq!(pooled(), 1);
        drop(other);
        clear();
        assert_eq!(pooled(), 0);
    }

    #[test]
    fn new_stacks_come_in_growing_chunks_that_are_not_counted_as_pooled() {
        reset();
        let mut stacks: Vec<MmapStack> = (0..200).map(|_| take(16 * 1024).unwrap()).collect();
        let mapped = with_pool(|p| (p.mapped, p.fresh.len())).unwrap();
        assert_eq!(mapped.0 - mapped.1, 200, "every take was served");
        assert!(
            mapped.0 < 400,
            "chunks grow with what was mapped: {mapped:?}"
        );
        assert_eq!(pooled(), 0);
        // Distinct, writable stacks, each with a guard below it (checked in the mmap tests).
        stacks.sort_by_key(|s| s.top() as usize);
        for w in stacks.windows(2) {
            assert!(w[0].top() as usize <= w[1].base() as usize - w[1].guard_size());
        }
        for s in &stacks {
            // SAFETY: the stack's usable memory, unused.
            unsafe { std::ptr::write_bytes(s.base(), 1, s.size()) };
        }
        drop(stacks);
        clear();
        assert_eq!(with_pool(|p| p.fresh.len()).unwrap(), 0);
        // Pooling off: one at a time, nothing kept ahead.
        set_limit(0);
        let s = take(16 * 1024).unwrap();
        assert_eq!(with_pool(|p| p.fresh.len()).unwrap(), 0);
        drop(s);
        reset();
    }

    #[test]
    fn limit_is_respected() {
        reset();
        set_limit(3);
        let stacks: Vec<_> = (0..5).map(|_| take(32 * 1024).unwrap()).collect();
        for s in stacks {
            let top = s.top() as usize;
            give(s, top);
        }
        assert_eq!(pooled(), 3);
        set_limit(1);
        assert_eq!(pooled(), 1);
        set_limit(0);
        assert_eq!(pooled(), 0);
        let s = take(32 * 1024).unwrap();
        let top = s.top() as usize;
        give(s, top);
        assert_eq!(pooled(), 0);
        reset();
    }

    /// Whether the lowest usable page of `s` is resident.
    fn bottom_resident(s: &MmapStack) -> bool {
        let mut v = 0u8;
        // SAFETY: base() is page aligned and mapped; one page, one byte of result.
        let r = unsafe { libc::mincore(s.base().cast(), page_size(), (&mut v as *mut u8).cast()) };
        assert_eq!(r, 0);
        v & 1 != 0
    }

    #[test]
    fn deep_use_is_released_on_give() {
        reset();
        let s = take(64 * 1024).unwrap();
        // SAFETY: the stack's usable memory, unused.
        unsafe { std::ptr::write_bytes(s.base(), 7, s.size()) };
        assert!(bottom_resident(&s));
        let base = s.base() as usize;
        give(s, base + 64);
        let s = take(64 * 1024).unwrap();
        assert!(!bottom_resident(&s));

        // Shallow use: nothing released (unless this is a periodic trim, which the counter
        // below makes it not be).
        with_pool(|p| p.gives = 0);
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(s.base(), 7, s.size()) };
        let top = s.top() as usize;
        give(s, top - 64);
        let s = take(64 * 1024).unwrap();
        assert!(bottom_resident(&s));

        // The periodic trim catches it anyway.
        with_pool(|p| p.gives = TRIM_EVERY - 1);
        give(s, top - 64);
        let s = take(64 * 1024).unwrap();
        assert!(!bottom_resident(&s));
        drop(s);
        reset();
    }

    #[test]
    fn stacks_beyond_the_limit_are_retired_then_unmapped_in_batches() {
        reset();
        set_limit(2);
        let stacks: Vec<_> = (0..2 + RETIRE_BATCH)
            .map(|_| take(16 * 1024).unwrap())
            .collect();
        let mut it = stacks.into_iter();
        for s in it.by_ref().take(1 + RETIRE_BATCH) {
            let top = s.top() as usize;
            give(s, top);
        }
        // Two pooled, the rest waiting (this thread has no hub: give unmaps them itself).
        assert_eq!(pooled(), 2);
        assert_eq!(retired(), RETIRE_BATCH - 1);
        // A take reuses a pooled stack first, then a retired one.
        let a = take(16 * 1024).unwrap();
        let b = take(16 * 1024).unwrap();
        let c = take(16 * 1024).unwrap();
        assert_eq!((pooled(), retired()), (0, RETIRE_BATCH - 2));
        for s in [a, b, c] {
            let top = s.top() as usize;
            give(s, top);
        }
        assert_eq!((pooled(), retired()), (2, RETIRE_BATCH - 1));
        // The batch fills: all of it is unmapped at once.
        let last = it.next().unwrap();
        let top = last.top() as usize;
        give(last, top);
        assert_eq!((pooled(), retired()), (2, 0));
        // Pooling off: nothing is retired.
        set_limit(0);
        let s = take(16 * 1024).unwrap();
        let top = s.top() as usize;
        give(s, top);
        assert_eq!((pooled(), retired()), (0, 0));
        reset();
    }

    #[test]
    fn with_a_hub_retired_stacks_wait_for_trim() {
        reset();
        defer_unmapping();
        set_limit(1);
        let n = RETIRE_BATCH + 10;
        let stacks: Vec<_> = (0..n).map(|_| take(16 * 1024).unwrap()).collect();
        for s in stacks {
            let top = s.top() as usize;
            give(s, top);
        }
        assert_eq!(retired(), n - 1, "give never unmaps when the hub trims");
        assert_eq!(trim(10), n - 11);
        assert_eq!(retired(), n - 11);
        assert_eq!(trim(usize::MAX), 0);
        assert_eq!(trim(1), 0);
        // set_limit and clear unmap the retired ones too.
        let stacks: Vec<_> = (0..5).map(|_| take(16 * 1024).unwrap()).collect();
        for s in stacks {
            let top = s.top() as usize;
            give(s, top);
        }
        assert_eq!((pooled(), retired()), (1, 4));
        set_limit(1);
        assert_eq!((pooled(), retired()), (1, 0));
        reset();
        assert_eq!((pooled(), retired()), (0, 0));
    }

    #[test]
    fn a_retired_stack_gives_back_its_deep_pages() {
        reset();
        defer_unmapping();
        set_limit(1);
        let keep = take(64 * 1024).unwrap();
        let s = take(64 * 1024).unwrap();
        let top = keep.top() as usize;
        give(keep, top);
        // SAFETY: the stack's usable memory, unused.
        unsafe { std::ptr::write_bytes(s.base(), 7, s.size()) };
        let base = s.base() as usize;
        give(s, base + 64);
        assert_eq!(retired(), 1);
        let s = with_pool(|p| p.retired.pop().unwrap()).unwrap();
        assert!(!bottom_resident(&s));
        drop(s);
        reset();
    }

    #[test]
    fn works_from_thread_local_destructors() {
        struct GiveOnExit(Option<MmapStack>);
        impl Drop for GiveOnExit {
            fn drop(&mut self) {
                if let Some(s) = self.0.take() {
                    let top = s.top() as usize;
                    give(s, top);
                }
                let s = take(16 * 1024).unwrap();
                let top = s.top() as usize;
                give(s, top);
                let _ = pooled();
                clear();
            }
        }
        thread_local! {
            static LATE: RefCell<GiveOnExit> = const { RefCell::new(GiveOnExit(None)) };
        }
        std::thread::spawn(|| {
            // Use the pool first, so that its destructor is registered before LATE's and runs
            // after it... or before it: both orders must work.
            give(take(16 * 1024).unwrap(), 0);
            LATE.with(|l| l.borrow_mut().0 = Some(take(16 * 1024).unwrap()));
        })
        .join()
        .unwrap();
        std::thread::spawn(|| {
            LATE.with(|l| l.borrow_mut().0 = Some(MmapStack::new(16 * 1024).unwrap()));
            give(take(16 * 1024).unwrap(), 0);
        })
        .join()
        .unwrap();
    }
}
