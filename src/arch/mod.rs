//! The switch core: a saved context, a fresh context, and the one operation between them.
//!
//! This module is `no_std` and allocation-free: it is what an embedder takes when they want
//! grove's context switch and nothing else. Everything above it (greenlets, the hub) is built
//! from [`Context::fresh`] and [`switch`].
//!
//! # The model
//!
//! A suspended context is a stack pointer. At that address sits a small frame: the
//! callee-saved registers that the assembly saves itself (rbx and rbp; x19, x29) and the address
//! to continue at (the slot tables at the top of `asm/switch_x86_64.S` and
//! `asm/switch_aarch64.S`, mirrored by [`Frame`]). The other callee-saved registers (r12-r15;
//! x20-x28, d8-d15) are declared clobbered by [`switch`]'s inline asm, so the compiler saves
//! them around the switch where they hold something: every callee-saved register survives a
//! switch, as seen by the code calling it. [`switch`] pushes a frame for the running code,
//! stores its stack pointer in `from`, loads `to`'s stack pointer and pops `to`'s frame. A
//! *fresh* context is a stack on which [`Context::fresh`] wrote a frame by hand, whose
//! continuation address is the trampoline (`grove_trampoline`), which calls the entry function.
//!
//! ```text
//!          fresh context                suspended context              running context
//!     top +---------------+        top +---------------+          +---------------+
//!         | header (yours)|            | header        |          | header        |
//!         | entry         |            | entry         |          | entry         |
//!         | unwind slot   |            | unwind slot   |          | slot -> parent's Context
//!         | trampoline    |<- rip      | trampoline    |          | trampoline    |
//!  sp --->| rbp, rbx=data |            | entry's frame |          | entry's frame |
//!         |               |            | ...           |          | ...           |
//!         |               |            | return address|<- rip    | ...           |<- rsp (live)
//!         |               |     sp --->| rbp, rbx      |          |               |
//!         |    (unused)   |            |    (unused)   |          |    (unused)   |
//!   base  +---------------+            +---------------+          +---------------+
//!         | guard page    |            | guard page    |          | guard page    |
//! ```
//!
//! `docs/switch.md` draws these per architecture and argues why the switch is correct.

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod imp;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod imp;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "grove's context switch is written for x86_64 (System V) and aarch64 (AAPCS64) only; \
     this target architecture is not supported"
);

pub use imp::Frame;

/// The slot offsets read by `build.rs` from the `.equ` lines of the assembly file.
#[allow(dead_code)]
pub(crate) mod slots {
    include!(concat!(env!("OUT_DIR"), "/slots.rs"));
}

/// Bytes reserved at the top of a fresh stack for the link area: the unwind slot, then the entry
/// function for the trampoline (`LINK_SLOT` and `LINK_ENTRY` in the assembly). 16 bytes, so
/// that the trampoline starts with a 16-byte aligned stack pointer.
pub const LINK_AREA: usize = 16;

/// Stack space a fresh context occupies before its entry function runs: the link area and the
/// initial [`Frame`].
pub const FRESH_OVERHEAD: usize = LINK_AREA + core::mem::size_of::<Frame>();

/// The entry function of a fresh context: called on the context's own stack with the `arg` of
/// the first [`switch`] into it and the `data` given to [`Context::fresh`].
///
/// It must never return: it ends by switching away for the last time. Returning reaches a trap
/// instruction in the trampoline. It must not unwind either: an `extern "C"` function that
/// panics aborts, which is the point (panics never cross the assembly frames).
pub type EntryFn = unsafe extern "C" fn(arg: usize, data: *mut u8) -> !;

/// A saved execution context: where a suspended stack stopped, and where the switch records
/// who resumed it (for unwinders).
///
/// Layout is fixed: `sp` at offset `CTX_SP` of the assembly, which reads and writes nothing
/// else. (Unwinders read it too: see [`Context::set_unwind_parent`].)
#[repr(C)]
#[derive(Debug)]
pub struct Context {
    /// The saved stack pointer: valid while the context is suspended.
    sp: *mut u8,
    /// For a fresh context, its unwind slot at the top of its stack (null for a running
    /// context): the address of the [`Context`] that unwinders walk into from the trampoline.
    slot: *mut *const Context,
}

/// Where a walk ends: a context whose "saved" frame holds zeros, so its return address is 0.
/// Fresh contexts name it until told of a parent.
struct Terminal {
    ctx: Context,
}
// SAFETY: never written; its pointers point to immutable statics.
unsafe impl Sync for Terminal {}
static TERMINAL_FRAME: [usize; 8] = [0; 8];
static TERMINAL: Terminal = Terminal {
    ctx: Context {
        sp: TERMINAL_FRAME.as_ptr() as *mut u8,
        slot: core::ptr::null_mut(),
    },
};

