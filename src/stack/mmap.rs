//! [`MmapStack`]: a stack in its own `mmap`'d region, with an inaccessible guard page below it.
//!
//! ```text
//!   map + len = top  +-----------------+  (page aligned, so 16-byte aligned)
//!                    |  usable stack   |  read/write, MAP_NORESERVE: pages cost memory only
//!                    |  (size bytes)   |  once touched
//!   map + page = base+-----------------+
//!                    |   guard page    |  MADV_GUARD_INSTALL (Linux >= 6.13) or PROT_NONE
//!   map              +-----------------+
//! ```
//!
//! The guard is installed with `madvise(MADV_GUARD_INSTALL)` where the kernel has it: the
//! stack then stays one VMA. Elsewhere (older kernels, other systems, under valgrind) the guard
//! page is `mprotect(PROT_NONE)`, which splits the mapping into two VMAs, so a process with
//! many stacks can reach the kernel's `vm.max_map_count` limit: creating a stack then fails
//! with an error that says so.

use super::valgrind;
use super::{Stack, MIN_STACK_SIZE};
use crate::syscall::syscall;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU8, Ordering};

/// `MADV_GUARD_INSTALL` (Linux 6.13, `include/uapi/asm-generic/mman-common.h`): turns the
/// pages into guard regions that fault on any access, without splitting the VMA. Not yet in
/// the `libc` crate.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Per-process choice of how guard pages are made, learnt from the first stack.
static GUARD_MODE: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);
const GUARD_UNKNOWN: u8 = 0;
/// `madvise(MADV_GUARD_INSTALL)` works here.
#[cfg(target_os = "linux")]
const GUARD_MADVISE: u8 = 1;
/// Use `mprotect(PROT_NONE)`.
const GUARD_MPROTECT: u8 = 2;

/// How this process makes guard pages, learnt when its first stack is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+): a guard costs no extra memory mapping, so
    /// live stacks are not limited by `vm.max_map_count`.
    GuardRegion,
    /// `mprotect(PROT_NONE)`: every stack costs two memory mappings, so the kernel's
    /// `vm.max_map_count` (65530 by default on Linux) caps live stacks near half that.
    Mprotect,
}

/// The guard method in use, or `None` before the first stack is mapped.
pub fn guard_kind() -> Option<GuardKind> {
    match GUARD_MODE.load(Ordering::Relaxed) {
        GUARD_MPROTECT => Some(GuardKind::Mprotect),
        GUARD_UNKNOWN => None,
        _ => Some(GuardKind::GuardRegion),
    }
}

/// Whether the page at `addr` really faults: the kernel's own read of it (a `write` from it
/// into a pipe) must fail with `EFAULT`. No signal is raised either way.
#[cfg(target_os = "linux")]
fn guard_is_effective(addr: *const u8) -> bool {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK)) }.is_err() {
        return false;
    }
    // SAFETY: write only reads from `addr` inside the kernel, which reports an inaccessible
    // page as EFAULT instead of faulting; the descriptors are ours and closed right after.
    let r = unsafe { syscall!(write(fds[1], addr.cast(), 1)) };
    // SAFETY: closing the two descriptors pipe2 just gave us.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::EFAULT))
}

/// How stacks are mapped: read/write, and on systems that have the flags, without reserving
/// swap (pages cost memory only once touched) and marked as stacks.
const STACK_PROT: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;
#[cfg(any(target_os = "linux", target_os = "android"))]
const STACK_FLAGS: libc::c_int =
    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
#[cfg(target_vendor = "apple")]
const STACK_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
const STACK_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;

/// Installs the guard page of every stack of a fresh chunk (see [`MmapStack::new_chunk`]).
fn install_guards(stacks: &[MmapStack]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if GUARD_MODE.load(Ordering::Relaxed) == GUARD_MADVISE && guard_all_at_once(stacks) {
        return Ok(());
    }
    for s in stacks {
        s.install_guard(None)?;
    }
    Ok(())
}

