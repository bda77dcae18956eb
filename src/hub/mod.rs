//! The hub: one event loop per OS thread, multiplexing the greenlets that live on it.
//!
//! [`event_loop`] is the hub itself: the per-thread loop running in a greenlet of its own,
//! `park`/wakers, timers and fd readiness, and the [`HubHandle`] other threads wake it with.
//! The pure data structures it is built on do no I/O and know nothing about greenlets, so that
//! unit tests, property tests, fuzzing and Miri can reach them directly:
//!
//! | structure | module | what the hub uses it for |
//! |---|---|---|
//! | [`TimerQueue`](timers::TimerQueue), [`Deadline`](timers::Deadline) | [`timers`] | `sleep(t)`, timeouts: the pending timers, earliest first, FIFO among equal deadlines |
//! | [`RunQueue`](run_queue::RunQueue) | [`run_queue`] | the greenlets ready to run, and the fairness rule that keeps `sleep(0)` loops from starving I/O and timers |
//!
//! One turn of the loop: run the greenlets that were ready when the turn began
//! ([`RunQueue::start_turn`](run_queue::RunQueue::start_turn): at most the budget), fire the
//! expired timers ([`TimerQueue::pop_expired`](timers::TimerQueue::pop_expired), in deadline
//! order), then poll I/O: without blocking if anything is ready, else until
//! [`TimerQueue::next_deadline`](timers::TimerQueue::next_deadline).

pub mod event_loop;
pub mod run_queue;
pub mod timers;

pub use event_loop::{backend, handle, use_backend, HubHandle};