/// The context that ends every unwinder's walk (its frame's return address is 0): name it with
/// [`Context::set_unwind_parent`] when there is no one to walk into.
pub fn terminal() -> *const Context {
    &TERMINAL.ctx
}

const _: () = {
    assert!(core::mem::offset_of!(Context, sp) == slots::CTX_SP);
    assert!(core::mem::size_of::<Frame>() == slots::FRAME_SIZE);
    assert!(core::mem::size_of::<Frame>() % 8 == 0);
    assert!(slots::LINK_SLOT == 0 && slots::LINK_ENTRY == 8 && LINK_AREA == 16);
};

extern "C" {
    fn grove_switch(arg: usize, from: *mut Context, to: *const Context) -> usize;
    /// Not callable with `call`: reached only by the jump shims in `switch_return`.
    fn grove_switch_return(arg: usize, from: *mut Context, to: *const Context) -> usize;
    fn grove_trampoline() -> !;
}

impl Context {
    /// A context for code that is running on a stack grove did not prepare (a thread's own
    /// stack). It becomes meaningful the first time it is the `from` of a [`switch`].
    pub const fn running() -> Self {
        Context {
            sp: core::ptr::null_mut(),
            slot: core::ptr::null_mut(),
        }
    }

    /// Prepares a fresh context on the stack whose highest usable address is `top`: the first
    /// [`switch`] into it calls `entry(arg, data)` there.
    ///
    /// Uses [`FRESH_OVERHEAD`] bytes below `top`.
    ///
    /// # Safety
    ///
    /// `top` must be 16-byte aligned, and the memory below it must be a stack, writable and
    /// large enough for `entry` and everything it calls, not used by anything else while the
    /// context may run. `entry` must honour the contract of [`EntryFn`].
    pub unsafe fn fresh(top: *mut u8, entry: EntryFn, data: *mut u8) -> Self {
        debug_assert!(top as usize % 16 == 0, "stack top must be 16-byte aligned");
        // SAFETY: the caller guarantees the memory below `top` is a stack we may write, with
        // far more than FRESH_OVERHEAD bytes. The 16-byte link area holds the unwind slot, then
        // the entry function: the trampoline starts with its stack pointer at the slot (16-byte
        // aligned), its CFI reads the slot at [sp] and it finds the entry at [sp + LINK_ENTRY].
        // The frame goes just below; `top - 16 - size_of::<Frame>()` is 8-byte aligned, as
        // `Frame` needs.
        let (slot, frame) = unsafe {
            let area = top.sub(LINK_AREA);
            let slot = area.add(slots::LINK_SLOT) as *mut *const Context;
            slot.write(terminal());
            (area.add(slots::LINK_ENTRY) as *mut EntryFn).write(entry);
            let frame = area.sub(core::mem::size_of::<Frame>()) as *mut Frame;
            frame.write(Frame::fresh(data, grove_trampoline as *const () as usize));
            (slot, frame)
        };
        Context {
            sp: frame as *mut u8,
            slot,
        }
    }

    /// Names the context that unwinders (backtraces, gdb) walk into when they leave this fresh
    /// context's stack through its trampoline: they continue at `parent`'s saved frame, as it
    /// is at the time of the walk (the switch keeps `sp` fresh). Until this is called, and for
    /// [`terminal`], the walk stops there. No-op for a [`running`](Self::running) context.
    ///
    /// # Safety
    ///
    /// Whenever an unwinder may walk this context (while it runs, or a debugger looks at it),
    /// `parent` must be a live context that is not running (its `sp` names its latest
    /// suspension), whose own chain of unwind parents is valid in the same way and does not
    /// lead back here: a loop would make a walk go round for ever. Name a context that
    /// outlives this one, or name another before it dies.
    pub unsafe fn set_unwind_parent(&self, parent: *const Context) {
        if !self.slot.is_null() {
            // SAFETY: the slot is in the link area of this context's stack, writable while the
            // context exists (`fresh`'s contract).
            unsafe { self.slot.write(parent) };
        }
    }

    /// The saved stack pointer: where the context's frame is while it is suspended.
    pub fn saved_sp(&self) -> *mut u8 {
        self.sp
    }
}

/// Suspends the running code into `from` and continues `to`, which receives `arg` as the
/// result of its own `switch` call (or, if it is fresh, as its entry function's `arg`).
/// Returns, once something switches back to `from`, the `arg` of that switch.
///
/// # Safety
///
/// * `from` must be valid for writes and describe the code calling this (it becomes the saved
///   state of the caller).
/// * `to` must be a context that is suspended or fresh, not the caller's own, whose stack is
///   still alive.
/// * Whatever `to` does with `arg` is between caller and callee: grove passes it untouched.
///   Both sides must agree that the words they hand each other are initialised (use
///   [`switch_word`] for words that may not be).
#[inline(always)]
pub unsafe fn switch(arg: usize, from: *mut Context, to: *const Context) -> usize {
    // SAFETY: forwarded; the word that comes back is initialised (the caller's promise).
    unsafe { switch_word(Word::new(arg), from, to).assume_init() }
}