/// The most stacks [`MmapStack::new_chunk`] guards with one `process_madvise`.
#[cfg(target_os = "linux")]
const GUARDS_AT_ONCE: usize = 64;

/// Installs every stack's guard with one `process_madvise(MADV_GUARD_INSTALL)` on this
/// process; false if the kernel would not do it all (too old, or not allowed), and then the
/// caller installs them one by one (installing a guard twice is harmless). Once refused, not
/// tried again.
#[cfg(target_os = "linux")]
fn guard_all_at_once(stacks: &[MmapStack]) -> bool {
    static REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if REFUSED.load(Ordering::Relaxed) || stacks.len() > GUARDS_AT_ONCE {
        return false;
    }
    let page = page_size();
    let mut iov = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; GUARDS_AT_ONCE];
    for (v, s) in iov.iter_mut().zip(stacks) {
        *v = libc::iovec {
            iov_base: s.map().cast(),
            iov_len: page,
        };
    }
    // SAFETY: pidfd_open of our own pid has no memory-safety preconditions; it returns a new
    // descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if pidfd < 0 {
        REFUSED.store(true, Ordering::Relaxed);
        return false;
    }
    // SAFETY: the first `stacks.len()` iovecs each name the first page of one of our own fresh
    // mappings, which nothing uses yet (each becomes that stack's guard); the descriptor is
    // ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            pidfd,
            iov.as_ptr(),
            stacks.len(),
            MADV_GUARD_INSTALL,
            0,
        )
    };
    let refused = r < 0;
    // SAFETY: closing the descriptor pidfd_open just gave us.
    unsafe { libc::close(pidfd as libc::c_int) };
    if refused {
        REFUSED.store(true, Ordering::Relaxed);
    }
    r >= 0 && r as usize == stacks.len() * page
}

/// The system's page size. x86_64 has a single base page size, 4 KiB, on every system grove
/// runs on, so there it is a constant the compiler folds into the pool's arithmetic; elsewhere
/// (aarch64 kernels use 4, 16 or 64 KiB pages) it is asked of the system once and cached.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) const fn page_size() -> usize {
    4096
}

/// The system's page size (asked once, then cached).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn page_size() -> usize {
    use std::sync::atomic::AtomicUsize;
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// `n` rounded up to a multiple of `page` (a power of two), or `None` on overflow.
fn round_up(n: usize, page: usize) -> Option<usize> {
    Some(n.checked_add(page - 1)? & !(page - 1))
}

/// The usable size [`MmapStack::new`] gives for a requested `size`: at least
/// [`MIN_STACK_SIZE`], rounded up to whole pages.
pub(crate) fn usable_size(size: usize) -> io::Result<usize> {
    round_up(size.max(MIN_STACK_SIZE), page_size()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "grove: greenlet stack size too large",
        )
    })
}

/// A stack in an `mmap`'d region: `size` usable bytes with one guard page below them.
///
/// The memory is reserved, not committed (`MAP_NORESERVE`): a stack costs physical memory
/// only for the pages that code running on it touched. [`release_below`](Self::release_below)
/// gives such pages back. Dropping the stack unmaps it.
///
/// `Send` (it is plain memory) but not `Sync`.
#[derive(Debug)]
pub struct MmapStack {
    /// The lowest usable address; the mapping starts one page ([`page_size`]) lower, with
    /// the guard.
    base: NonNull<u8>,
    /// The end of the mapping.
    top: usize,
    // Two words and nothing more: the pool moves stacks around on its hot path, and a pair of
    // words moves in registers. (Valgrind's id for the stack, under valgrind, is kept aside:
    // `valgrind::register_stack`.)
}

// SAFETY: an MmapStack exclusively owns its mapping; nothing in it is tied to the thread that
// created it (munmap and madvise work from any thread).
unsafe impl Send for MmapStack {}

impl MmapStack {
    /// Maps a new stack with at least `size` usable bytes (rounded up to whole pages, and to no
    /// less than [`MIN_STACK_SIZE`]) and a guard page below them.
    ///
    /// Fails if the mapping or its guard cannot be made; a stack is never handed out without
    /// its guard. When the process runs out of memory mappings (`ENOMEM`), the error's text
    /// names the `vm.max_map_count` limit and how to raise it.
    pub fn new(size: usize) -> io::Result<MmapStack> {
        Self::with_mode(size, None)
    }

