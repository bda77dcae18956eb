//! Register preservation, checked at the instruction level: each side of a switch fills every
//! callee-saved register (x86_64: rbx, rbp, r12-r15; aarch64: x19-x29 and d8-d15) with its own
//! pattern, switches to the other side, which fills them with *its* patterns and switches back,
//! and then compares every register with what it put there. Thousands of round trips, with
//! patterns that change every time, and the value passed through the switch checked as well.
//!
//! The harness calls the switch the way Rust code does, through `arch::switch` (one side) and
//! `arch::switch_return` (the other), compiled into an ordinary `extern "C"` function. That is
//! the property that matters: the assembly saves only rbx and rbp (x19, x29) and the call site
//! declares the other callee-saved registers clobbered, so they survive because the function
//! containing the switch saves them in its prologue and restores them in its epilogue, as the
//! ABI asks of any function. Both halves of that arrangement are under test here.

use grove::arch::{self, Context};
use grove::stack::{MmapStack, Stack};

/// Fills the callee-saved registers from `seed`, calls `switch(arg, from, to)` (one of the
/// wrappers below), and counts the registers that do not hold their pattern afterwards.
/// Returns (switch result, mismatches).
///
/// # Safety
///
/// As for `arch::switch`.
#[cfg(target_arch = "x86_64")]
unsafe fn switch_checked(
    switch: SwitchFn,
    arg: usize,
    from: *mut Context,
    to: *const Context,
    seed: u64,
) -> (usize, u64) {
    let ret: usize;
    let bad: u64;
    // SAFETY: the asm saves rbx and rbp (which Rust cannot name as operands) on the stack and
    // restores them; r12-r15 and every caller-saved register are declared clobbered; the call
    // is made with a 16-byte aligned stack and the original rsp restored from the stack.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "mov rax, rsp",
            "and rsp, -16",
            "push rax",           // the original rsp
            "push rcx",           // the seed; rsp is 16-byte aligned again
            "lea rbx, [rcx + 1]",
            "lea rbp, [rcx + 2]",
            "lea r12, [rcx + 3]",
            "lea r13, [rcx + 4]",
            "lea r14, [rcx + 5]",
            "lea r15, [rcx + 6]",
            "call r11",
            "pop rcx",
            "mov r8, rax",
            "xor r9d, r9d",
            "lea r10, [rcx + 1]", "cmp rbx, r10", "setne al", "movzx eax, al", "add r9, rax",
            "lea r10, [rcx + 2]", "cmp rbp, r10", "setne al", "movzx eax, al", "add r9, rax",
            "lea r10, [rcx + 3]", "cmp r12, r10", "setne al", "movzx eax, al", "add r9, rax",
            "lea r10, [rcx + 4]", "cmp r13, r10", "setne al", "movzx eax, al", "add r9, rax",
            "lea r10, [rcx + 5]", "cmp r14, r10", "setne al", "movzx eax, al", "add r9, rax",
            "lea r10, [rcx + 6]", "cmp r15, r10", "setne al", "movzx eax, al", "add r9, rax",
            "pop rsp",
            "pop rbx",
            "pop rbp",
            inout("r11") switch => _,
            inout("rdi") arg => _,
            inout("rsi") from => _,
            inout("rdx") to => _,
            inout("rcx") seed => _,
            out("r8") ret,
            out("r9") bad,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    (ret, bad)
}

#[cfg(target_arch = "aarch64")]
unsafe fn switch_checked(
    switch: SwitchFn,
    arg: usize,
    from: *mut Context,
    to: *const Context,
    seed: u64,
) -> (usize, u64) {
    let ret: usize;
    let bad: u64;
    // SAFETY: x19 and x29 (not nameable as operands) and x30 are saved on the stack and
    // restored; x20-x28, d8-d15 and the caller-saved registers are declared clobbered; sp stays
    // 16-byte aligned.
    unsafe {
        core::arch::asm!(
            "stp x29, x30, [sp, #-16]!",
            "stp x19, x3, [sp, #-16]!",     // x19, and the seed
            "add x19, x3, #1", "add x20, x3, #2", "add x21, x3, #3", "add x22, x3, #4",
            "add x23, x3, #5", "add x24, x3, #6", "add x25, x3, #7", "add x26, x3, #8",
            "add x27, x3, #9", "add x28, x3, #10", "add x29, x3, #11",
            "add x9, x3, #12", "fmov d8, x9",  "add x9, x3, #13", "fmov d9, x9",
            "add x9, x3, #14", "fmov d10, x9", "add x9, x3, #15", "fmov d11, x9",
            "add x9, x3, #16", "fmov d12, x9", "add x9, x3, #17", "fmov d13, x9",
            "add x9, x3, #18", "fmov d14, x9", "add x9, x3, #19", "fmov d15, x9",
            "blr x16",
            "ldr x3, [sp, #8]",
            "mov x10, #0",
            "add x11, x3, #1",  "cmp x19, x11", "cinc x10, x10, ne",
            "add x11, x3, #2",  "cmp x20, x11", "cinc x10, x10, ne",
            "add x11, x3, #3",  "cmp x21, x11", "cinc x10, x10, ne",
            "add x11, x3, #4",  "cmp x22, x11", "cinc x10, x10, ne",
            "add x11, x3, #5",  "cmp x23, x11", "cinc x10, x10, ne",
            "add x11, x3, #6",  "cmp x24, x11", "cinc x10, x10, ne",
            "add x11, x3, #7",  "cmp x25, x11", "cinc x10, x10, ne",
            "add x11, x3, #8",  "cmp x26, x11", "cinc x10, x10, ne",
            "add x11, x3, #9",  "cmp x27, x11", "cinc x10, x10, ne",
            "add x11, x3, #10", "cmp x28, x11", "cinc x10, x10, ne",
            "add x11, x3, #11", "cmp x29, x11", "cinc x10, x10, ne",
            "add x11, x3, #12", "fmov x12, d8",  "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #13", "fmov x12, d9",  "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #14", "fmov x12, d10", "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #15", "fmov x12, d11", "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #16", "fmov x12, d12", "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #17", "fmov x12, d13", "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #18", "fmov x12, d14", "cmp x12, x11", "cinc x10, x10, ne",
            "add x11, x3, #19", "fmov x12, d15", "cmp x12, x11", "cinc x10, x10, ne",
            "ldp x19, x3, [sp], #16",
            "ldp x29, x30, [sp], #16",
            inout("x16") switch => _,
            inout("x0") arg => ret,
            inout("x1") from => _,
            inout("x2") to => _,
            inout("x3") seed => _,
            out("x10") bad,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            clobber_abi("C"),
        );
    }
    (ret, bad)
}

