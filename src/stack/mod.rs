//! Stacks for greenlets.
//!
//! [`Stack`] is the contract (no_std): memory a context may run on. With the `std` feature,
//! grove provides [`MmapStack`] (an `mmap`'d region with an inaccessible guard page below it),
//! a per-thread [`pool`] that reuses them, and an overflow handler that turns a hit on a
//! guard page into a clear message instead of a bare segfault.

#[cfg(feature = "std")]
mod mmap;
#[cfg(feature = "std")]
pub(crate) mod overflow;
#[cfg(feature = "std")]
pub mod pool;
#[cfg(feature = "std")]
pub(crate) mod valgrind;

#[cfg(feature = "std")]
pub use mmap::{guard_kind, GuardKind, MmapStack};

/// The smallest stack grove accepts: room for the switch frames, a greenlet's header and a
/// modest call chain.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The stack size a greenlet gets when nothing else is said, until [`set_default_size`]
/// changes it (256 KiB of address space; only the pages actually touched take memory).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The process's default stack size now (see [`set_default_size`]).
static DEFAULT_SIZE: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(DEFAULT_STACK_SIZE);

/// The stack size greenlets get when their builder names none: [`DEFAULT_STACK_SIZE`] unless
/// [`set_default_size`] changed it.
pub fn default_size() -> usize {
    DEFAULT_SIZE.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sets the stack size, in bytes, of greenlets whose builder names none, for the whole
/// process from now on (greenlets already made keep theirs). Raised to [`MIN_STACK_SIZE`] if
/// smaller, as a builder's size is. Returns the size it was.
///
/// ```
/// let before = grove::stack::set_default_size(64 * 1024);
/// assert_eq!(grove::stack::default_size(), 64 * 1024);
/// grove::stack::set_default_size(1); // below the minimum: raised to it
/// assert_eq!(grove::stack::default_size(), grove::stack::MIN_STACK_SIZE);
/// grove::stack::set_default_size(before);
/// ```
pub fn set_default_size(bytes: usize) -> usize {
    DEFAULT_SIZE.swap(
        bytes.max(MIN_STACK_SIZE),
        core::sync::atomic::Ordering::Relaxed,
    )
}

/// Where a fresh context's bookkeeping goes at the top of its stack: a header at the very top,
/// the closure just below it, and below both the top of the context itself. Greenlets and
/// coroutines lay out their stacks this way.
pub(crate) struct TopLayout {
    pub(crate) header: usize,
    pub(crate) closure: usize,
    pub(crate) ctx_top: usize,
}

/// Lays out a `header` and a `closure` at the top of the stack `base..top` (each aligned to at
/// least 16, as is the context's top). `None` if they leave less than [`MIN_STACK_SIZE`] / 2
/// below them to run on, or do not fit at all.
pub(crate) fn carve_top(
    base: usize,
    top: usize,
    header: core::alloc::Layout,
    closure: core::alloc::Layout,
) -> Option<TopLayout> {
    let header_at = top.checked_sub(header.size())? & !(header.align().max(16) - 1);
    let closure_at = closure_below(header_at, closure)?;
    let ctx_top = closure_at & !15;
    (ctx_top >= base && ctx_top - base >= MIN_STACK_SIZE / 2).then_some(TopLayout {
        header: header_at,
        closure: closure_at,
        ctx_top,
    })
}

/// Where [`carve_top`] puts a `closure` below a header at `header_at`: how an entry function
/// finds it again from its header.
pub(crate) fn closure_below(header_at: usize, closure: core::alloc::Layout) -> Option<usize> {
    Some(header_at.checked_sub(closure.size())? & !(closure.align().max(16) - 1))
}

/// Memory that a context can run on.
///
/// The usable stack is the address range `base()..top()`; the stack grows down from `top()`.
///
/// # Safety
///
/// An implementation promises, for as long as the value lives and is not moved-from (moving
/// the value does not move the memory: `base()` and `top()` stay the same):
///
/// * `base()..top()` is readable and writable memory that nothing but the context running on
///   it uses;
/// * `top()` is 16-byte aligned and `top() - base() >= MIN_STACK_SIZE`;
/// * the `guard_size()` bytes just below `base()` are a guard region that faults on any
///   access, so that running past the end of the stack is caught instead of corrupting other
///   memory. An implementation that cannot provide one (a static buffer on a target without an
///   MMU) returns `guard_size() == 0`, and whoever uses it then guarantees by other means that
///   the code run on it never needs more than `top() - base()` bytes.
pub unsafe trait Stack {
    /// The highest address of the stack (exclusive): where a fresh context starts.
    fn top(&self) -> *mut u8;
    /// The lowest usable address.
    fn base(&self) -> *mut u8;
    /// Bytes of guard region directly below `base()`; 0 if there is none.
    fn guard_size(&self) -> usize;
    /// Usable bytes, `top() - base()`.
    fn size(&self) -> usize {
        self.top() as usize - self.base() as usize
    }
    /// Told, when a context is done with this stack, the lowest stack pointer known to have
    /// been used on it (the top if none is known), so that a pooling implementation can
    /// release what a deep call touched before the stack is used again. The default does
    /// nothing.
    fn used_down_to(&mut self, deepest_sp: usize) {
        let _ = deepest_sp;
    }
}

/// A stack in a plain buffer, for embedders without an allocator or an MMU, e.g. in a
/// `static`. It has no guard page: see the safety contract of [`Stack`].
#[repr(C, align(16))]
pub struct StaticStack<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> StaticStack<N> {
    /// A zeroed buffer. Fails to compile if `N` is below [`MIN_STACK_SIZE`] or not a
    /// multiple of 16.
    pub const fn new() -> Self {
        const {
            assert!(
                N >= MIN_STACK_SIZE && N % 16 == 0,
                "StaticStack<N>: N too small or unaligned"
            )
        };
        StaticStack { bytes: [0; N] }
    }
}

impl<const N: usize> Default for StaticStack<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: the buffer is 16-byte aligned with a size that is a multiple of 16 (checked in
// `new`), so `top()` is aligned; it is at least MIN_STACK_SIZE; a `&mut` borrow gives the
// context exclusive use of it. guard_size() is 0: the embedder takes on the overflow promise.
unsafe impl<const N: usize> Stack for &mut StaticStack<N> {
    fn top(&self) -> *mut u8 {
        // SAFETY: one past the end of the array is a valid pointer to compute.
        unsafe { self.bytes.as_ptr().add(N) as *mut u8 }
    }
    fn base(&self) -> *mut u8 {
        self.bytes.as_ptr() as *mut u8
    }
    fn guard_size(&self) -> usize {
        0
    }
}
