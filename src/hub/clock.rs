//! Time as the hub reads it: the monotonic [`Clock`] every `sleep` and timeout is measured
//! on, and [`unix_secs_coarse`], the wall clock to the second, for whoever only needs that
//! (the HTTP server's `Date`).

use super::timers::Deadline;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use super::timers::Epoch;
use std::cell::Cell;

/// The hub's clock: real time, or a paused clock that only moves when the hub would
/// otherwise sleep (it then jumps to the next timer), for deterministic tests.
pub(crate) enum Clock {
    Real(RealClock),
    Paused(Cell<Deadline>),
}

impl Clock {
    #[inline]
    pub(crate) fn now(&self) -> Deadline {
        match self {
            Clock::Real(c) => c.now(),
            Clock::Paused(t) => t.get(),
        }
    }
}

/// Real time as a [`Deadline`]: nanoseconds since the hub was made. Every `sleep` and
/// timeout reads it, so on Linux it reads `CLOCK_MONOTONIC` (what [`std::time::Instant`]
/// reads there) itself, without `Instant`'s checked `timespec` arithmetic; elsewhere it goes
/// through an [`Epoch`].
pub(crate) struct RealClock {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    base: u64,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    epoch: Epoch,
}

impl RealClock {
    pub(super) fn new() -> RealClock {
        RealClock {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            base: Self::monotonic_ns(),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            epoch: Epoch::new(),
        }
    }

    #[inline]
    fn now(&self) -> Deadline {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Deadline::from_nanos(Self::monotonic_ns().saturating_sub(self.base));
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return self.epoch.now();
    }

    /// `CLOCK_MONOTONIC` in nanoseconds (584 years of range).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn monotonic_ns() -> u64 {
        let ts = read_clock(libc::CLOCK_MONOTONIC);
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    }
}

/// `clock_gettime(id)`. The clocks grove reads exist on every kernel of these systems that
/// Rust supports, so it cannot fail; if it did, the time would read as zero (standing still,
/// or the epoch), never undefined behaviour.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[inline]
fn read_clock(id: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, ours, and reads nothing else.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts
}

/// The Unix time in whole seconds, read from the kernel's coarse clock where there is one
/// (`CLOCK_REALTIME_COARSE` on Linux, `CLOCK_REALTIME_FAST` on FreeBSD: a copy the kernel
/// updates every tick; on this VM 7 ns a call, against 33 ns for `CLOCK_REALTIME`), else
/// from [`std::time::SystemTime`]. The coarse clock lags the precise one by at most a tick
/// (1 to 10 ms): fine for a value shown to the second. Before 1970 reads as 0.
pub(crate) fn unix_secs_coarse() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        const COARSE: libc::clockid_t = libc::CLOCK_REALTIME_COARSE;
        #[cfg(target_os = "freebsd")]
        const COARSE: libc::clockid_t = libc::CLOCK_REALTIME_FAST;
        u64::try_from(read_clock(COARSE).tv_sec).unwrap_or(0)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_wall_clock_agrees_with_the_precise_one_to_the_tick() {
        let secs = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = secs();
        let coarse = unix_secs_coarse();
        let after = secs();
        // The coarse clock lags by at most a tick, so it may still show the second before.
        assert!(
            coarse + 1 >= before && coarse <= after,
            "coarse {coarse}, precise {before}..{after}"
        );
    }
}
