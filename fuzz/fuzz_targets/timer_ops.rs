//! Drives `grove::hub::timers::TimerQueue` with arbitrary operation sequences and checks it
//! against a naive model (a Vec searched linearly): the same values come out in the same
//! order (deadline, then FIFO by insertion or last reschedule), cancelled timers never fire,
//! stale and forged ids return `None`/`false` and never panic, `len` and `next_deadline`
//! agree after every step.
#![no_main]

use arbitrary::Arbitrary;
use grove::hub::timers::{Deadline, TimerId, TimerQueue};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Insert at `now + delay` ns (u8: deadlines collide often).
    Insert(u8),
    /// Insert at `now + delay` with a delay of any size, saturating to `Deadline::MAX`.
    InsertFar(u64, u32),
    /// Cancel the `i % issued`-th id ever issued (often stale).
    Cancel(u16),
    /// Reschedule the `i % issued`-th id ever issued to `now + delay`.
    Reschedule(u16, u8),
    /// Use an id made of arbitrary bits.
    Forged(u64),
    /// Advance the clock.
    Advance(u8),
    /// Pop one timer if one is due.
    PopOne,
    /// Pop every timer due now.
    PopAll,
}

#[derive(Default)]
struct Model {
    /// (deadline, sequence, id, value)
    live: Vec<(u64, u64, TimerId, u32)>,
    seq: u64,
}

impl Model {
    fn insert(&mut self, deadline: u64, id: TimerId, value: u32) {
        self.live.push((deadline, self.seq, id, value));
        self.seq += 1;
    }

    fn find(&self, id: TimerId) -> Option<usize> {
        self.live.iter().position(|e| e.2 == id)
    }

    fn pop_expired(&mut self, now: u64) -> Option<(TimerId, u32)> {
        let i = (0..self.live.len())
            .filter(|&i| self.live[i].0 <= now)
            .min_by_key(|&i| (self.live[i].0, self.live[i].1))?;
        let (_, _, id, value) = self.live.remove(i);
        Some((id, value))
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut q = TimerQueue::new();
    let mut m = Model::default();
    let mut issued: Vec<TimerId> = Vec::new();
    let mut now = 0u64;
    let mut next_value = 0u32;
    for op in ops.iter().take(2_000) {
        match *op {
            Op::Insert(delay) => {
                let deadline = Deadline::after(Deadline(now), Duration::from_nanos(delay.into()));
                let id = q.insert(deadline, next_value);
                assert!(!issued.contains(&id), "id issued twice");
                issued.push(id);
                m.insert(deadline.0, id, next_value);
                next_value += 1;
            }
            Op::InsertFar(secs, nanos) => {
                let delay = Duration::new(secs, nanos % 1_000_000_000);
                let deadline = Deadline::after(Deadline(now), delay);
                let want = u128::from(now) + delay.as_nanos();
                assert_eq!(u128::from(deadline.0), want.min(u128::from(u64::MAX)));
                let id = q.insert(deadline, next_value);
                issued.push(id);
                m.insert(deadline.0, id, next_value);
                next_value += 1;
            }
            Op::Cancel(i) if !issued.is_empty() => {
                let id = issued[usize::from(i) % issued.len()];
                let want = m.find(id).map(|i| m.live.remove(i).3);
                assert_eq!(q.cancel(id), want);
            }
            Op::Reschedule(i, delay) if !issued.is_empty() => {
                let id = issued[usize::from(i) % issued.len()];
                let deadline = now.saturating_add(delay.into());
                let want = match m.find(id) {
                    Some(i) => {
                        m.live[i].0 = deadline;
                        m.live[i].1 = m.seq;
                        m.seq += 1;
                        true
                    }
                    None => false,
                };
                assert_eq!(q.reschedule(id, Deadline(deadline)), want);
            }
            Op::Cancel(_) | Op::Reschedule(..) => {}
            Op::Forged(bits) => {
                let id = TimerId::from_bits(bits);
                match m.find(id) {
                    // The bits happen to name a live timer: it must behave as that timer.
                    Some(i) => assert_eq!(q.get(id), Some(&m.live[i].3)),
                    None => {
                        assert_eq!(q.get(id), None);
                        assert_eq!(q.deadline(id), None);
                        assert!(!q.contains(id));
                        assert_eq!(q.cancel(id), None);
                        assert!(!q.reschedule(id, Deadline(0)));
                    }
                }
            }
            Op::Advance(dt) => now = now.saturating_add(dt.into()),
            Op::PopOne => assert_eq!(q.pop_expired(Deadline(now)), m.pop_expired(now)),
            Op::PopAll => loop {
                let got = q.pop_expired(Deadline(now));
                assert_eq!(got, m.pop_expired(now));
                if got.is_none() {
                    break;
                }
            },
        }
        assert_eq!(q.len(), m.live.len());
        assert_eq!(q.is_empty(), m.live.is_empty());
        assert_eq!(
            q.next_deadline(),
            m.live.iter().map(|e| Deadline(e.0)).min()
        );
    }
    for &(deadline, _, id, value) in &m.live {
        assert_eq!(q.get(id), Some(&value));
        assert_eq!(q.deadline(id), Some(Deadline(deadline)));
    }
    loop {
        let got = q.pop_expired(Deadline::MAX);
        assert_eq!(got, m.pop_expired(u64::MAX));
        if got.is_none() {
            break;
        }
    }
    for id in issued {
        assert_eq!(q.cancel(id), None);
    }
});
