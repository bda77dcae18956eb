//! The life of a greenlet, as a state machine.
//!
//! ```text
//!                 switch / throw              switch away
//!   NotStarted ──────────────────> Running ──────────────> Suspended
//!       │                            │  ^                      │
//!       │ throw, or last handle      │  └──────────────────────┘
//!       │ dropped (body never runs)  │      switch / throw into it
//!       v                            v
//!   Finished <───────────────────────┘  body returned, panicked, or unwound by a throw
//! ```
//!
//! Rules, each enforced in `greenlet/mod.rs` where the transition happens:
//!
//! * Exactly one greenlet per thread is `Running`: the one whose stack the CPU is on, the
//!   thread's *current* greenlet. `Running` and `Suspended` are not stored: a header stores only
//!   whether the greenlet has started and whether it has finished, and a started, unfinished
//!   greenlet is `Running` exactly when it is current. So a switch changes no state at all: it
//!   makes the target current before the assembly runs, so the overflow handler, reading the
//!   current greenlet from a signal, always sees the truth.
//! * Only `NotStarted` and `Suspended` greenlets can be switched to. Switching to a `Finished`
//!   one is an error ([`SwitchError::Dead`](super::SwitchError::Dead)); switching to the
//!   running one (yourself) returns the value at once, as python-greenlet does.
//! * `Finished` is final. A finished greenlet's stack is released once no handle remains.
//! * A thread's main greenlet (its original stack) is never `NotStarted` or `Finished`.

/// Where a greenlet is in its life. See the module docs for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Created; its body has not begun. The first switch into it starts the body.
    NotStarted,
    /// Its stack is the one the CPU is running on.
    Running,
    /// Started and switched away from; it continues where it stopped when switched to.
    Suspended,
    /// Its body returned, panicked or was unwound by a throw. It cannot run again.
    Finished,
}

impl State {
    /// Whether a switch into a greenlet in this state is allowed.
    pub fn can_switch_to(self) -> bool {
        matches!(self, State::NotStarted | State::Suspended)
    }

    /// Started and not yet finished (python-greenlet's "active", `bool(g)`).
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Suspended)
    }
}
