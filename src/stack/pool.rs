//! A per-thread pool of [`MmapStack`]s, so that creating a greenlet costs no `mmap` in steady
//! state.
//!
//! Each thread keeps, per stack size, up to [`set_limit`] idle stacks (1024 by default).
//! [`take`] reuses one or maps a new one; [`give`] returns one, or unmaps it when the pool for
//! its size is full.
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
//! * on every 256th give on a thread, unconditionally: a deep call that returned before any
//!   switch recorded a low stack pointer leaves touched pages no `deepest_sp` shows, and this
//!   bounds how long such memory can sit in the pool, at an amortised cost of a few
//!   nanoseconds per give.
//!
//! The top page is always kept: a greenlet's header lives there and is touched at once by the
//! next user.
//!
//! All functions work during thread-local destruction: once this thread's pool is gone,
//! [`take`] maps a fresh stack and [`give`] unmaps the stack.

use super::mmap::{page_size, usable_size};
use super::{MmapStack, Stack};
use std::cell::UnsafeCell;
use std::io;

/// The default for [`set_limit`]: idle stacks kept per size and thread.
pub const DEFAULT_LIMIT: usize = 1024;

/// Bytes at the top of a stack that [`give`] never releases.
const KEEP: usize = 4096;

/// Every this many gives on a thread, [`give`] releases a stack's pages regardless.
const TRIM_EVERY: u32 = 4096;

struct Pool {
    /// The stack given back last, when its size has no other idle stack: the steady state of
    /// one greenlet ending and the next starting reuses it without touching a list (and in the
    /// cache lines just used). It counts toward the limit.
    hot: Option<MmapStack>,
    /// Idle stacks by usable size. Few sizes are in use at once, so a linear scan is fastest.
    classes: Vec<(usize, Vec<MmapStack>)>,
    /// Idle stacks kept per size.
    limit: usize,
    /// Gives so far, modulo TRIM_EVERY.
    gives: u32,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            hot: None,
            classes: Vec::new(),
            limit: DEFAULT_LIMIT,
            gives: 0,
        }
    }

    #[inline]
    fn take(&mut self, size: usize) -> Option<MmapStack> {
        if self.hot.as_ref().is_some_and(|h| h.size() == size) {
            return self.hot.take();
        }
        let (_, class) = self.classes.iter_mut().find(|(s, _)| *s == size)?;
        class.pop()
    }

    /// Pools `stack`, or hands it back if the pool for its size is full.
    #[inline]
    fn give(&mut self, stack: MmapStack, deepest_sp: usize) -> Option<MmapStack> {
        let size = stack.size();
        self.gives = (self.gives + 1) % TRIM_EVERY;
        let periodic = self.gives == 0;
        let limit = self.limit;
        // The page-rounding is a mask, not next_multiple_of: that divides, and a division costs
        // more than the rest of this path.
        let page = page_size();
        let kept = stack.top() as usize - ((KEEP + page - 1) & !(page - 1));
        // The hot slot counts toward the limit: use it only while the size's list is empty.
        if self.hot.is_none()
            && limit > 0
            && !self
                .classes
                .iter()
                .any(|(s, v)| *s == size && !v.is_empty())
        {
            if deepest_sp < kept || periodic {
                release(&stack);
            }
            self.hot = Some(stack);
            return None;
        }
        let hot_here = usize::from(self.hot.as_ref().is_some_and(|h| h.size() == size));
        let class = match self.classes.iter().position(|(s, _)| *s == size) {
            Some(i) => &mut self.classes[i].1,
            None if limit == 0 => return Some(stack),
            None => self.new_class(size),
        };
        if class.len() + hot_here >= limit {
            return Some(stack);
        }
        if deepest_sp < kept || periodic {
            release(&stack);
        }
        class.push(stack);
        None
    }

    #[cold]
    fn new_class(&mut self, size: usize) -> &mut Vec<MmapStack> {
        self.classes.push((size, Vec::new()));
        &mut self.classes.last_mut().expect("just pushed").1
    }
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
/// maps, releases or unmaps stacks (`MmapStack::new`, `release_below`, `drop`), none of which
/// reaches this module again; so no two `&mut Pool` ever exist at once.
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
        _ => MmapStack::new(rounded),
    }
}

/// Returns `stack` to this thread's pool (see the [module docs](self) for when its memory is
/// released first), or unmaps it if the pool for its size is full or gone.
///
/// `deepest_sp` is the lowest stack pointer known to have been used on it (`top()` if
/// unknown).
#[inline]
pub fn give(stack: MmapStack, deepest_sp: usize) {
    // A stack that the pool does not keep is unmapped here, outside the pool's borrow. If the
    // pool is gone, `stack` was dropped with the unrun closure.
    drop(with_pool(move |p| p.give(stack, deepest_sp)));
}

/// Sets how many idle stacks of each size this thread keeps (default [`DEFAULT_LIMIT`]);
/// unmaps the ones above a lowered limit. 0 turns pooling off.
pub fn set_limit(n: usize) {
    let excess = with_pool(|p| {
        p.limit = n;
        let mut excess = Vec::new();
        if n == 0 {
            excess.extend(p.hot.take());
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
    drop(excess);
}

/// How many idle stacks this thread's pool holds, all sizes together.
pub fn pooled() -> usize {
    with_pool(|p| {
        usize::from(p.hot.is_some()) + p.classes.iter().map(|(_, v)| v.len()).sum::<usize>()
    })
    .unwrap_or(0)
}

/// Unmaps all idle stacks of this thread's pool.
pub fn clear() {
    let all = with_pool(|p| (p.hot.take(), std::mem::take(&mut p.classes)));
    drop(all);
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