/// A switch as Rust code makes it, callable from the harness's asm.
type SwitchFn = extern "C" fn(usize, *mut Context, *const Context) -> usize;

/// `arch::switch` in a function of its own: the code under test is the switch and the
/// prologue and epilogue the compiler gives this function because the switch clobbers r12-r15
/// (x20-x28, d8-d15). Called through a pointer, so it is never inlined into the harness.
extern "C" fn switch_for_tests(arg: usize, from: *mut Context, to: *const Context) -> usize {
    // SAFETY: called only from `switch_checked`, whose callers uphold `arch::switch`'s contract.
    unsafe { arch::switch(arg, from, to) }
}

/// The same for `arch::switch_return`, the other entry of the switch.
extern "C" fn switch_return_for_tests(arg: usize, from: *mut Context, to: *const Context) -> usize {
    // SAFETY: as for `switch_for_tests`; the other side is suspended in a switch call.
    unsafe { arch::switch_return(arg, from, to) }
}

struct Shared {
    main: Context,
    co: Context,
    rounds: u64,
    co_bad: u64,
    co_seen: u64,
}

unsafe extern "C" fn co_body(mut arg: usize, data: *mut u8) -> ! {
    let s = data as *mut Shared;
    let mut i = 0u64;
    loop {
        // SAFETY: `s` outlives every switch into this context (the test keeps it alive).
        unsafe {
            if arg as u64 != i * 3 + 1 {
                (*s).co_bad += 1000;
            }
            // Back to main, whose switch call waits for us: the `ret` exit.
            let (next, bad) = switch_checked(
                switch_return_for_tests,
                arg + 1,
                &mut (*s).co,
                &(*s).main,
                0xC0C0_0000_0000 + (i << 20),
            );
            (*s).co_bad += bad;
            (*s).co_seen += 1;
            arg = next;
        }
        i += 1;
    }
}

#[test]
fn callee_saved_registers_survive_many_switches() {
    let stack = MmapStack::new(64 * 1024).expect("stack");
    let mut s = Box::new(Shared {
        main: Context::running(),
        // A placeholder, replaced below before any switch.
        co: Context::running(),
        rounds: 20_000,
        co_bad: 0,
        co_seen: 0,
    });
    let sp: *mut Shared = &mut *s;
    // SAFETY: a fresh stack nobody else uses; co_body never returns.
    unsafe { (*sp).co = Context::fresh(stack.top(), co_body, sp as *mut u8) };
    let mut main_bad = 0;
    let rounds = unsafe { (*sp).rounds };
    for i in 0..rounds {
        // SAFETY: co is fresh or suspended in co_body; its stack is alive.
        let (back, bad) = unsafe {
            switch_checked(
                switch_for_tests,
                (i * 3 + 1) as usize,
                &mut (*sp).main,
                &(*sp).co,
                0x5EED_0000_0000 + (i << 24),
            )
        };
        main_bad += bad;
        assert_eq!(
            back as u64,
            i * 3 + 2,
            "the value handed back through the switch"
        );
    }
    assert_eq!(
        main_bad, 0,
        "registers of the main side changed across a switch"
    );
    // SAFETY: the context is suspended; reading plain fields of the shared block.
    let (co_bad, co_seen) = unsafe { ((*sp).co_bad, (*sp).co_seen) };
    assert_eq!(
        co_seen,
        rounds - 1,
        "every switch back resumed the other side"
    );
    assert_eq!(
        co_bad, 0,
        "registers of the greenlet side changed across a switch"
    );
}