    /// [`new`](Self::new), optionally forcing the guard mechanism (for tests).
    fn with_mode(size: usize, force: Option<u8>) -> io::Result<MmapStack> {
        let size = usable_size(size)?;
        let page = page_size();
        let len = size.checked_add(page).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: greenlet stack size too large",
            )
        })?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing: it cannot
        // overlap memory anything else uses.
        let map = unsafe { syscall!(mmap(ptr::null_mut(), len, STACK_PROT, STACK_FLAGS, -1, 0)) }
            .map_err(|e| map_error(e, size))?;
        let map = NonNull::new(map as *mut u8).expect("mmap returned null");
        let stack = MmapStack {
            base: NonNull::new(map.as_ptr().wrapping_add(page)).expect("mapping wraps"),
            top: map.as_ptr() as usize + len,
        };
        // On failure `stack` is dropped here, which unmaps it (deregistering a stack valgrind
        // does not know is a no-op).
        stack.install_guard(force).map_err(|e| map_error(e, size))?;
        valgrind::register_stack(stack.base() as usize, stack.top - 1);
        Ok(stack)
    }

    /// Maps `n` stacks like [`new`](Self::new) with one `mmap`, each with a guard page of its
    /// own below it, and returns them in ascending address order. From then on they are
    /// separate stacks: each unmaps its own part of the mapping when dropped.
    ///
    /// The guards are installed with one `process_madvise(MADV_GUARD_INSTALL)` for the lot
    /// where the kernel allows it (Linux 6.13+), else one call per stack; so a chunk of 64
    /// stacks costs a handful of system calls instead of 128. Before the process has learnt
    /// how guards are made here (its first stack, see [`guard_kind`]), or for `n <= 1`, this
    /// maps one stack with [`new`](Self::new).
    pub(crate) fn new_chunk(size: usize, n: usize) -> io::Result<Vec<MmapStack>> {
        let size = usable_size(size)?;
        if n <= 1 || GUARD_MODE.load(Ordering::Relaxed) == GUARD_UNKNOWN {
            return Ok(vec![Self::new(size)?]);
        }
        let page = page_size();
        let too_large = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "grove: greenlet stack size too large",
            )
        };
        let one = size.checked_add(page).ok_or_else(too_large)?;
        let len = one.checked_mul(n).ok_or_else(too_large)?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing: it cannot
        // overlap memory anything else uses.
        let map =
            match unsafe { syscall!(mmap(ptr::null_mut(), len, STACK_PROT, STACK_FLAGS, -1, 0)) } {
                Ok(m) => m as usize,
                // Out of address space or mappings for a chunk: one stack may still fit.
                Err(_) => return Ok(vec![Self::new(size)?]),
            };
        let stacks: Vec<MmapStack> = (0..n)
            .map(|i| MmapStack {
                base: NonNull::new((map + i * one + page) as *mut u8).expect("mapping wraps"),
                top: map + (i + 1) * one,
            })
            .collect();
        // On failure `stacks` is dropped here, which unmaps every part of the mapping.
        install_guards(&stacks).map_err(|e| map_error(e, size))?;
        for s in &stacks {
            valgrind::register_stack(s.base() as usize, s.top - 1);
        }
        Ok(stacks)
    }

    /// Gives up the stack without unmapping it: its [`base`](Stack::base) and
    /// [`top`](Stack::top), from which [`from_raw_parts`](Self::from_raw_parts) makes it again.
    pub(crate) fn into_raw_parts(self) -> (usize, usize) {
        let s = ManuallyDrop::new(self);
        (s.base.as_ptr() as usize, s.top)
    }

    /// The stack that [`into_raw_parts`](Self::into_raw_parts) gave up.
    ///
    /// # Safety
    ///
    /// `base` and `top` must come from `into_raw_parts`, and each such pair be made into a stack
    /// again only once.
    pub(crate) unsafe fn from_raw_parts(base: usize, top: usize) -> MmapStack {
        MmapStack {
            // SAFETY: the base of a mapped stack is not null (the caller's promise).
            base: unsafe { NonNull::new_unchecked(base as *mut u8) },
            top,
        }
    }

    /// The start of the mapping: the guard page.
    fn map(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_sub(page_size())
    }

    /// Makes the first page of the mapping a guard that faults on any access.
    fn install_guard(&self, force: Option<u8>) -> io::Result<()> {
        let mut mode = force.unwrap_or_else(|| GUARD_MODE.load(Ordering::Relaxed));
        if mode == GUARD_UNKNOWN && valgrind::running_on_valgrind() {
            // Valgrind does not know MADV_GUARD_INSTALL; with PROT_NONE it sees the guard.
            mode = GUARD_MPROTECT;
            GUARD_MODE.store(mode, Ordering::Relaxed);
        }
        #[cfg(target_os = "linux")]
        if mode != GUARD_MPROTECT {
            // SAFETY: the first page of our own fresh mapping, which nothing uses yet.
            let r =
                unsafe { syscall!(madvise(self.map().cast(), page_size(), MADV_GUARD_INSTALL)) };
            match r {
                // Trust, but verify once: qemu-user, for one, accepts MADV_GUARD_INSTALL and
                // does nothing, which would hand out stacks without a guard.
                Ok(_) if mode == GUARD_MADVISE && force.is_none() => return Ok(()),
                Ok(_) if guard_is_effective(self.map()) => {
                    if mode == GUARD_UNKNOWN {
                        GUARD_MODE.store(GUARD_MADVISE, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Ok(_) => {
                    // Accepted but not enforced: protect the page the old way, from now on.
                    GUARD_MODE.store(GUARD_MPROTECT, Ordering::Relaxed);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    // The kernel predates guard regions: remember, and protect the page.
                    GUARD_MODE.store(GUARD_MPROTECT, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let _ = mode;
        // SAFETY: the first page of our own fresh mapping, which nothing uses yet.
        unsafe { syscall!(mprotect(self.map().cast(), page_size(), libc::PROT_NONE)) }?;
        Ok(())
    }

    /// Gives back to the kernel the memory of the usable pages below `top() - keep` (`keep`
    /// rounded up to whole pages): the pages a deep call touched. They stay mapped and read
    /// back as zeros (Linux) or as unspecified contents (elsewhere) when touched again. The
    /// guard page is never touched. A failure is ignored (the pages just stay resident).
    ///
    /// Call it only while no context is running on, or suspended in, the released part of the
    /// stack: whatever was there is lost.
    pub fn release_below(&self, keep: usize) {
        let page = page_size();
        let top = self.top() as usize;
        let base = self.base() as usize;
        let Some(keep) = round_up(keep, page) else {
            return;
        };
        let end = top.saturating_sub(keep);
        if end <= base {
            return;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let advice = libc::MADV_DONTNEED;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let advice = libc::MADV_FREE;
        // SAFETY: `base..end` lies in the usable part of our own mapping (above the guard), and
        // the caller does not need its contents (see the doc comment).
        let _ = unsafe { syscall!(madvise(base as *mut libc::c_void, end - base, advice)) };
    }
}

/// Unmaps all of `stacks` with as few system calls as their addresses allow: one `munmap` per
/// run of address-adjacent mappings. Stacks mapped one after another usually are adjacent (the
/// kernel places a new mapping right below the last one and merges the two into one VMA), and
/// each separate `munmap` of one of them would split that VMA again; unmapping a run at once
/// splits it once.
pub(crate) fn unmap_batch(mut stacks: Vec<MmapStack>) {
    stacks.sort_unstable_by_key(|s| s.top);
    let mut run: Option<(usize, usize)> = None;
    for s in stacks {
        // Its mapping is unmapped below, as part of a run: never by its own `Drop`.
        let s = ManuallyDrop::new(s);
        valgrind::deregister_stack(s.base() as usize);
        let (lo, hi) = (s.map() as usize, s.top);
        run = match run {
            Some((start, end)) if end == lo => Some((start, hi)),
            Some((start, end)) => {
                unmap_run(start, end);
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
    }
    if let Some((start, end)) = run {
        unmap_run(start, end);
    }
}

/// Unmaps `start..end`, the union of whole, adjacent stack mappings (see `unmap_batch`).
fn unmap_run(start: usize, end: usize) {
    // SAFETY: `start..end` is exactly the mappings of stacks `unmap_batch` took ownership of
    // (each one `map()..top`, exclusively owned, and adjacent to the next, so the union has no
    // gap that could belong to anything else); they are never unmapped again (ManuallyDrop)
    // and nothing runs on them (their owner gave them up).
    let r = unsafe { syscall!(munmap(start as *mut libc::c_void, end - start)) };
    debug_assert!(r.is_ok(), "munmap of greenlet stacks failed: {r:?}");
}

impl Drop for MmapStack {
    fn drop(&mut self) {
        valgrind::deregister_stack(self.base() as usize);
        // SAFETY: exactly the mapping `new` made, which this value owns; nothing runs on it any
        // more (it is being dropped).
        let r = unsafe { syscall!(munmap(self.map().cast(), self.top - self.map() as usize)) };
        debug_assert!(r.is_ok(), "munmap of a greenlet stack failed: {r:?}");
    }
}

// SAFETY: `base()..top()` is the read/write part of a mapping this value exclusively owns, for
// as long as it lives; `top()` is the end of a page-aligned mapping, so page (and 16-byte)
// aligned; the usable size is at least MIN_STACK_SIZE (`usable_size`); the page below `base()`
// is a guard region (`install_guard` succeeded, or `new` failed).
unsafe impl Stack for MmapStack {
    fn top(&self) -> *mut u8 {
        self.top as *mut u8
    }
    fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }
    fn guard_size(&self) -> usize {
        page_size()
    }
}

/// The error for a failed mmap/madvise/mprotect of a `size`-byte stack: `ENOMEM` explained.
fn map_error(e: io::Error, size: usize) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    io::Error::new(io::ErrorKind::OutOfMemory, enomem_message(size))
}

/// The text for an `ENOMEM` while mapping a `size`-byte stack.
fn enomem_message(size: usize) -> String {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match limit {
        Some(n) => format!(
            "grove: cannot map a {} KiB greenlet stack: out of memory mappings (the kernel's \
             vm.max_map_count limit, currently {n}; raise it with sysctl -w \
             vm.max_map_count={}) or out of address space",
            size / 1024,
            n.saturating_mul(4),
        ),
        None => format!(
            "grove: cannot map a {} KiB greenlet stack: out of memory or memory mappings",
            size / 1024
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_the_systems() {
        // SAFETY: sysconf has no memory-safety preconditions.
        let sys = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        assert_eq!(page_size() as libc::c_long, sys);
    }

    /// Runs `f` in a forked child and returns how it ended (`waitpid` status).
    fn in_child(f: impl FnOnce()) -> libc::c_int {
        // SAFETY: the child only resets a signal disposition, touches memory and `_exit`s:
        // nothing that needs locks another thread might hold.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                f();
                libc::_exit(0);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            status
        }
    }

    fn assert_guard_faults(stack: &MmapStack) {
        let below = stack.base().wrapping_sub(1);
        let lowest = stack.base().wrapping_sub(stack.guard_size());
        for addr in [below, lowest] {
            let status = in_child(|| {
                // SAFETY: runs in a forked child; the write to the guard is the fault under test.
                unsafe { ptr::write_volatile(addr, 1u8) }
            });
            assert!(
                libc::WIFSIGNALED(status),
                "guard write did not fault: status {status}"
            );
            let sig = libc::WTERMSIG(status);
            assert!(
                sig == libc::SIGSEGV || sig == libc::SIGBUS,
                "died of signal {sig}"
            );
        }
        // And the lowest usable byte is fine.
        let status = in_child(|| {
            // SAFETY: base() is usable memory of the stack (and this runs in a forked child).
            unsafe { ptr::write_volatile(stack.base(), 1u8) }
        });
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn layout() {
        let s = MmapStack::new(100_000).unwrap();
        assert_eq!(s.top() as usize % 16, 0);
        assert_eq!(s.top() as usize % page_size(), 0);
        assert_eq!(s.size() % page_size(), 0);
        assert!(s.size() >= 100_000);
        assert_eq!(s.guard_size(), page_size());
        let small = MmapStack::new(1).unwrap();
        assert!(small.size() >= MIN_STACK_SIZE);
        // The whole usable range is writable.
        // SAFETY: base..top is the stack's usable memory, not used by anything.
        unsafe { ptr::write_bytes(s.base(), 0xa5, s.size()) };
        assert!(MmapStack::new(usize::MAX - 10).is_err());
    }

    #[test]
    fn guard_faults_default_mode() {
        let s = MmapStack::new(64 * 1024).unwrap();
        assert_guard_faults(&s);
        #[cfg(target_os = "linux")]
        assert_ne!(GUARD_MODE.load(Ordering::Relaxed), GUARD_UNKNOWN);
    }

    #[test]
    fn every_stack_of_a_chunk_has_its_guard() {
        let _first = MmapStack::new(16 * 1024).unwrap(); // the guard mode is known from here
        let stacks = MmapStack::new_chunk(20 * 1024, 5).unwrap();
        assert_eq!(stacks.len(), 5);
        for w in stacks.windows(2) {
            assert_eq!(w[0].top(), w[1].map(), "one mapping, in address order");
        }
        for s in &stacks {
            assert!(s.size() >= 20 * 1024);
            assert_guard_faults(s);
        }
        #[cfg(target_os = "linux")]
        if GUARD_MODE.load(Ordering::Relaxed) == GUARD_MADVISE {
            // Guard regions do not split the mapping.
            let (lo, hi) = (stacks[0].map() as usize, stacks[4].top() as usize);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let inside = maps
                .lines()
                .filter(|l| {
                    let (a, b) = l.split(' ').next().unwrap().split_once('-').unwrap();
                    let (a, b) = (
                        usize::from_str_radix(a, 16).unwrap(),
                        usize::from_str_radix(b, 16).unwrap(),
                    );
                    a < hi && b > lo
                })
                .count();
            assert!(inside <= 2, "{inside} VMAs over one chunk"); // (a neighbour may merge)
        }
        // Each unmaps its own part: dropping the middle one leaves the others usable.
        let mut stacks = stacks;
        drop(stacks.remove(2));
        for s in &stacks {
            // SAFETY: the stack's usable memory, unused.
            unsafe { ptr::write_bytes(s.base(), 3, s.size()) };
        }
        assert!(MmapStack::new_chunk(usize::MAX - 10, 3).is_err());
    }

    #[test]
    fn guard_faults_mprotect_mode() {
        let s = MmapStack::with_mode(64 * 1024, Some(GUARD_MPROTECT)).unwrap();
        assert_guard_faults(&s);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn guard_faults_madvise_mode() {
        match MmapStack::with_mode(64 * 1024, Some(GUARD_MADVISE)) {
            Ok(s) => assert_guard_faults(&s),
            // A kernel without guard regions: the fallback is then what `new` uses.
            Err(e) => assert!(matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSYS)
            )),
        }
    }

    /// How many lines of /proc/self/maps (VMAs) overlap the stack's mapping.
    #[cfg(target_os = "linux")]
    fn vmas(s: &MmapStack) -> usize {
        let (lo, hi) = (s.map() as usize, s.top() as usize);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter(|l| {
                let range = l.split(' ').next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let a = usize::from_str_radix(a, 16).unwrap();
                let b = usize::from_str_radix(b, 16).unwrap();
                a < hi && b > lo
            })
            .count()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn vma_cost() {
        let s = MmapStack::with_mode(64 * 1024, Some(GUARD_MPROTECT)).unwrap();
        assert_eq!(vmas(&s), 2);
        let s = MmapStack::new(64 * 1024).unwrap();
        if GUARD_MODE.load(Ordering::Relaxed) == GUARD_MADVISE {
            assert_eq!(vmas(&s), 1);
        }
    }

    /// How many of the stack's usable pages are resident.
    fn resident_pages(s: &MmapStack) -> usize {
        let page = page_size();
        let n = s.size() / page;
        let mut vec = vec![0u8; n];
        // SAFETY: base..top is mapped and page aligned; `vec` has one byte per page.
        unsafe { syscall!(mincore(s.base().cast(), s.size(), vec.as_mut_ptr().cast())) }.unwrap();
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn release_below_gives_pages_back() {
        let s = MmapStack::new(256 * 1024).unwrap();
        // SAFETY: the stack's usable memory, not used by anything.
        unsafe { ptr::write_bytes(s.base(), 1, s.size()) };
        let pages = s.size() / page_size();
        assert_eq!(resident_pages(&s), pages);
        s.release_below(4096);
        assert_eq!(resident_pages(&s), 1);
        // The top page kept its contents; the released ones read back as zeros.
        // SAFETY: both addresses are in the usable range.
        unsafe {
            assert_eq!(*s.top().sub(1), 1);
            #[cfg(target_os = "linux")]
            assert_eq!(*s.base(), 0);
        }
        // Keeping more than the stack releases nothing; the guard still faults.
        s.release_below(usize::MAX);
        s.release_below(0);
        assert_eq!(resident_pages(&s), 0);
        assert_guard_faults(&s);
    }

    /// Whether any page of `lo..hi` is mapped (`mincore` fails with ENOMEM on unmapped
    /// memory).
    #[cfg(target_os = "linux")]
    fn any_mapped(lo: usize, hi: usize) -> bool {
        let page = page_size();
        (lo..hi).step_by(page).any(|a| {
            let mut v = 0u8;
            // SAFETY: one page-aligned page, one byte of result; unmapped is an error, not UB.
            unsafe { libc::mincore(a as *mut libc::c_void, page, &mut v) == 0 }
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unmap_batch_unmaps_every_stack() {
        // Adjacent or not, in any order: every mapping goes, nothing else. Checked in a child
        // (single-threaded: no other test can map something at these addresses meanwhile).
        let mut stacks: Vec<MmapStack> =
            (0..8).map(|_| MmapStack::new(16 * 1024).unwrap()).collect();
        let survivor = stacks.remove(3);
        stacks.swap(0, 5);
        let ranges: Vec<(usize, usize)> =
            stacks.iter().map(|s| (s.map() as usize, s.top)).collect();
        let alive = (survivor.map() as usize, survivor.top);
        let status = in_child(move || {
            unmap_batch(stacks);
            let ok =
                ranges.iter().all(|&(lo, hi)| !any_mapped(lo, hi)) && any_mapped(alive.0, alive.1);
            // SAFETY: ends the child.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
        drop(survivor);
    }

    #[test]
    fn enomem_is_explained() {
        let e = map_error(io::Error::from_raw_os_error(libc::ENOMEM), 256 * 1024);
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        let text = e.to_string();
        assert!(
            text.starts_with("grove: cannot map a 256 KiB greenlet stack"),
            "{text}"
        );
        if std::path::Path::new("/proc/sys/vm/max_map_count").exists() {
            assert!(text.contains("vm.max_map_count limit, currently"), "{text}");
        }
        let other = map_error(io::Error::from_raw_os_error(libc::EPERM), 4096);
        assert_eq!(other.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn out_of_map_count_reports_enomem() {
        // With many stacks and a tiny RLIMIT_AS the mmap fails with ENOMEM: check the error in
        // a child (the limit is per process).
        let status = in_child(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            // SAFETY: plain setrlimit on this (child) process.
            unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
            let e = MmapStack::new(2 << 30).unwrap_err();
            let ok =
                e.kind() == io::ErrorKind::OutOfMemory && e.to_string().contains("greenlet stack");
            // SAFETY: ends the child.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
    }
}
