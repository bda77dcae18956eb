// =================================================================================================
// grove: the context switch for x86_64, System V ABI (Linux, the BSDs, macOS)
// =================================================================================================
//
// This file is the whole of grove's machine-level magic on x86_64: two routines and a
// trampoline, under 30 instructions. Everything else (greenlets, the hub, sockets) is ordinary
// Rust calling them. docs/switch.md draws the stacks and argues correctness at length; this file
// narrates each step.
//
// ---- The Rust-side prototypes (src/arch/mod.rs) --------------------------------------------------
//
//     #[repr(C)] pub struct Context { sp: *mut u8, slot: *mut *const Context }
//
//     extern "C" {
//         /// Saves the caller's rbx and rbp on its own stack, stores that stack pointer in
//         /// `from.sp`, loads `to.sp`, restores the rbx and rbp found there and continues
//         /// wherever `to` stopped, with `arg` in rdi (its "return value", see the exit state).
//         fn grove_switch(arg: usize, from: *mut Context, to: *const Context) -> usize;
//
//         /// The same switch, entered by a jump shim and leaving by `ret`: for switching back to
//         /// a context whose grove_switch call is waiting for us. See "Two exits" below.
//         fn grove_switch_return(arg: usize, from: *mut Context, to: *const Context) -> usize;
//
//         /// Not called by Rust: the first "return address" of a fresh context. See below.
//         fn grove_trampoline() -> !;
//     }
//
// They are not called as plain C functions, though: only from the inline asm in
// src/arch/mod.rs, which declares r12-r15 clobbered. "Who saves what" below explains why.
//
// ---- The ABI facts this relies on (System V AMD64 psABI, section 3.2) ----------------------------
//
//   * Arguments arrive in rdi, rsi, rdx (then rcx, r8, r9); the result leaves in rax.
//   * Callee-saved ("preserved across calls"): rbx, rbp, r12, r13, r14, r15 and rsp, plus the
//     control bits of MXCSR and the x87 control word. Every other integer register, all of
//     xmm0-15/ymm/zmm, the flags and the x87 stack are caller-saved: the compiler already assumes
//     a call destroys them, so a switch, which is a call, need not keep them.
//   * MXCSR and the x87 control word are not switched: Rust code never changes them (no
//     stable API does), so every context sees the same values. docs/switch.md explains when
//     that would stop being true.
//   * At a `call`, rsp is 16-byte aligned; the callee therefore starts with rsp = 8 (mod 16).
//   * The 128 bytes below rsp (the red zone) belong to the current function, but only to leaf
//     functions in practice: no caller keeps live data there across a call, and a switch is a
//     call.
//
// ---- Who saves what: the switch and its one call site ------------------------------------------
//
// Code that calls a switch must get every callee-saved register back, as from any call. The
// switch keeps that promise together with its call site, the inline asm in src/arch/mod.rs:
//
//   * rsp is the context itself (Context.sp), and where to continue is the return address the
//     `call` pushed: both are in the frame below.
//   * rbx and rbp are saved here, in the frame. (They have to be: an asm block cannot declare
//     them clobbered, since LLVM reserves rbx for itself and rbp as the frame pointer.)
//   * r12-r15 are not touched here at all. The call site declares them clobbered, as it declares
//     the caller-saved registers clobbered (clobber_abi("C")). So the compiler keeps nothing in
//     them across a switch: a value live across it is kept in rbx or rbp or in the stack frame
//     of the function making the switch, and that function, like any function that uses r12-r15,
//     saves them in its prologue and restores them in its epilogue for its own caller. After a
//     switch, r12-r15 hold whatever the other context left in them, and nothing reads that.
//
// So every callee-saved register survives every switch, as seen by the Rust code around it;
// tests/registers.rs checks exactly that, register by register, through arch::switch and
// arch::switch_return. This is corosensei's arrangement. What it buys: the frame is three words,
// not seven, and the compiler saves only what is live at a switch, once per function (a loop
// that switches pays nothing per turn). What it costs: grove_switch is not a C function any more
// (a C caller would lose its r12-r15), so only arch::switch and arch::switch_return may call it.
//
// ---- The slot table: a suspended context's stack, from its saved sp upwards ---------------------
//
// A suspended context is nothing but a stack pointer. At that address sits this frame: rbx, rbp
// and the address to continue at. src/arch/x86_64.rs declares the same frame as a #[repr(C)]
// struct and asserts, with offset_of!, that its fields sit at the offsets below: build.rs reads
// these .equ lines, so the assembly and the Rust cannot drift apart.
//
//     offset   slot        who fills it
//     ------   ---------   ------------------------------------------------------------------------
//       0      rbx         push rbx (the last push, so the lowest address)
//                          (fresh context: the entry function's data pointer)
//       8      rbp         push rbp   (fresh context: 0, which ends frame-pointer walks)
//      16      rip         the `call grove_switch` that suspended it (fresh: grove_trampoline)
//      24      (end)       the suspended code's rsp once it is running again
//
.equ FRAME_RBX,   0
.equ FRAME_RBP,   8
.equ FRAME_RIP,   16
.equ FRAME_SIZE,  24
// struct Context (the switch reads and writes only `sp`; `slot` is Rust's, see below):
.equ CTX_SP,      0
// A fresh context's link area, the 16 bytes at tramp_sp (see grove_trampoline):
.equ LINK_SLOT,   0         // the unwind slot: the address of the Context unwinders continue
                            // into (read by the trampoline's CFI; written only by Rust)
