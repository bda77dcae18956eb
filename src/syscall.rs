//! One checked way to call libc: [`syscall!`] turns a libc call's failure value into an
//! [`io::Error`] read from `errno`.
//!
//! ```text
//! // SAFETY: (the invariant the call needs)
//! let p = unsafe { syscall!(mmap(ptr::null_mut(), len, prot, flags, -1, 0)) }?;
//! ```
//!
//! The macro contains no `unsafe` block of its own: the call expands inside the caller's
//! `unsafe` block, where its `// SAFETY:` comment says why the call is sound.

use std::io;

/// How a libc function's return value reports failure.
pub(crate) trait SysResult: Copy {
    /// Whether the value is the function's failure value (then `errno` says why).
    fn is_failure(self) -> bool;
}

impl SysResult for libc::c_int {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl SysResult for libc::ssize_t {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl SysResult for *mut libc::c_void {
    /// `mmap`'s failure value.
    fn is_failure(self) -> bool {
        self == libc::MAP_FAILED
    }
}

/// `Ok(r)`, or the `errno` error if `r` is the failure value. Allocation-free (an OS error is
/// stored inline in [`io::Error`]), so usable from a signal handler.
#[inline]
pub(crate) fn check<T: SysResult>(r: T) -> io::Result<T> {
    if r.is_failure() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `syscall!(name(args..))`: calls `libc::name(args..)` and returns `io::Result` of its value,
/// `Err` with `errno` when it returned its failure value (`-1`, or `MAP_FAILED` for `mmap`).
///
/// Must be used inside an `unsafe` block (the libc functions are `unsafe`).
macro_rules! syscall {
    ($name:ident ( $($arg:expr),* $(,)? )) => {
        $crate::syscall::check(libc::$name($($arg),*))
    };
}

pub(crate) use syscall;
