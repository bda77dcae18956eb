//! The hub's run queue: the entries (greenlets) ready to run, in FIFO order, and the
//! fairness rule that decides how many of them run before the hub looks at I/O and timers
//! again.
//!
//! # The turn rule
//!
//! gevent's `sleep(0)` means "let everything that is already ready run, then continue me":
//! the caller goes to the back of the ready queue. A greenlet looping on `sleep(0)` (a busy
//! poller, a cooperative CPU-bound loop) must still not starve sockets or timers. The hub
//! therefore runs the queue in *turns*, and polls I/O and fires expired timers between turns.
//! One turn runs
//!
//! ```text
//! min(entries ready when the turn starts, budget)
//! ```
//!
//! entries, taken from the front ([`RunQueue::start_turn`]):
//!
//! - **snapshot**: an entry pushed while the turn runs (a greenlet that called `sleep(0)`,
//!   one woken by another) lands behind the snapshot and runs next turn, after the hub has
//!   polled I/O and timers once. So a `sleep(0)` loop gets one iteration per turn, never a
//!   hot loop that never returns to the hub;
//! - **budget** ([`TURN_BUDGET`], 64 by default): even a burst of many ready entries is
//!   split into turns, bounding the I/O latency a long queue can cause. Entries left over
//!   stay at the front and run first next turn, ahead of anything pushed meanwhile, so
//!   FIFO order is kept across turns.
//!
//! gevent itself bounds a pass over its ready callbacks by elapsed time (the switch
//! interval); grove bounds it by count, which is deterministic and so testable.
//!
//! ```
//! use grove::hub::run_queue::RunQueue;
//!
//! let mut q = RunQueue::with_budget(2);
//! q.push("a");
//! q.push("b");
//! q.push("c");
//! // One hub turn: at most 2 of the 3 ready entries.
//! let n = q.start_turn();
//! assert_eq!(n, 2);
//! let mut ran = Vec::new();
//! for _ in 0..n {
//!     let Some(g) = q.pop() else { break };
//!     ran.push(g);
//!     q.push("a again"); // e.g. `a` called sleep(0): it waits for the next turn
//! }
//! assert_eq!(ran, ["a", "b"]);
//! // (the hub polls I/O and timers here)
//! assert_eq!(q.start_turn(), 2);
//! assert_eq!(q.pop(), Some("c")); // the leftover goes first
//! ```
#![forbid(unsafe_code)]

use std::collections::VecDeque;

/// The default number of entries one hub turn may run before the hub polls I/O and timers
/// again. See the [module docs](self) for the rule.
///
/// Large enough that switching between greenlets, not polling, dominates a busy hub; small
/// enough that one turn of ~µs-long greenlet slices keeps I/O latency well under a
/// millisecond.
pub const TURN_BUDGET: usize = 64;

/// A draining queue keeps at least this many slots (see [`RunQueue::start_turn`]).
pub const KEEP_SLOTS: usize = 1024;

/// Ready entries in FIFO order, run in budgeted turns.
#[derive(Debug, Clone)]
pub struct RunQueue<T> {
    ready: VecDeque<T>,
    budget: usize,
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        RunQueue::new()
    }
}

impl<T> RunQueue<T> {
    /// An empty queue with the default budget, [`TURN_BUDGET`].
    pub const fn new() -> Self {
        RunQueue {
            ready: VecDeque::new(),
            budget: TURN_BUDGET,
        }
    }

    /// An empty queue running at most `budget` entries per turn. A budget of 0 is taken
    /// as 1, so that every turn makes progress.
    pub fn with_budget(budget: usize) -> Self {
        RunQueue {
            ready: VecDeque::new(),
            budget: budget.max(1),
        }
    }

    /// The most entries one turn runs.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Adds a ready entry at the back.
    pub fn push(&mut self, entry: T) {
        self.ready.push_back(entry);
    }