.equ LINK_ENTRY,  8         // the entry function
//
// ---- Register state on entry and on exit of grove_switch -----------------------------------------
//
//     entry (running `from`)                      exit (running `to`)
//     rdi = arg                                   rdi = arg (untouched): the value the switch
//                                                       "returns" (the call site reads it from
//                                                       rdi, not rax: one move fewer)
//     rsi = from: *mut Context                    rbx, rbp = to's values, as it saved them
//     rdx = to: *const Context                    rsp = to's rsp just after its own call returned
//     rsp = from's stack, [rsp] = return address  rip = to's return address (or the trampoline)
//     rbx, rbp = from's values                    rcx = that address (grove_switch only)
//     r12-r15 = anything (clobbered)              rsi, rdx, r12-r15 unchanged
//
// ---- Two exits, to keep the return-address predictor balanced --------------------------------------
//
// The CPU predicts every `ret` from a small return stack buffer (RSB) that each `call` pushes.
// A switch entered by `call` from one context and leaving by `ret` into another mispredicts on
// every switch: the RSB's top is the caller's own return address, not the target's (measured on
// this project's machine: 2-5x the cost of a whole round trip). So there are two routines with
// one body:
//
//   grove_switch         entered by `call`, leaves by `jmp rcx`: the RSB keeps our entry.
//   grove_switch_return  entered by a jump (the caller pushed its return address itself, so the
//                        RSB gains nothing), leaves by `ret`, which pops the entry that the
//                        target's own `call grove_switch` left: a matched pair, predicted.
//
// A resume (hub -> greenlet, parent -> coroutine) uses grove_switch; the switch back uses
// grove_switch_return. src/greenlet/ picks between them; a wrong pick costs a mispredict, never
// correctness, since both routines read and write the very same frame.
// (Noted for completeness: Intel CET's indirect-branch tracking would reject `jmp rcx`, whose
// target is not an endbr64, and its shadow stack would reject both exits. Linux enforces neither
// for programs that do not claim them, and our object claims neither.)
//
// =================================================================================================

#if defined(GROVE_MACHO) || defined(__APPLE__)
#  define SYM(name) _##name
#  define FUNC_BEGIN(name) .globl SYM(name) ; .private_extern SYM(name) ; .p2align 4 ; SYM(name):
#  define FUNC_END(name)
#  define LOCAL(label) L##label:
#  define LREF(label) L##label
#else
#  define SYM(name) name
#  define FUNC_BEGIN(name) .globl name ; .hidden name ; .type name, @function ; .p2align 4 ; name:
#  define FUNC_END(name) .size name, . - name
#  define LOCAL(label) .L##label:
#  define LREF(label) .L##label
#endif

    .intel_syntax noprefix
    .text

// -------------------------------------------------------------------------------------------------
// The body both switches share: steps 1 to 4. A macro, so each routine below reads top to bottom.
// Its arguments are the labels of its six instructions (a..f), named by each routine that
// uses it (sw_1a.., sr_1a..), so that every instruction has a label, in the macro too.
// -------------------------------------------------------------------------------------------------
.macro SAVE_SWAP_RESTORE a, b, c, d, e, f
    // CFI: on entry the Canonical Frame Address is rsp+8 and the return address sits at CFA-8;
    // that is the default rule, so nothing is said until the first push.

    // ---- 1. Save `from`: push rbx and rbp onto its own stack (r12-r15: see "Who saves what"). --
    // After these two pushes [rsp] holds the slot table above, the return address (pushed by the
    // caller's `call`, or by the jump shim) at FRAME_RIP.
