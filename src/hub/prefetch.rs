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

/// How many bytes of stack a greenlet's start touches below the top of its stack, rounded up
/// to whole cache lines: its header and the frames of its entry, its body and a first
/// blocking call, down to the switch back to the hub. Measured: 824 bytes for a body that
/// goes to sleep at once (bench `timers`), so 13 lines.
pub(crate) const START_BYTES: usize = 13 * 64;

/// Starts loading the 13 cache lines ([`START_BYTES`]) below `end`, from the highest down
/// (the order a stack is used in): thirteen prefetches at fixed offsets from one register.
///
/// Fetching more than a start uses costs: a line fetched for nothing holds one of the few
/// line-fill buffers the fetches of the next greenlets need (16 lines measured about 10%
/// slower than 13 over a burst of 100k starts, and 12 no better).
#[inline(always)]
pub(crate) fn start_below(end: usize) {
    let end = end & !63;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: prefetches only (see `line`): no fault, no write, flags preserved.
    unsafe {
        core::arch::asm!(
            "prefetcht0 [{0} + 768]",
            "prefetcht0 [{0} + 704]",
            "prefetcht0 [{0} + 640]",
            "prefetcht0 [{0} + 576]",
            "prefetcht0 [{0} + 512]",
            "prefetcht0 [{0} + 448]",
            "prefetcht0 [{0} + 384]",
            "prefetcht0 [{0} + 320]",
            "prefetcht0 [{0} + 256]",
            "prefetcht0 [{0} + 192]",
            "prefetcht0 [{0} + 128]",
            "prefetcht0 [{0} + 64]",
            "prefetcht0 [{0}]",
            in(reg) end.wrapping_sub(START_BYTES),
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    // SAFETY: prefetches only (see `line`): no fault, no write, flags preserved.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{0}, #768]",
            "prfm pldl1keep, [{0}, #704]",
            "prfm pldl1keep, [{0}, #640]",
            "prfm pldl1keep, [{0}, #576]",
            "prfm pldl1keep, [{0}, #512]",
            "prfm pldl1keep, [{0}, #448]",
            "prfm pldl1keep, [{0}, #384]",
            "prfm pldl1keep, [{0}, #320]",
            "prfm pldl1keep, [{0}, #256]",
            "prfm pldl1keep, [{0}, #192]",
            "prfm pldl1keep, [{0}, #128]",
            "prfm pldl1keep, [{0}, #64]",
            "prfm pldl1keep, [{0}]",
            in(reg) end.wrapping_sub(START_BYTES),
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
    let _ = end;
}
