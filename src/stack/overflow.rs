//! Turning a greenlet's stack overflow into a clear message.
//!
//! Running off the end of a greenlet stack hits its guard page: a `SIGSEGV` (or `SIGBUS` on
//! some systems). [`install`] puts in a handler for both that asks the greenlet module whether
//! the fault address is the running greenlet's guard; if so it writes
//!
//! ```text
//! grove: greenlet 7 (deep) overflowed its 64 KiB stack
//! ```
//!
//! to stderr and aborts (the process dies of `SIGABRT`). Any other fault is handed on to the
//! handler that was there before (Rust's own, which reports overflows of thread stacks), or to
//! the default action.
//!
//! The handler runs on the thread's alternate signal stack (the overflowed stack has no room):
//! [`ensure_altstack`] gives the thread one if it has none. Threads started by `std` already
//! have one.

use super::mmap::MmapStack;
use super::Stack;
use crate::syscall::syscall;
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

/// The signals a guard-page hit raises.
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The actions that were installed for [`SIGNALS`] before ours.
struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);

// SAFETY: written only inside `INSTALL.call_once`, each entry before our handler for that
// signal is installed; read-only afterwards (by the handler, on any thread).
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));
static INSTALL: Once = Once::new();

/// Installs the overflow handler for `SIGSEGV` and `SIGBUS`, process-wide, once; later calls
/// do nothing. The previous actions are kept and chained to for faults that are not a
/// greenlet's guard page.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: `PREVIOUS` is written only here, inside call_once, and entry `i` before
            // the handler that reads it is installed; sigaction gets valid pointers to a
            // zero-initialised (valid) sigaction.
            unsafe {
                let prev = (*PREVIOUS.0.get())[i].as_mut_ptr();
                prev.write(std::mem::zeroed());
                if syscall!(sigaction(sig, ptr::null(), prev)).is_err() {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let _ = syscall!(sigaction(sig, &action, ptr::null_mut()));
            }
        }
    });
}

/// The fault address of a `SIGSEGV`/`SIGBUS`.
///
/// # Safety
///
/// `info` must be the `siginfo_t` the kernel passed to an `SA_SIGINFO` handler.
unsafe fn fault_address(info: *const libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the caller passes the kernel's siginfo; for SIGSEGV/SIGBUS its si_addr is set.
    let addr = unsafe { (*info).si_addr() };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: as above.
    let addr = unsafe { (*info).si_addr };
    addr as usize
}

/// The `SIGSEGV`/`SIGBUS` handler. Async-signal-safe: no allocation, no locks.
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel calls this as an SA_SIGINFO handler, with a valid `info`.
    let addr = unsafe { fault_address(info) };
    if let Some(hit) = crate::greenlet::guard_hit(addr) {
        // SAFETY: guard_hit returns the running greenlet's name (or a static string), which
        // lives as long as the greenlet: the whole time this handler runs.
        let name = unsafe { std::slice::from_raw_parts(hit.name, hit.name_len) };
        report_and_abort(hit.id, name, hit.stack_kib);
    }
    if let Some(kib) = crate::coroutine::guards::guard_hit(addr) {
        report_coroutine_and_abort(kib);
    }
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: our handler is installed only after PREVIOUS[i] was written (see `install`), and
    // it is never written again.
    let prev = unsafe { (*PREVIOUS.0.get())[i].assume_init_ref() };
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // Put the default action back and return: the faulting instruction runs again and the
        // process dies of the signal. (Ignoring a fault would loop forever: treat it as DFL.)
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            let _ = syscall!(sigaction(sig, &dfl, ptr::null_mut()));
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        type Action = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
        // SAFETY: with SA_SIGINFO set, sa_sigaction is a three-argument handler; we call it as
        // the kernel would have.
        let f = unsafe { std::mem::transmute::<libc::sighandler_t, Action>(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        type Handler = extern "C" fn(libc::c_int);
        // SAFETY: without SA_SIGINFO, the field holds a one-argument sa_handler.
        let f = unsafe { std::mem::transmute::<libc::sighandler_t, Handler>(prev.sa_sigaction) };
        f(sig);
    }
}

