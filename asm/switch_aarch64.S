// =================================================================================================
// grove: the context switch for aarch64, AAPCS64 (Linux, the BSDs, macOS)
// =================================================================================================
//
// The same two routines as asm/switch_x86_64.S, which carries the full narration; read it first.
// This file notes only what differs on aarch64.
//
// ---- The Rust-side prototypes (src/arch/mod.rs): identical ----------------------------------------
//
//     #[repr(C)] pub struct Context { sp: *mut u8, slot: *mut *const Context }
//     extern "C" fn grove_switch(arg: usize, from: *mut Context, to: *const Context) -> usize;
//     extern "C" fn grove_switch_return(arg: usize, from: *mut Context, to: *const Context) -> usize;
//     extern "C" fn grove_trampoline() -> !;
//
// As on x86_64 they are called only from the inline asm in src/arch/mod.rs, which declares
// x20-x28 and v8-v15 clobbered (see "Who saves what" below).
//
// ---- The ABI facts that differ (AAPCS64, "Procedure Call Standard for the Arm 64-bit Arch.") ----
//
//   * Arguments in x0, x1, x2; the result in x0. So `arg` arrives in x0 and is already where
//     `to` expects its result: no move needed.
//   * Callee-saved: x19-x28, the frame pointer x29, sp, and the low 64 bits of v8-v15, i.e.
//     d8-d15. The link register x30 holds the return address: a `bl` writes it, nothing is
//     pushed, so we save it like any other register.
//   * x18 is the platform register (reserved on macOS and Windows): never touched here.
//   * FPCR (rounding mode, flush-to-zero) is not switched, for the reason given in the x86_64
//     file for MXCSR.
//   * sp must be 16-byte aligned at every instruction that uses it, not only at calls: the frame
//     below is 32 bytes, a multiple of 16, and fresh stacks are aligned by src/arch/mod.rs.
//   * There is no red zone on Linux; macOS has a 128-byte one. The argument is the same as on
//     x86_64: a switch is a call, and no caller keeps live data below sp across a call.
//
// ---- Who saves what: as on x86_64 ------------------------------------------------------------------
//
//   * sp is the context (Context.sp); x30, the return address, is where to continue.
//   * x19 and x29 are saved here: an asm block cannot declare them clobbered (LLVM reserves x19
//     as a base pointer and x29 as the frame pointer).
//   * x20-x28 and d8-d15 are not touched here: the call site declares them (and the whole of
//     v8-v15) clobbered, so the compiler keeps nothing live in them across a switch, and the
//     function that contains the switch saves and restores them for its caller, as the ABI asks.
//
// ---- The slot table: a suspended context's stack, from its saved sp upwards ---------------------
//
//     offset  slot
//       0     x29 (fresh: 0)
//       8     x30 = where to continue (fresh: grove_trampoline)
//      16     x19 (fresh: the entry function's data pointer)
//      24     (unused: keeps sp 16-byte aligned; fresh: 0)
//      32     (end: the resumed code's sp)
//
.equ FRAME_X29,   0
.equ FRAME_X30,   8
.equ FRAME_X19,   16
.equ FRAME_SIZE,  32
.equ CTX_SP,      0
// A fresh context's link area, the 16 bytes at tramp_sp (see grove_trampoline):
.equ LINK_SLOT,   0         // the unwind slot: the address of the Context to walk into
.equ LINK_ENTRY,  8         // the entry function
//
// ---- Register state on entry and exit of grove_switch: as on x86_64, with ----------------------
//     entry: x0 = arg, x1 = from, x2 = to, x30 = return address, sp = from's stack
//     exit:  x0 = arg, x19, x29, sp = to's, x30 = to's return address (also in x16);
//            x20-x28 and d8-d15 unchanged (whatever `from` had in them)
//
// ---- How it leaves: two exits, as on x86_64 ---------------------------------------------------------
// grove_switch is entered by `bl` and leaves by `br x16`, an indirect branch that leaves the
// return-address stack alone; grove_switch_return is entered by a plain `b` (the caller set x30
// itself) and leaves by `ret`, which pops the entry of the target's `bl grove_switch`. See
// "Two exits" in the x86_64 file. The target of that branch is a
// return site, not a BTI landing pad; that is only enforced in pages of binaries that claim
// BTI in their GNU property note, which this object does not, so the linker leaves the program
// unmarked. Our own entry points still begin with landing pads (`bti c`/`bti j`, spelled as
// hints so that any assembler accepts them).
//
// =================================================================================================

#if defined(GROVE_MACHO) || defined(__APPLE__)
#  define SYM(name) _##name
#  define FUNC_BEGIN(name) .globl SYM(name) %% .private_extern SYM(name) %% .p2align 4 %% SYM(name):
#  define FUNC_END(name)
#  define LOCAL(label) L##label:
#  define LREF(label) L##label
#else
#  define SYM(name) name
#  define FUNC_BEGIN(name) .globl name ; .hidden name ; .type name, %function ; .p2align 4 ; name:
#  define FUNC_END(name) .size name, . - name
#  define LOCAL(label) .L##label:
#  define LREF(label) .L##label
#endif

    .text

// -------------------------------------------------------------------------------------------------
// The body both switches share (steps 1 to 4), as in the x86_64 file; its arguments label its
// ten instructions (a..j).
// -------------------------------------------------------------------------------------------------
.macro SAVE_SWAP_RESTORE a, b, c, d, e, f, g, h, i, j
    // ---- 1. Save `from`: one 32-byte frame (no push on aarch64). ----------------------------------
