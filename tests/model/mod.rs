//! A reference model of the hub's scheduling, and a runner that executes the same program on
//! the real hub (with a paused clock), so that the two traces can be compared. Shared by
//! `tests/sched_model.rs` (proptest) and `fuzz/fuzz_targets/sched_model.rs` (cargo-fuzz).
//!
//! A *program* is a list of greenlets, each a list of operations. The main greenlet spawns
//! the first half of them ([`up_front`]) in order; the others are *latent*: spawned by the
//! first `Spawn` op that names them, in mid-program, or else by main just before it joins
//! them. Main joins every greenlet in order. If a join reports that it would block forever
//! (LoopExit), main records which spawned greenlets are stuck, kills them, spawns and kills
//! the latent ones still unspawned (they never run), and joins them all.
//!
//! The model restates the hub's documented rules, nothing more:
//!
//! * `spawn` queues a greenlet; the hub runs ready greenlets in FIFO order, in turns: a turn
//!   runs those ready when it began; then expired timers fire in (deadline, creation) order;
//!   with nothing ready, the paused clock jumps to the next timer; with nothing ready and no
//!   timer, main is woken with LoopExit.
//! * `Spawn(j)` of a latent greenlet queues it (at the back) and goes on without switching;
//!   of one spawned already, does nothing. `Kill` and `Join` of a greenlet not yet spawned
//!   do nothing.
//! * `sleep(0)`/`yield` goes to the back of the queue. `Event::set` wakes its waiters in the
//!   order they began waiting; `wait` on a set event and `join` of a dead (or the current)
//!   greenlet return at once, without switching.
//! * `kill` of a parked greenlet wakes it to unwind; of a ready one (woken or yielded), is
//!   raised at its next blocking call or on its way back from the yield; of one not started,
//!   means its body never runs. Every greenlet's captured values are dropped exactly once.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// One operation of a greenlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `yield_now()`.
    Yield,
    /// `sleep(ms)`, 1 ms or more.
    Sleep(u8),
    /// `events[e].set()`.
    Set(u8),
    /// `events[e].wait()`.
    Wait(u8),
    /// `greenlets[j].kill_nowait()` (j may be the greenlet itself).
    Kill(u8),
    /// `greenlets[j].join()` (j may be the greenlet itself: an error at once).
    Join(u8),
    /// Spawns `greenlets[j]` if it is latent and not spawned yet.
    Spawn(u8),
}

/// How many of a program's `n` greenlets main spawns before anything runs; the rest are
/// latent (see the module docs).
pub fn up_front(n: usize) -> usize {
    n.div_ceil(2)
}

/// What the program observably did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// Greenlet `g` (main is `greenlets.len()`) begins operation `i`.
    Op(usize, usize),
    /// Greenlet `g` returned from its body.
    Done(usize),
    /// Greenlet `g`'s captured values were dropped (after its end, its kill, or instead of
    /// running, if killed before it started).
    Drop(usize),
    /// Main's join reported LoopExit; these greenlets were still waiting.
    Stuck(Vec<usize>),
}

/// The number of events a program can use.
pub const EVENTS: u8 = 3;

/// Brings an arbitrary op into range for a program of `n` greenlets.
pub fn normalize(op: Op, n: usize) -> Op {
    let n = n.max(1) as u8;
    match op {
        Op::Yield => Op::Yield,
        Op::Sleep(ms) => Op::Sleep(ms % 5 + 1),
        Op::Set(e) => Op::Set(e % EVENTS),
        Op::Wait(e) => Op::Wait(e % EVENTS),
        Op::Kill(j) => Op::Kill(j % n),
        Op::Join(j) => Op::Join(j % n),
        Op::Spawn(j) => Op::Spawn(j % n),
    }
}

// ---------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    NotStarted,
    /// In the ready queue after a yield.
    Yielded,
    /// Parked; `gen` identifies the wait.
    Parked,
    /// In the ready queue after a wake-up (the reason is in `wake`).
    Woken,
    Running,
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Why {
    Ready,
    Timeout,
    Interrupted,
    LoopExit,
}

struct Task {
    ops: Vec<Op>,
    /// Spawned (main's, or latent and named by a `Spawn`).
    spawned: bool,
    pc: usize,
    st: St,
    gen: u64,
    wake: Why,
    kill: bool,
    joiners: Vec<(usize, u64)>,
}

struct Sim {
    t: Vec<Task>,
    main: usize,
    ready: VecDeque<usize>,
    /// (deadline ms, sequence, task, wait generation)
    timers: Vec<(u64, u64, usize, u64)>,
    seq: u64,
    now: u64,
    events: Vec<(bool, Vec<(usize, u64)>)>,
    trace: Vec<Ev>,
    /// Main's cleanup after LoopExit: kill these, then join them.
    cleanup: Option<Vec<usize>>,
}