    /// Takes the entry at the front, the one ready longest.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        let cap = self.ready.capacity();
        self.ready.shrink_to(cap / 2);
    }

    /// How many entries it has room for without growing.
    pub fn capacity(&self) -> usize {
        self.ready.capacity()
    }

    /// The entry `i` places from the front (0: the next to run), if there are that many.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.ready.get(i)
    }

    /// The number of ready entries.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether no entry is ready. The hub polls I/O without blocking unless this holds.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Begins a turn: how many entries the hub runs (pops) before it polls I/O and timers
    /// again, `min(len(), budget())`, counted now, before anything the turn pushes.
    ///
    /// Pop that many, stopping early if the queue runs dry (an entry may be removed by
    /// other means in between); entries pushed meanwhile are left for the next turn.
    ///
    /// A queue that a burst filled gives its memory back as it drains: at the start of a
    /// turn, if fewer than a quarter of its slots are used (and it has more than
    /// [`KEEP_SLOTS`]), it shrinks to half.
    #[inline]
    pub fn start_turn(&mut self) -> usize {
        let cap = self.ready.capacity();
        if cap > KEEP_SLOTS && self.ready.len() < cap / 4 {
            self.shrink();
        }
        self.ready.len().min(self.budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fifo() {
        let mut q = RunQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.start_turn(), 0);
        for i in 0..10 {
            q.push(i);
        }
        assert_eq!(q.len(), 10);
        assert_eq!(
            (0..10).map(|_| q.pop().unwrap()).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let mut q = RunQueue::new();
        for i in 0..100_000 {
            q.push(i);
        }
        assert!(q.capacity() >= 100_000);
        let mut next = 0;
        while !q.is_empty() {
            for _ in 0..q.start_turn() {
                assert_eq!(q.pop(), Some(next));
                next += 1;
            }
            // Memory in proportion to what is queued, not to the peak.
            assert!(q.capacity() <= (4 * q.len() + 4 * TURN_BUDGET).max(2 * KEEP_SLOTS));
        }
        assert_eq!(next, 100_000);
        q.start_turn();
        assert!(q.capacity() <= 2 * KEEP_SLOTS, "{}", q.capacity());
        // Still a queue.
        q.push(7);
        assert_eq!(q.pop(), Some(7));
    }

    #[test]
    fn budget_defaults_and_clamps() {
        assert_eq!(RunQueue::<()>::new().budget(), TURN_BUDGET);
        assert_eq!(RunQueue::<()>::default().budget(), TURN_BUDGET);
        assert_eq!(RunQueue::<()>::with_budget(0).budget(), 1);
        let mut q = RunQueue::new();
        for i in 0..200 {
            q.push(i);
        }
        assert_eq!(q.start_turn(), TURN_BUDGET);
    }

    /// A greenlet looping on sleep(0) runs once per turn, so the hub gets to poll between.
    #[test]
    fn sleep0_loop_yields_to_the_hub_every_turn() {
        let mut q = RunQueue::new();
        q.push("spinner");
        for _turn in 0..1000 {
            let n = q.start_turn();
            assert_eq!(n, 1);
            for _ in 0..n {
                let g = q.pop().unwrap();
                q.push(g); // sleep(0)
            }
            // The turn ended with the spinner still ready: the hub polls here.
        }
    }

    /// Simulates hub turns: each entry, when run, pushes `spawn[e]` new entries. Checks
    /// the snapshot rule, the budget, and that the overall run order is FIFO.
    fn simulate(budget: usize, initial: usize, spawn: &[u8]) {
        let mut q = RunQueue::with_budget(budget);
        let mut next = 0usize;
        for _ in 0..initial {
            q.push(next);
            next += 1;
        }
        let mut ran = Vec::new();
        let mut turns = 0;
        while !q.is_empty() {
            turns += 1;
            assert!(turns < 100_000, "no progress");
            let at_start = q.len();
            let n = q.start_turn();
            assert_eq!(n, at_start.min(budget.max(1)));
            assert!(n >= 1, "a non-empty queue runs at least one entry per turn");
            let first_new = next;
            for _ in 0..n {
                let e = q.pop().unwrap();
                assert!(e < first_new, "entry {e} pushed during this turn ran in it");
                ran.push(e);
                for _ in 0..spawn.get(e).copied().unwrap_or(0) {
                    q.push(next);
                    next += 1;
                }
            }
            // Everything left, old then new, is still queued in push order.
            assert_eq!(q.len(), at_start - n + (next - first_new));
        }
        // Entries run in exactly the order they were pushed.
        assert_eq!(ran, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn leftovers_run_before_newcomers() {
        simulate(3, 10, &[1; 10]);
    }

    proptest! {
        #[test]
        fn turns_are_fifo_snapshots(
            budget in 0usize..10,
            initial in 0usize..40,
            spawn in proptest::collection::vec(0u8..3, 0..120),
        ) {
            simulate(budget, initial, &spawn);
        }

        #[test]
        fn fifo_matches_vecdeque(ops in proptest::collection::vec(any::<Option<u16>>(), 0..200)) {
            let mut q = RunQueue::new();
            let mut model = std::collections::VecDeque::new();
            for op in ops {
                match op {
                    Some(v) => { q.push(v); model.push_back(v); }
                    None => prop_assert_eq!(q.pop(), model.pop_front()),
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.start_turn(), model.len().min(TURN_BUDGET));
            }
        }
    }
}
