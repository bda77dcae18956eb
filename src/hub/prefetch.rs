//! Software prefetch: asks the CPU to bring a cache line in ahead of use. A hint only: it
//! never faults, whatever the address, and has no effect a program can observe except timing.

/// Starts loading the cache line holding `addr` (for reading or writing soon).
#[inline(always)]
pub(crate) fn line(addr: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetcht0` reads no register but `addr`, writes nothing, leaves the flags
    // alone, and never faults (an unmapped or protected address is simply not fetched).
    unsafe {
        core::arch::asm!("prefetcht0 [{0}]", in(reg) addr, options(nostack, readonly, preserves_flags));
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    // SAFETY: `prfm` is a hint: it writes nothing, leaves the flags alone and never faults,
    // whatever the address.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) addr, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
    let _ = addr;
}

/// The smallest page size grove runs on: a range that must stay within one page stays within
/// one of these.
pub(crate) const PAGE: usize = 4096;

/// Starts loading the `N` cache lines below `end` (`end - 64 * N .. end`), from the highest
/// down (the order a stack is used in).
#[inline(always)]
pub(crate) fn lines_below<const N: usize>(end: usize) {
    let end = end & !63;
    for i in 1..=N {
        line(end.wrapping_sub(64 * i));
    }
}
