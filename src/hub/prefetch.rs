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

/// Starts loading the 16 cache lines (1 KiB) below `end`, from the highest down (the order a
/// stack is used in): sixteen prefetches at fixed offsets from one register.
#[inline(always)]
pub(crate) fn kib_below(end: usize) {
    let end = end & !63;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: prefetches only (see `line`): no fault, no write, flags preserved.
    unsafe {
        core::arch::asm!(
            "prefetcht0 [{0} - 64]",
            "prefetcht0 [{0} - 128]",
            "prefetcht0 [{0} - 192]",
            "prefetcht0 [{0} - 256]",
            "prefetcht0 [{0} - 320]",
            "prefetcht0 [{0} - 384]",
            "prefetcht0 [{0} - 448]",
            "prefetcht0 [{0} - 512]",
            "prefetcht0 [{0} - 576]",
            "prefetcht0 [{0} - 640]",
            "prefetcht0 [{0} - 704]",
            "prefetcht0 [{0} - 768]",
            "prefetcht0 [{0} - 832]",
            "prefetcht0 [{0} - 896]",
            "prefetcht0 [{0} - 960]",
            "prefetcht0 [{0} - 1024]",
            in(reg) end,
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    // SAFETY: prefetches only (see `line`): no fault, no write, flags preserved.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{0}, #960]",
            "prfm pldl1keep, [{0}, #896]",
            "prfm pldl1keep, [{0}, #832]",
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
            in(reg) end.wrapping_sub(1024),
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
    let _ = end;
}