\a: sub sp, sp, #FRAME_SIZE        // room for the frame
    .cfi_def_cfa_offset FRAME_SIZE
\b: stp x29, x30, [sp, #FRAME_X29]  // x30: where `from` continues
\c: str x19, [sp, #FRAME_X19]       // the one callee-saved register the asm keeps
    .cfi_offset x29, -32
    .cfi_offset x30, -24
    .cfi_offset x19, -16

    // ---- 2. Publish where `from` stopped (sp cannot be stored directly: go through x9). --------
\d: mov x9, sp                     // sp, into a register that can be stored
\e: str x9, [x1, #CTX_SP]           // from.sp = sp (also what unwinders read, via slots)

    // ---- 3. Become `to`. -------------------------------------------------------------------------
\f: ldr x9, [x2, #CTX_SP]           // x9 = to.sp
\g: mov sp, x9                      // sp = to.sp: we are `to` now

    // ---- 4. Restore `to`'s registers. ----------------------------------------------------------
\h: ldp x29, x30, [sp, #FRAME_X29]  // to's frame pointer and continuation
\i: ldr x19, [sp, #FRAME_X19]       // to's x19
\j: add sp, sp, #FRAME_SIZE         // pop the frame
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    .cfi_restore x19
.endm

// -------------------------------------------------------------------------------------------------
// grove_switch(arg: usize, from: *mut Context, to: *const Context) -> usize
// Entered by `bl`, which pushes the return-address stack; leaves by `br`, which does not pop it.
// -------------------------------------------------------------------------------------------------
FUNC_BEGIN(grove_switch)
    .cfi_startproc
LOCAL(sw_0)   hint #34                        // bti c: landing pad for indirect calls
LOCAL(sw_1)   SAVE_SWAP_RESTORE LREF(sw_1a), LREF(sw_1b), LREF(sw_1c), LREF(sw_1d), LREF(sw_1e), LREF(sw_1f), LREF(sw_1g), LREF(sw_1h), LREF(sw_1i), LREF(sw_1j)
    // ---- 5. Continue `to`; x0 still holds `arg`, its result. -----------------------------------
LOCAL(sw_2)   mov x16, x30                    // x16 (IP0): the register made for such branches
LOCAL(sw_3)   br x16                          // not `ret`: see "How it leaves"
    .cfi_endproc
FUNC_END(grove_switch)

// -------------------------------------------------------------------------------------------------
// grove_switch_return: the same, reached by `adr x30, 2f; b grove_switch_return` (no push on the
// return-address stack) and leaving by `ret`, which pops the entry of to's own `bl grove_switch`.
// -------------------------------------------------------------------------------------------------
FUNC_BEGIN(grove_switch_return)
    .cfi_startproc
LOCAL(sr_0)   hint #34                        // bti c
LOCAL(sr_1)   SAVE_SWAP_RESTORE LREF(sr_1a), LREF(sr_1b), LREF(sr_1c), LREF(sr_1d), LREF(sr_1e), LREF(sr_1f), LREF(sr_1g), LREF(sr_1h), LREF(sr_1i), LREF(sr_1j)
LOCAL(sr_2)   ret                             // x30 = to's continuation; predicted
    .cfi_endproc
FUNC_END(grove_switch_return)

// -------------------------------------------------------------------------------------------------
// grove_trampoline: where a fresh context starts
// -------------------------------------------------------------------------------------------------
// The fresh stack (src/arch/mod.rs): the link area at tramp_sp (16-byte aligned; the unwind
// slot, then the entry function), below it a 32-byte frame with x29 = 0, x30 = grove_trampoline,
// x19 = data. On entry sp = tramp_sp and x0 = arg. CFA = [[sp]] + 32 (the slot holds the address
// of the Context to walk into, whose `sp` comes first: see the x86_64 file); registers at the CFA
// offsets the slot table gives them. As on x86_64, the entry is not called with `blr`, which
// would push the return-address stack with an entry no `ret` consumes (see the x86_64 file):
// `adr x30` sets the return address and `br` branches. Nothing moves sp, so the CFI stays the
// same throughout.
FUNC_BEGIN(grove_trampoline)
    .cfi_startproc
    .cfi_signal_frame
    // DW_CFA_def_cfa_expression, 6 bytes: DW_OP_breg31 (sp) 0; DW_OP_deref; DW_OP_deref;
    // DW_OP_plus_uconst 32
    .cfi_escape 0x0f, 0x06, 0x8f, 0x00, 0x06, 0x06, 0x23, 0x20
    .cfi_offset x29, -32
    .cfi_offset x30, -24
    .cfi_offset x19, -16
LOCAL(tr_0)   hint #36                        // bti j: reached by `br`
LOCAL(tr_1)   mov x1, x19                     // second argument: data (x0 is already arg)
LOCAL(tr_2)   ldr x16, [sp, #LINK_ENTRY]      // entry(arg, data), a `blr` in two halves:
LOCAL(tr_3)   adr x30, LREF(tr_ret)           // the return address, as `blr` sets it...
LOCAL(tr_4)   br x16                          // ...and a branch that pushes nothing (via x16,
                                              // which a `bti c` landing pad accepts)
LOCAL(tr_ret) brk #1                          // unreachable: the entry never returns
    .cfi_endproc
FUNC_END(grove_trampoline)

#if !defined(GROVE_MACHO) && !defined(__APPLE__)
    .section .note.GNU-stack, "", %progbits
#endif