/// A fixed buffer to format the report in, without allocating.
struct Buf {
    bytes: [u8; 384],
    len: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// `grove: greenlet <id> (<name>) overflowed its <N> KiB stack\n` (the name cut at 256 bytes).
fn format_report(id: u64, name: &[u8], stack_kib: usize) -> Buf {
    let mut b = Buf {
        bytes: [0; 384],
        len: 0,
    };
    b.push(b"grove: greenlet ");
    b.push_u64(id);
    b.push(b" (");
    b.push(&name[..name.len().min(256)]);
    b.push(b") overflowed its ");
    b.push_u64(stack_kib as u64);
    b.push(b" KiB stack\n");
    b
}

/// `grove: a coroutine overflowed its <N> KiB stack\n`.
fn format_coroutine_report(stack_kib: usize) -> Buf {
    let mut b = Buf {
        bytes: [0; 384],
        len: 0,
    };
    b.push(b"grove: a coroutine overflowed its ");
    b.push_u64(stack_kib as u64);
    b.push(b" KiB stack\n");
    b
}

/// Writes the report for a greenlet's overflow to stderr and dies of `SIGABRT`.
fn report_and_abort(id: u64, name: &[u8], stack_kib: usize) -> ! {
    write_and_abort(format_report(id, name, stack_kib))
}

/// Writes the report for a coroutine's overflow to stderr and dies of `SIGABRT`.
fn report_coroutine_and_abort(stack_kib: usize) -> ! {
    write_and_abort(format_coroutine_report(stack_kib))
}

/// Writes a report to stderr and dies of `SIGABRT`.
fn write_and_abort(b: Buf) -> ! {
    // SAFETY: write(2) of a live buffer, and sigaction with a valid SIG_DFL action: both
    // async-signal-safe. abort() raises SIGABRT, whose action is now the default one
    // (terminate), so the process dies of it even if someone had a SIGABRT handler.
    unsafe {
        let _ = syscall!(write(libc::STDERR_FILENO, b.bytes.as_ptr().cast(), b.len));
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        let _ = syscall!(sigaction(libc::SIGABRT, &dfl, ptr::null_mut()));
        libc::abort()
    }
}

/// Usable bytes of an alternate signal stack grove maps for a thread.
const ALTSTACK_SIZE: usize = 64 * 1024;

/// This thread's alternate signal stack, if grove installed it.
struct AltStack {
    /// Whether `ensure_altstack` ran on this thread.
    checked: Cell<bool>,
    stack: Cell<Option<MmapStack>>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let Some(stack) = self.stack.take() else {
            return;
        };
        // Disable it before unmapping, if it is still the thread's altstack: a signal in the
        // rest of the thread's exit must not run on unmapped memory.
        // SAFETY: sigaltstack with valid pointers. If it is ours we disable it; if someone
        // replaced it meanwhile we leave theirs and only unmap ours, which is no longer used.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            if syscall!(sigaltstack(ptr::null(), &mut cur)).is_ok()
                && ptr::eq(cur.ss_sp.cast::<u8>(), stack.base())
            {
                let mut off: libc::stack_t = std::mem::zeroed();
                off.ss_flags = libc::SS_DISABLE;
                let _ = syscall!(sigaltstack(&off, ptr::null_mut()));
            }
        }
        drop(stack);
    }
}

thread_local! {
    static ALTSTACK: AltStack = const { AltStack { checked: Cell::new(false), stack: Cell::new(None) } };
}