/// One machine word handed across a switch, which may hold uninitialised bytes: a small value
/// moved in a register, padding and all (inline asm passes `MaybeUninit` operands untouched).
pub type Word = core::mem::MaybeUninit<usize>;

/// [`switch`] for a [`Word`] that may not be initialised throughout, such as a small value
/// with padding bytes carried in the register itself: what [`crate::coroutine`] does.
///
/// # Safety
///
/// As for [`switch`], but the words need not be initialised.
#[inline(always)]
pub unsafe fn switch_word(arg: Word, from: *mut Context, to: *const Context) -> Word {
    let ret: Word;
    // SAFETY: forwarded to the caller. The call is spelled in asm rather than as an extern
    // call so that it is always a direct `call`/`bl` (an extern call in a position-independent
    // executable may go through the GOT), and so that it can say what the routine destroys:
    // everything a call may clobber (clobber_abi), and also r12-r15, which the routine leaves
    // to us (see "Who saves what" in the `.S` file). It saves rbx, rbp and rsp itself. So the
    // compiler keeps nothing in r12-r15 across the switch and, like any function that uses
    // them, this function's caller gets them back from its prologue and epilogue. asm!
    // guarantees a call-aligned stack pointer on entry.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "call {target}",
            target = sym grove_switch,
            inout("rdi") arg => ret,
            inout("rsi") from => _,
            inout("rdx") to => _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    // SAFETY: as above, with x19 and x29 saved by the routine and x20-x28 and v8-v15 (whose low
    // halves d8-d15 are the callee-saved part) declared clobbered; `bl` writes x30, declared
    // clobbered too.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
            "bl {target}",
            target = sym grove_switch,
            inout("x0") arg => ret,
            inout("x1") from => _,
            inout("x2") to => _,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("x30") _,
            clobber_abi("C"),
        );
    }
    ret
}

/// The same switch as [`switch`], for going *back* to a context that is suspended in a
/// [`switch`] call that handed control to us (directly, or through nested switch /
/// `switch_return` pairs): a greenlet returning control to the hub that resumed it.
///
/// Why a second entry point: the CPU predicts returns from a return-address stack that every
/// `call` pushes. [`switch`] is entered by `call` and leaves by an indirect jump, so its entry
/// stays on that stack; this one is entered by a jump (the shim below pushes our continuation
/// itself) and leaves by `ret`, which consumes exactly that entry and is therefore predicted.
/// Resume with [`switch`], come back with `switch_return`, and no switch mispredicts. Using the
/// "wrong" one is never incorrect: both build and consume the same frame.
///
/// # Safety
///
/// As for [`switch`].
#[inline(always)]
pub unsafe fn switch_return(arg: usize, from: *mut Context, to: *const Context) -> usize {
    // SAFETY: forwarded; the word that comes back is initialised (the caller's promise).
    unsafe { switch_return_word(Word::new(arg), from, to).assume_init() }
}

/// [`switch_return`] for a [`Word`] that may not be initialised throughout (see
/// [`switch_word`]).
///
/// # Safety
///
/// As for [`switch_word`].
#[inline(always)]
pub unsafe fn switch_return_word(arg: Word, from: *mut Context, to: *const Context) -> Word {
    let ret: Word;
    // SAFETY: the shim pushes the address of label 2 exactly where a `call` would have put its
    // return address, then jumps to grove_switch_return, which saves rbx, rbp and the stack
    // pointer like grove_switch. Whoever switches back to us pops that address and continues
    // at label 2 with the stack pointer as it was before the push, and the result in rdi (x0
    // on aarch64). Everything a call may clobber is declared clobbered (clobber_abi), and
    // r12-r15 too, as in `switch`. The asm may use the stack (no `nostack`), so the compiler
    // keeps nothing in the red zone across it.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "jmp {target}",
            "2:",
            target = sym grove_switch_return,
            inout("rdi") arg => ret,
            inout("rsi") from => _,
            inout("rdx") to => _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    // SAFETY: as for the x86_64 block, with the registers of aarch64's `switch`: `adr x30, 2f`
    // puts our continuation in the link register exactly where a `bl` would have, without
    // pushing the return-address stack.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
            "adr x30, 2f",
            "b {target}",
            "2:",
            target = sym grove_switch_return,
            inout("x0") arg => ret,
            inout("x1") from => _,
            inout("x2") to => _,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("x30") _,
            clobber_abi("C"),
        );
    }
    ret
}