\a:  push rbp                                  // FRAME_RBP
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
\b:  push rbx                                  // FRAME_RBX
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    // Now CFA = rsp + FRAME_SIZE. This CFI state stays right through step 3: the target's stack
    // holds a frame of exactly the same shape, so an unwinder stopping on any instruction sees a
    // well-formed frame whichever stack rsp points into.

    // ---- 2. Publish where `from` stopped. ---------------------------------------------------------
\c:  mov [rsi + CTX_SP], rsp                   // from.sp = rsp: `from` is now resumable, and an
                                              // unwinder walking out of a context whose unwind
                                              // slot names `from` finds its frames here

    // ---- 3. Become `to`: one instruction swaps the whole world. --------------------------------
\d:  mov rsp, [rdx + CTX_SP]                   // rsp = to.sp, pointing at to's slot table

    // ---- 4. Restore `to`'s rbx and rbp, in the reverse order of step 1. -----------------------
\e:  pop rbx                                   // to's rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
\f:  pop rbp                                   // to's rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    // rsp now points at to's FRAME_RIP slot: where `to` continues.
.endm

// -------------------------------------------------------------------------------------------------
// grove_switch(arg: usize, from: *mut Context, to: *const Context) -> usize
//
// Entered by an ordinary `call` (which pushes our return address on the CPU's return stack
// buffer, the RSB); leaves by an indirect `jmp`, which leaves that entry in place. The entry is
// consumed later by grove_switch_return's `ret`, when `to` (or whoever it hands over to) switches
// back to us: call and ret pair up, and both are predicted.
// -------------------------------------------------------------------------------------------------
FUNC_BEGIN(grove_switch)
    .cfi_startproc
LOCAL(sw_0)   endbr64                         // landing pad for indirect calls (CET IBT)
LOCAL(sw_1)   SAVE_SWAP_RESTORE LREF(sw_1a), LREF(sw_1b), LREF(sw_1c), LREF(sw_1d), LREF(sw_1e), LREF(sw_1f)
                                              // steps 1-4: 2 pushes, 1 store, 1 load, 2 pops
    // ---- 5. Continue `to` where it stopped, handing it `arg` as its switch's result. ---------
LOCAL(sw_2)   pop rcx                         // rcx = to's return address; rsp is now exactly
    .cfi_adjust_cfa_offset -8                 // what it was in `to` before it switched away
    .cfi_register rip, rcx
LOCAL(sw_3)   jmp rcx                         // not `ret`: the RSB's top is *our* caller. `arg`
                                              // is in rdi, where to's call site reads it
    .cfi_endproc
FUNC_END(grove_switch)

// -------------------------------------------------------------------------------------------------
// grove_switch_return(arg: usize, from: *mut Context, to: *const Context) -> usize
//
// The same switch, for going back to a context that is suspended in a grove_switch *call* that
// switched (directly or through nested pairs) to us: the hub's greenlet switching back to the
// hub, a coroutine yielding to its resumer. It is not called: src/arch/mod.rs reaches it with a
// three-instruction shim (`lea rax, [rip + 2f]; push rax; jmp grove_switch_return`), so the RSB
// gains nothing on the way in, and its top is still the entry of `to`'s `call grove_switch`.
// Our `ret` pops exactly that entry and jumps exactly there: predicted.
//
// Correctness never depends on which of the two routines is used: both build and consume the
// same frame. Only the branch predictor notices.
// -------------------------------------------------------------------------------------------------
FUNC_BEGIN(grove_switch_return)
    .cfi_startproc
LOCAL(sr_0)   endbr64
LOCAL(sr_1)   SAVE_SWAP_RESTORE LREF(sr_1a), LREF(sr_1b), LREF(sr_1c), LREF(sr_1d), LREF(sr_1e), LREF(sr_1f)
LOCAL(sr_2)   ret                             // pops to's FRAME_RIP: the RSB predicted it; `arg`
                                              // is in rdi
    .cfi_endproc
FUNC_END(grove_switch_return)