/// Makes sure this thread has an alternate signal stack, so that the overflow handler can run
/// when a greenlet's stack is exhausted. If it has none, maps one (64 KiB plus a guard page),
/// freed when the thread exits. Cheap after the first call on a thread.
pub(crate) fn ensure_altstack() {
    let _ = ALTSTACK.try_with(|alt| {
        if alt.checked.replace(true) {
            return;
        }
        // SAFETY: sigaltstack with a valid out-pointer only queries.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { syscall!(sigaltstack(ptr::null(), &mut cur)) }.is_err() {
            return;
        }
        if cur.ss_flags & libc::SS_DISABLE == 0 {
            return; // The thread has one (std's, or the embedder's).
        }
        let Ok(stack) = MmapStack::new(ALTSTACK_SIZE) else {
            return;
        };
        let mut new: libc::stack_t = cur;
        new.ss_sp = stack.base().cast();
        new.ss_size = stack.size();
        new.ss_flags = 0;
        // SAFETY: `stack` is memory we own and keep alive (in ALTSTACK) until we disable the
        // altstack again in AltStack's destructor.
        if unsafe { syscall!(sigaltstack(&new, ptr::null_mut())) }.is_ok() {
            alt.stack.set(Some(stack));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_format() {
        let b = format_report(42, b"deep", 64);
        assert_eq!(
            &b.bytes[..b.len],
            b"grove: greenlet 42 (deep) overflowed its 64 KiB stack\n"
        );
        let b = format_report(u64::MAX, b"", 0);
        assert_eq!(
            &b.bytes[..b.len],
            b"grove: greenlet 18446744073709551615 () overflowed its 0 KiB stack\n"
        );
        let long = [b'x'; 1000];
        let b = format_report(1, &long, 256);
        assert!(b.bytes[..b.len].ends_with(b") overflowed its 256 KiB stack\n"));
    }

    fn current_altstack() -> libc::stack_t {
        // SAFETY: a query with a valid out-pointer.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            syscall!(sigaltstack(ptr::null(), &mut cur)).unwrap();
            cur
        }
    }

    #[test]
    fn altstack_is_installed_when_missing_and_removed_at_exit() {
        std::thread::spawn(|| {
            // Take std's altstack away (it stays mapped; std frees it at thread exit).
            let had = current_altstack();
            // SAFETY: disabling the altstack of this thread, which is not handling a signal.
            unsafe {
                let mut off: libc::stack_t = std::mem::zeroed();
                off.ss_flags = libc::SS_DISABLE;
                syscall!(sigaltstack(&off, ptr::null_mut())).unwrap();
            }
            assert_ne!(current_altstack().ss_flags & libc::SS_DISABLE, 0);
            ensure_altstack();
            let ours = current_altstack();
            assert_eq!(ours.ss_flags & libc::SS_DISABLE, 0);
            assert!(ours.ss_size >= ALTSTACK_SIZE);
            ensure_altstack(); // idempotent
            assert_eq!(current_altstack().ss_sp, ours.ss_sp);
            // Give std's back before exit, so that std's own cleanup finds what it expects;
            // ours is then simply unmapped by its destructor.
            // SAFETY: restoring the altstack std installed, still mapped.
            unsafe { syscall!(sigaltstack(&had, ptr::null_mut())).unwrap() };
        })
        .join()
        .unwrap();
    }

    #[test]
    fn install_is_idempotent_and_chains() {
        install();
        install();
        // SAFETY: queries only.
        let (segv, bus) = unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            let mut b: libc::sigaction = std::mem::zeroed();
            syscall!(sigaction(libc::SIGSEGV, ptr::null(), &mut a)).unwrap();
            syscall!(sigaction(libc::SIGBUS, ptr::null(), &mut b)).unwrap();
            (a, b)
        };
        assert_eq!(
            segv.sa_sigaction,
            handler as *const () as libc::sighandler_t
        );
        assert_eq!(bus.sa_sigaction, handler as *const () as libc::sighandler_t);
        assert_ne!(segv.sa_flags & libc::SA_ONSTACK, 0);

        // A fault that is no greenlet's guard still kills the process with SIGSEGV (through
        // Rust's handler or the default action).
        // SAFETY: the child only faults; the parent waits for it.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                ptr::write_volatile(8 as *mut u8, 1);
                libc::_exit(0);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFSIGNALED(status), "status {status}");
            assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
        }
    }
}