/// What the model says the program does.
pub fn simulate(program: &[Vec<Op>]) -> Vec<Ev> {
    let n = program.len();
    let mut t: Vec<Task> = program
        .iter()
        .enumerate()
        .map(|(g, ops)| Task {
            ops: ops.clone(),
            spawned: g < up_front(n),
            pc: 0,
            st: St::NotStarted,
            gen: 0,
            wake: Why::Ready,
            kill: false,
            joiners: Vec::new(),
        })
        .collect();
    t.push(Task {
        ops: (0..n as u8).map(Op::Join).collect(),
        spawned: true,
        pc: 0,
        st: St::Running,
        gen: 0,
        wake: Why::Ready,
        kill: false,
        joiners: Vec::new(),
    });
    let mut s = Sim {
        t,
        main: n,
        ready: (0..up_front(n)).collect(),
        timers: Vec::new(),
        seq: 0,
        now: 0,
        events: (0..EVENTS).map(|_| (false, Vec::new())).collect(),
        trace: Vec::new(),
        cleanup: None,
    };
    s.run_ops(s.main);
    let mut guard = 0u64;
    while s.t[s.main].st != St::Done {
        guard += 1;
        assert!(guard < 1_000_000, "the model does not terminate");
        // Run the turn's snapshot.
        let turn = s.ready.len().min(64);
        for _ in 0..turn {
            let g = s.ready.pop_front().expect("turn snapshot");
            if s.t[g].st == St::Done {
                continue;
            }
            s.resume(g);
            if s.t[s.main].st == St::Done {
                return s.trace;
            }
        }
        // Fire expired timers, in (deadline, sequence) order.
        if !s.timers.is_empty() {
            s.timers.sort();
            while let Some(&(d, _, g, gen)) = s.timers.first() {
                if d > s.now {
                    break;
                }
                s.timers.remove(0);
                s.wake(g, gen, Why::Timeout);
            }
        }
        if !s.ready.is_empty() {
            continue;
        }
        if let Some(&(d, ..)) = s.timers.iter().min() {
            s.now = s.now.max(d);
            continue;
        }
        // Nothing could ever wake anyone: main learns it.
        let m = s.main;
        if s.t[m].st == St::Parked {
            s.t[m].st = St::Woken;
            s.t[m].wake = Why::LoopExit;
            s.ready.push_back(m);
        } else {
            panic!("model: hub idle but main not parked");
        }
    }
    s.trace
}

impl Sim {
    fn wake(&mut self, g: usize, gen: u64, why: Why) -> bool {
        let task = &mut self.t[g];
        if task.st != St::Parked || task.gen != gen {
            return false;
        }
        task.st = St::Woken;
        task.wake = why;
        self.ready.push_back(g);
        true
    }

    fn park(&mut self, g: usize) -> u64 {
        let task = &mut self.t[g];
        task.gen += 1;
        task.st = St::Parked;
        task.gen
    }

    /// The hub switches into `g`.
    fn resume(&mut self, g: usize) {
        match self.t[g].st {
            St::NotStarted => {
                if self.t[g].kill {
                    self.t[g].kill = false;
                    self.die(g);
                    return;
                }
                self.t[g].st = St::Running;
                self.run_ops(g);
            }
            St::Yielded => {
                self.t[g].st = St::Running;
                if self.t[g].kill {
                    self.die(g);
                    return;
                }
                self.run_ops(g);
            }
            St::Woken => {
                self.t[g].st = St::Running;
                self.timers.retain(|x| x.2 != g);
                let why = self.t[g].wake;
                if why == Why::Interrupted && self.t[g].kill {
                    self.die(g);
                    return;
                }
                if g == self.main && why == Why::LoopExit {
                    self.loop_exit();
                }
                self.run_ops(g);
            }
            st => panic!("model: resuming greenlet {g} in state {st:?}"),
        }
    }

    fn loop_exit(&mut self) {
        let stuck: Vec<usize> = (0..self.main)
            .filter(|&j| self.t[j].spawned && self.t[j].st != St::Done)
            .collect();
        self.trace.push(Ev::Stuck(stuck.clone()));
        let m = self.main;
        for &j in &stuck {
            self.kill(m, j);
        }
        // The latent ones nobody spawned: spawned and killed at once, so they never run.
        let unspawned: Vec<usize> = (0..self.main).filter(|&j| !self.t[j].spawned).collect();
        for &j in &unspawned {
            self.spawn(j);
            self.kill(m, j);
        }
        self.cleanup = Some(stuck.into_iter().chain(unspawned).collect());
        // Main's remaining ops are replaced by joins of the stuck ones (not traced).
        let len = self.t[m].ops.len();
        self.t[m].pc = len;
    }

