//! aarch64 AAPCS64: the saved frame, field for field as in the slot table of
//! `asm/switch_aarch64.S`.
//!
//! ```text
//!   offset  field      fresh context          offset  field
//!      0    x19        entry function            96   d8
//!      8    x20        entry data               104   d9
//!   16-72   x21-x28    0                        ...
//!     80    x29 (fp)   0                        152   d15
//!     88    x30 (lr)   grove_trampoline         160   end (the link slot)
//! ```

use super::{slots, EntryFn};
use core::mem::offset_of;

/// The frame a suspended context leaves at its saved stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Callee-saved x19-x28; in a fresh frame x19 is the entry function and x20 its data.
    pub x19_x28: [u64; 10],
    /// The frame pointer x29; 0 in a fresh frame.
    pub x29: u64,
    /// The link register x30: where the context continues (`grove_trampoline` when fresh).
    pub x30: u64,
    /// The low halves of v8-v15.
    pub d8_d15: [u64; 8],
}

const _: () = {
    assert!(offset_of!(Frame, x19_x28) == slots::FRAME_X19);
    assert!(offset_of!(Frame, x19_x28) + 8 == slots::FRAME_X20);
    assert!(offset_of!(Frame, x19_x28) + 9 * 8 == slots::FRAME_X28);
    assert!(offset_of!(Frame, x29) == slots::FRAME_X29);
    assert!(offset_of!(Frame, x30) == slots::FRAME_X30);
    assert!(offset_of!(Frame, d8_d15) == slots::FRAME_D8);
    assert!(offset_of!(Frame, d8_d15) + 6 * 8 == slots::FRAME_D14);
    assert!(core::mem::size_of::<Frame>() == slots::FRAME_SIZE);
    assert!(slots::FRAME_SIZE % 16 == 0);
};

impl Frame {
    pub(super) fn fresh(entry: EntryFn, data: *mut u8, trampoline: usize) -> Frame {
        let mut f = Frame::default();
        f.x19_x28[0] = entry as usize as u64;
        f.x19_x28[1] = data as u64;
        f.x30 = trampoline as u64;
        f
    }

    /// The continuation address saved in this frame.
    pub fn resume_address(&self) -> usize {
        self.x30 as usize
    }
}
