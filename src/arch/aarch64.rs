//! aarch64 AAPCS64: the saved frame, field for field as in the slot table of
//! `asm/switch_aarch64.S`.
//!
//! ```text
//!   offset  field      fresh context
//!      0    x29 (fp)   0
//!      8    x30 (lr)   grove_trampoline
//!     16    x19        entry data
//!     24    (unused)   0
//!     32    end        (the trampoline runs with sp here: the link area)
//! ```
//!
//! x20-x28 and d8-d15 have no slots: the switch's call site declares them clobbered, so the
//! code around a switch saves them itself, and only where they hold something (see "Who saves
//! what" in the `.S` files).

use super::slots;
use core::mem::offset_of;

/// The frame a suspended context leaves at its saved stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// The frame pointer x29; 0 in a fresh frame.
    pub x29: u64,
    /// The link register x30: where the context continues (`grove_trampoline` when fresh).
    pub x30: u64,
    /// Callee-saved x19; in a fresh frame, the entry function's data pointer.
    pub x19: u64,
    /// Unused: keeps the frame a multiple of 16 bytes, as sp must stay aligned.
    pub pad: u64,
}

const _: () = {
    assert!(offset_of!(Frame, x29) == slots::FRAME_X29);
    assert!(offset_of!(Frame, x30) == slots::FRAME_X30);
    assert!(offset_of!(Frame, x19) == slots::FRAME_X19);
    assert!(core::mem::size_of::<Frame>() == slots::FRAME_SIZE);
    assert!(slots::FRAME_SIZE % 16 == 0);
};

impl Frame {
    pub(super) fn fresh(data: *mut u8, trampoline: usize) -> Frame {
        Frame {
            x19: data as u64,
            x30: trampoline as u64,
            ..Frame::default()
        }
    }

    /// The continuation address saved in this frame.
    pub fn resume_address(&self) -> usize {
        self.x30 as usize
    }
}
