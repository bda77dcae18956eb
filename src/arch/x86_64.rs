//! x86_64 System V: the saved frame, field for field as in the slot table of
//! `asm/switch_x86_64.S`.
//!
//! ```text
//!   offset  field   fresh context
//!      0    rbx     entry data
//!      8    rbp     0 (ends frame-pointer walks)
//!     16    rip     grove_trampoline
//!     24    end     (the trampoline runs with rsp here: the link area)
//! ```
//!
//! r12-r15 have no slots: the switch's call site declares them clobbered, so the code around a
//! switch saves them itself, and only where they hold something (see "Who saves what" in the
//! `.S` file).

use super::slots;
use core::mem::offset_of;

/// The frame a suspended context leaves at its saved stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Callee-saved rbx; in a fresh frame, the entry function's data pointer.
    pub rbx: u64,
    /// Callee-saved rbp (the frame pointer); 0 in a fresh frame.
    pub rbp: u64,
    /// Where the context continues: the return address of its `grove_switch` call, or
    /// `grove_trampoline` in a fresh frame.
    pub rip: u64,
}

const _: () = {
    assert!(offset_of!(Frame, rbx) == slots::FRAME_RBX);
    assert!(offset_of!(Frame, rbp) == slots::FRAME_RBP);
    assert!(offset_of!(Frame, rip) == slots::FRAME_RIP);
    assert!(core::mem::size_of::<Frame>() == slots::FRAME_SIZE);
};

impl Frame {
    pub(super) fn fresh(data: *mut u8, trampoline: usize) -> Frame {
        Frame {
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
