//! Valgrind client requests, without valgrind's header: telling valgrind which memory is a
//! stack, so that a switch onto a greenlet stack is not taken for a huge stack-pointer jump.
//!
//! A client request is a magic instruction sequence that is a no-op on a real CPU (it rotates
//! a register by a total of 128 bits, then exchanges a register with itself) and that
//! valgrind's JIT recognises; the request and its arguments are in a six-word array whose
//! address is in a fixed register, and the result comes back in another, which holds the
//! default value when not running under valgrind. The sequences and request codes are those
//! of `valgrind/valgrind.h` (`__SPECIAL_INSTRUCTION_PREAMBLE` and
//! `VALGRIND_DO_CLIENT_REQUEST_EXPR` for amd64 and arm64; `VG_USERREQ__*`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

/// `VG_USERREQ__RUNNING_ON_VALGRIND`.
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__STACK_REGISTER`.
const STACK_REGISTER: usize = 0x1501;
/// `VG_USERREQ__STACK_DEREGISTER`.
const STACK_DEREGISTER: usize = 0x1502;

/// Makes client request `request` with arguments `args`; returns valgrind's answer, or
/// `default` when not running under valgrind.
#[inline]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    #[cfg(target_arch = "x86_64")]
    {
        let mut result = default;
        // SAFETY: on a real CPU the sequence rotates rdi by 3+13+61+51 = 128 bits (back to its
        // value; flags are clobbered, which the default options declare) and exchanges rbx with
        // itself: no effect. Under valgrind it reads the six words at rax (a live local array,
        // which the implicit memory clobber makes sure is written) and writes rdx only.
        unsafe {
            core::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") block.as_ptr(),
                inout("rdx") result,
                options(nostack),
            );
        }
        result
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut result = default;
        // SAFETY: on a real CPU the sequence rotates x12 by 3+13+51+61 = 128 bits (back to its
        // value) and ORs x10 with itself: no effect. Under valgrind it reads the six words at
        // x4 (a live local array, written before the asm thanks to the implicit memory
        // clobber) and writes x3 only.
        unsafe {
            core::arch::asm!(
                "ror x12, x12, #3",
                "ror x12, x12, #13",
                "ror x12, x12, #51",
                "ror x12, x12, #61",
                "orr x10, x10, x10",
                in("x4") block.as_ptr(),
                inout("x3") result,
                options(nostack),
            );
        }
        result
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (block, request);
        default
    }
}

/// Whether the process runs under valgrind (`RUNNING_ON_VALGRIND`; nonzero is the nesting
/// depth).
pub(crate) fn running_on_valgrind() -> bool {
    client_request(0, RUNNING_ON_VALGRIND, [0; 5]) != 0
}

/// Tells valgrind that `start..=end` (lowest and highest addressable byte) is a stack.
/// Returns valgrind's id for it, for [`stack_deregister`]; 0 when not under valgrind.
pub(crate) fn stack_register(start: usize, end: usize) -> usize {
    client_request(0, STACK_REGISTER, [start, end, 0, 0, 0])
}

/// Tells valgrind that the stack registered as `id` is gone.
pub(crate) fn stack_deregister(id: usize) {
    client_request(0, STACK_DEREGISTER, [id, 0, 0, 0, 0]);
}

/// [`running_on_valgrind`], asked once per process.
fn active() -> bool {
    // 0: not asked yet, 1: no, 2: yes.
    static ACTIVE: AtomicU8 = AtomicU8::new(0);
    match ACTIVE.load(Ordering::Relaxed) {
        0 => {
            let on = running_on_valgrind();
            ACTIVE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

/// Valgrind's ids of the stacks registered through [`register_stack`], by lowest address. The
/// ids are kept here rather than in each stack, which is then two words, cheap to move around
/// the pool; only a process running under valgrind ever has any.
static IDS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// Under valgrind, tells it that `start..=end` (lowest and highest addressable byte) is a
/// stack, and remembers its id for [`deregister_stack`]. Otherwise does nothing.
pub(crate) fn register_stack(start: usize, end: usize) {
    if active() {
        let id = stack_register(start, end);
        IDS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(start, id);
    }
}

/// Under valgrind, tells it that the stack registered at `start` is gone. Otherwise does
/// nothing.
pub(crate) fn deregister_stack(start: usize) {
    if active() {
        let id = IDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&start);
        if let Some(id) = id {
            stack_deregister(id);
        }
    }
}

/// A registration of memory that is not an [`MmapStack`](super::MmapStack) (which registers
/// itself): a stack brought by the user, registered while a greenlet or coroutine runs on it,
/// deregistered when this drops. Under valgrind only, and only if nothing registered the same
/// memory already; otherwise, and outside valgrind, it holds nothing.
#[derive(Debug)]
pub(crate) struct Registration {
    start: Option<usize>,
}

impl Registration {
    /// Registers `base..top` (usable bytes) as a stack, unless it is registered already.
    pub(crate) fn new(base: usize, top: usize) -> Registration {
        if !active() || top <= base {
            return Registration { start: None };
        }
        let mut ids = IDS.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.contains_key(&base) {
            return Registration { start: None };
        }
        ids.insert(base, stack_register(base, top - 1));
        Registration { start: Some(base) }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            deregister_stack(start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valgrind preloads its `vgpreload_*` libraries into the programs it runs.
    fn under_valgrind_by_env() -> bool {
        std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
    }

    #[test]
    fn requests_are_harmless_and_agree_with_the_environment() {
        let vg = under_valgrind_by_env();
        assert_eq!(running_on_valgrind(), vg);
        let mut buf = vec![0u8; 64 * 1024];
        let start = buf.as_mut_ptr() as usize;
        let id = stack_register(start, start + buf.len() - 1);
        if !vg {
            assert_eq!(id, 0);
        }
        stack_deregister(id);
        // Twice in a row: the registers the sequence rotates are preserved.
        assert_eq!(running_on_valgrind(), vg);
    }
}
