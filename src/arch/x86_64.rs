//! x86_64 System V: the saved frame, field for field as in the slot table of
//! `asm/switch_x86_64.S`.
//!
//! ```text
//!   offset  field   fresh context
//!      0    r15     0
//!      8    r14     0
//!     16    r13     0
//!     24    r12     entry function
//!     32    rbx     entry data
//!     40    rbp     0 (ends frame-pointer walks)
//!     48    rip     grove_trampoline
//!     56    end     (the trampoline runs with rsp here: the link slot)
//! ```

use super::{slots, EntryFn};
use core::mem::offset_of;

/// The frame a suspended context leaves at its saved stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Callee-saved r15.
    pub r15: u64,
    /// Callee-saved r14.
    pub r14: u64,
    /// Callee-saved r13.
    pub r13: u64,
    /// Callee-saved r12; in a fresh frame, the entry function.
    pub r12: u64,
    /// Callee-saved rbx; in a fresh frame, the entry function's data pointer.
    pub rbx: u64,
    /// Callee-saved rbp (the frame pointer); 0 in a fresh frame.
    pub rbp: u64,
    /// Where the context continues: the return address of its `grove_switch` call, or
    /// `grove_trampoline` in a fresh frame.
    pub rip: u64,
}

const _: () = {
    assert!(offset_of!(Frame, r15) == slots::FRAME_R15);
    assert!(offset_of!(Frame, r14) == slots::FRAME_R14);
    assert!(offset_of!(Frame, r13) == slots::FRAME_R13);
    assert!(offset_of!(Frame, r12) == slots::FRAME_R12);
    assert!(offset_of!(Frame, rbx) == slots::FRAME_RBX);
    assert!(offset_of!(Frame, rbp) == slots::FRAME_RBP);
    assert!(offset_of!(Frame, rip) == slots::FRAME_RIP);
    assert!(core::mem::size_of::<Frame>() == slots::FRAME_SIZE);
};

impl Frame {
    pub(super) fn fresh(entry: EntryFn, data: *mut u8, trampoline: usize) -> Frame {
        Frame {
            r12: entry as usize as u64,
            rbx: data as u64,
            rip: trampoline as u64,
            ..Frame::default()
        }
    }

    /// The continuation address saved in this frame.
    pub fn resume_address(&self) -> usize {
        self.rip as usize
    }
}