// -------------------------------------------------------------------------------------------------
// grove_trampoline: where a fresh context starts
// -------------------------------------------------------------------------------------------------
//
// src/arch/mod.rs prepares a fresh stack so that it looks exactly like a suspended context:
//
//     tramp_sp + 16 ... (the greenlet's header, Rust's business)
//     tramp_sp + 8  LINK_ENTRY: the entry function
//     tramp_sp      LINK_SLOT: the unwind slot, the address of the Context to walk into (Rust
//                   sets it: a greenlet's parent, a coroutine's resumer; never the switch)
//     tramp_sp - 8  FRAME_RIP = grove_trampoline            <- the first switch "returns" here
//     tramp_sp - 16 FRAME_RBP = 0
//     tramp_sp - 24 FRAME_RBX = the entry's data pointer    <- Context.sp
//
// tramp_sp is 16-byte aligned, so the entry function starts with rsp = 8 (mod 16), as after a
// `call` made with an aligned rsp, as the ABI wants.
//
// Register state on entry (via grove_switch's `jmp rcx`):
//     rsp = tramp_sp; rdi = arg of the first switch; rbx = data; rbp = 0.
//
// It calls the entry function, but not with `call`: a `call` would push the return stack buffer
// with an entry that no `ret` ever consumes (the entry function never returns), and the first
// switch back out of this context, a `ret` in grove_switch_return, would pop that entry instead
// of the one its resumer's `call grove_switch` left: a mispredicted return in every greenlet's
// life. So the trampoline pushes the return address itself and jumps, which leaves the RSB as
// the resumer left it. To the entry function (and to unwinders) it is the same: it starts with
// rsp = tramp_sp - 8 and the return address, the `ud2` below, at [rsp].
//
// The CFI of this frame is what makes backtraces cross stacks. The Canonical Frame Address is
// computed, not fixed: the unwind slot holds the address of a Context P (its `sp` at offset 0),
// and CFA = [[tramp_sp]] + FRAME_SIZE, i.e. P's saved stack pointer as it will be once P's
// switch returns. Relative to that CFA P's rbx, rbp and return address sit where its pushes put
// them, so an unwinder (libgcc's, std::backtrace's, gdb's) steps from here straight into P's
// suspended code. P is never running while we are (one context runs at a time), so P.sp is
// always the sp of P's latest suspension: the switch keeps it fresh with the store it makes
// anyway (step 2), and nothing else is written. Rust names P so that the chain of slots never
// loops: a greenlet's parent (parents form a tree, checked by set_parent), a coroutine's
// resumer (resumes nest); a context with nobody to name points at a terminal Context whose frame
// holds return address 0, where every walk stops. (The resumer's r12-r15 are not
// described: they are dead at its switch, clobbered, and its own CFI says where it saved its
// caller's.) The frame is marked as a signal frame: gdb then accepts that the next frame's stack
// lies at a lower address, as a sigaltstack frame may.
FUNC_BEGIN(grove_trampoline)
    .cfi_startproc
    .cfi_signal_frame
    // DW_CFA_def_cfa_expression, 6 bytes: DW_OP_breg7 (rsp) 0; DW_OP_deref (the slot: &P);
    // DW_OP_deref (P.sp); DW_OP_plus_uconst 24
    .cfi_escape 0x0f, 0x06, 0x77, 0x00, 0x06, 0x06, 0x23, 0x18
    .cfi_offset rip, -8
    .cfi_offset rbp, -16
    .cfi_offset rbx, -24
LOCAL(tr_0)   endbr64                         // reached by an indirect jump
LOCAL(tr_1)   mov rsi, rbx                    // second argument: the data pointer
                                              // (first argument, rdi, is already `arg`)
LOCAL(tr_2)   mov rcx, [rsp + LINK_ENTRY]     // entry(arg, data), a `call` in two halves:
LOCAL(tr_3)   lea rax, [rip + LREF(tr_ret)]
LOCAL(tr_4)   push rax                        // the return address, where `call` puts it...
    // DW_CFA_def_cfa_expression: DW_OP_breg7 (rsp) 8; DW_OP_deref; DW_OP_deref; plus 24
    .cfi_escape 0x0f, 0x06, 0x77, 0x08, 0x06, 0x06, 0x23, 0x18  // (the slot is at rsp + 8 now)
LOCAL(tr_5)   jmp rcx                         // ...and a jump, which pushes no RSB entry. The
                                              // entry never returns: it ends by switching away
                                              // for the last time.
    // From here on the CFI describes this frame as seen from inside the entry function, the
    // way an unwinder rebuilds it (rsp = the entry's CFA = tramp_sp, as if `call` had
    // returned): it looks up the rule at the return address minus one, which is the `int3`.
    .cfi_escape 0x0f, 0x06, 0x77, 0x00, 0x06, 0x06, 0x23, 0x18
LOCAL(tr_6)   int3                            // never executed
LOCAL(tr_ret) ud2                             // unreachable: trap loudly if the entry returned
    .cfi_endproc
FUNC_END(grove_trampoline)

#if !defined(GROVE_MACHO) && !defined(__APPLE__)
// This object needs no executable stack: without this note the linker would assume it does.
    .section .note.GNU-stack, "", @progbits
#endif