    /// Queues latent greenlet `j` if it is not spawned yet.
    fn spawn(&mut self, j: usize) {
        if !self.t[j].spawned {
            self.t[j].spawned = true;
            self.ready.push_back(j);
        }
    }

    fn kill(&mut self, by: usize, j: usize) -> bool {
        if j == by {
            return true; // the caller dies
        }
        let task = &mut self.t[j];
        if task.st == St::Done || !task.spawned {
            return false;
        }
        task.kill = true;
        if task.st == St::Parked {
            task.st = St::Woken;
            task.wake = Why::Interrupted;
            self.ready.push_back(j);
        }
        false
    }

    /// A pending kill raised at a blocking call's entry.
    fn check(&mut self, g: usize) -> bool {
        if self.t[g].kill {
            self.t[g].kill = false;
            self.die(g);
            true
        } else {
            false
        }
    }

    fn die(&mut self, g: usize) {
        self.trace.push(Ev::Drop(g));
        self.finish(g);
    }

    fn finish(&mut self, g: usize) {
        self.t[g].st = St::Done;
        let joiners = std::mem::take(&mut self.t[g].joiners);
        for (w, gen) in joiners {
            self.wake(w, gen, Why::Ready);
        }
    }

    /// Runs `g` until it blocks, yields or ends.
    fn run_ops(&mut self, g: usize) {
        loop {
            if g == self.main && self.t[g].pc >= self.t[g].ops.len() {
                // Cleanup joins after LoopExit, then main ends.
                if let Some(stuck) = self.cleanup.clone() {
                    if let Some(&j) = stuck.iter().find(|&&j| self.t[j].st != St::Done) {
                        let gen = self.park(g);
                        self.t[j].joiners.push((g, gen));
                        return;
                    }
                }
                self.t[g].st = St::Done;
                return;
            }
            let pc = self.t[g].pc;
            let Some(&op) = self.t[g].ops.get(pc) else {
                self.trace.push(Ev::Done(g));
                self.trace.push(Ev::Drop(g));
                self.finish(g);
                return;
            };
            self.trace.push(Ev::Op(g, pc));
            self.t[g].pc += 1;
            match op {
                Op::Yield => {
                    self.t[g].st = St::Yielded;
                    self.ready.push_back(g);
                    return;
                }
                Op::Sleep(ms) => {
                    if self.check(g) {
                        return;
                    }
                    let gen = self.park(g);
                    self.timers.push((self.now + ms as u64, self.seq, g, gen));
                    self.seq += 1;
                    return;
                }
                Op::Set(e) => {
                    let e = e as usize;
                    self.events[e].0 = true;
                    let waiters = std::mem::take(&mut self.events[e].1);
                    for (w, gen) in waiters {
                        self.wake(w, gen, Why::Ready);
                    }
                }
                Op::Wait(e) => {
                    let e = e as usize;
                    if self.events[e].0 {
                        continue;
                    }
                    if self.check(g) {
                        return;
                    }
                    let gen = self.park(g);
                    self.events[e].1.push((g, gen));
                    return;
                }
                Op::Kill(j) => {
                    if self.kill(g, j as usize) {
                        self.die(g);
                        return;
                    }
                }
                Op::Spawn(j) => self.spawn(j as usize),
                Op::Join(j) => {
                    let j = j as usize;
                    if g == self.main {
                        self.spawn(j); // main spawns a latent greenlet before joining it
                    }
                    if j == g || self.t[j].st == St::Done || !self.t[j].spawned {
                        continue;
                    }
                    if self.check(g) {
                        return;
                    }
                    let gen = self.park(g);
                    self.t[j].joiners.push((g, gen));
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real hub.

struct DropMark(usize, Rc<RefCell<Vec<Ev>>>);

impl Drop for DropMark {
    fn drop(&mut self) {
        self.1.borrow_mut().push(Ev::Drop(self.0));
    }
}

/// Runs the program on a fresh thread's hub with a paused clock and returns its trace.
pub fn run_on_hub(program: &[Vec<Op>]) -> Vec<Ev> {
    let program = program.to_vec();
    std::thread::spawn(move || {
        grove::hub::Builder::new()
            .paused_clock(true)
            .install()
            .expect("a fresh thread");
        run_here(&program)
    })
    .join()
    .expect("the program's thread")
}

/// What every greenlet of a program run on the real hub shares.
struct Ctx {
    program: Vec<Vec<Op>>,
    trace: Rc<RefCell<Vec<Ev>>>,
    events: Vec<grove::Event>,
    /// Spawned greenlets' handles (`None`: latent, not spawned yet).
    handles: RefCell<Vec<Option<Rc<grove::Greenlet<()>>>>>,
}

impl Ctx {
    /// Spawns greenlet `g` unless it is spawned already.
    fn spawn(self: &Rc<Ctx>, g: usize) {
        if self.handles.borrow()[g].is_some() {
            return;
        }
        let ctx = self.clone();
        let mark = DropMark(g, self.trace.clone());
        let h = grove::spawn(move || {
            let _mark = mark;
            let ops = ctx.program[g].clone();
            for (i, op) in ops.iter().enumerate() {
                ctx.trace.borrow_mut().push(Ev::Op(g, i));
                match *op {
                    Op::Yield => grove::yield_now(),
                    Op::Sleep(ms) => grove::sleep(Duration::from_millis(ms as u64)),
                    Op::Set(e) => ctx.events[e as usize].set(),
                    Op::Wait(e) => {
                        // A spawned greenlet is never told LoopExit: it waits on (parked).
                        ctx.events[e as usize].wait().expect("woken by a set");
                    }
                    Op::Kill(j) => {
                        if let Some(h) = ctx.handle(j as usize) {
                            h.kill_nowait();
                        }
                    }
                    Op::Join(j) => {
                        if let Some(h) = ctx.handle(j as usize) {
                            let _ = h.join();
                        }
                    }
                    Op::Spawn(j) => ctx.spawn(j as usize),
                }
            }
            ctx.trace.borrow_mut().push(Ev::Done(g));
        });
        self.handles.borrow_mut()[g] = Some(Rc::new(h));
    }

    /// The handle of `g` if it is spawned (not holding the RefCell across its use).
    fn handle(&self, g: usize) -> Option<Rc<grove::Greenlet<()>>> {
        self.handles.borrow()[g].clone()
    }
}

fn run_here(program: &[Vec<Op>]) -> Vec<Ev> {
    let n = program.len();
    let ctx = Rc::new(Ctx {
        program: program.to_vec(),
        trace: Rc::new(RefCell::new(Vec::new())),
        events: (0..EVENTS).map(|_| grove::Event::new()).collect(),
        handles: RefCell::new(vec![None; n]),
    });
    for g in 0..up_front(n) {
        ctx.spawn(g);
    }
    let main = n;
    let exited = Cell::new(false);
    for j in 0..n {
        ctx.trace.borrow_mut().push(Ev::Op(main, j));
        ctx.spawn(j); // a latent greenlet nobody spawned: main does, then joins it
        let r = ctx.handle(j).expect("spawned").join();
        if r == Err(grove::GreenletError::WouldBlockForever) {
            exited.set(true);
            break;
        }
        assert_eq!(r, Ok(()), "join of greenlet {j}");
    }
    if exited.get() {
        let stuck: Vec<usize> = (0..n)
            .filter(|&j| ctx.handle(j).is_some_and(|h| !h.is_dead()))
            .collect();
        ctx.trace.borrow_mut().push(Ev::Stuck(stuck.clone()));
        for &j in &stuck {
            ctx.handle(j).expect("stuck").kill_nowait();
        }
        let unspawned: Vec<usize> = (0..n).filter(|&j| ctx.handle(j).is_none()).collect();
        for &j in &unspawned {
            ctx.spawn(j);
            ctx.handle(j).expect("just spawned").kill_nowait();
        }
        for &j in stuck.iter().chain(&unspawned) {
            let r = ctx.handle(j).expect("spawned").join();
            assert_eq!(r, Ok(()), "join of killed greenlet {j}");
        }
    }
    let out = ctx.trace.borrow().clone();
    // The greenlets' closures hold `ctx`: the handles (and the cycle) go with it here.
    ctx.handles.borrow_mut().clear();
    out
}

/// Checks the invariants that hold for any program, on a trace: every greenlet's values are
/// dropped exactly once, and nothing happens to a greenlet after that.
pub fn check_invariants(program: &[Vec<Op>], trace: &[Ev]) {
    let n = program.len();
    for g in 0..n {
        let drops = trace.iter().filter(|e| **e == Ev::Drop(g)).count();
        assert_eq!(drops, 1, "greenlet {g} dropped {drops} times: {trace:?}");
        let at = trace.iter().position(|e| *e == Ev::Drop(g)).unwrap();
        assert!(
            !trace[at..]
                .iter()
                .any(|e| matches!(e, Ev::Op(x, _) | Ev::Done(x) if *x == g)),
            "greenlet {g} ran after it was dropped: {trace:?}"
        );
    }
}
