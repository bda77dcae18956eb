//! Switch trees against a reference model.
//!
//! proptest generates programs over up to 12 greenlets: create (with main or another greenlet
//! as parent), resume with a *script*, and throw. A script is a list of steps that whoever
//! holds it carries out: hop to greenlet j (passing the rest of the script), go back to main,
//! finish (returning the rest of the script to the parent), or panic. Every participant logs
//! what it receives. A plain state machine (the model below) predicts that log, every state,
//! and every outcome; the real greenlets must match it step for step. At the end every
//! greenlet's destructors must have run exactly once.

use grove::greenlet::{Greenlet, State, SwitchError, Value};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Hop(usize),
    Main,
    Finish,
    Panic,
}

#[derive(Debug, Clone)]
enum Op {
    Create { parent: Option<usize> },
    Resume { g: usize, script: Vec<Step> },
    Throw { g: usize },
}

/// What a participant saw when it woke up (`who`: 0 = main, k + 1 = greenlet k).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Got { who: usize, steps: usize },
    Err { who: usize, what: &'static str },
}

type Script = VecDeque<Step>;

fn kind(e: &SwitchError) -> &'static str {
    match e {
        SwitchError::Dead => "dead",
        SwitchError::Panicked(_) => "panicked",
        SwitchError::Killed { .. } => "killed",
        SwitchError::ParentCycle => "cycle",
    }
}

// ---------------------------------------------------------------------------------------------
// The real thing
// ---------------------------------------------------------------------------------------------

struct World {
    gs: RefCell<Vec<Greenlet>>,
    log: RefCell<Vec<Event>>,
    dropped: Cell<usize>,
    main: Greenlet,
}

struct Token(Rc<World>);
impl Drop for Token {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

/// Carries out `incoming` for participant `who` until the script says to finish (returns the
/// rest) or, for main, until control is back with nothing left to do.
fn interpret(w: &Rc<World>, who: usize, mut incoming: Result<Value, SwitchError>) -> Script {
    loop {
        let mut script: Script = match incoming {
            Ok(v) => *v.downcast::<Script>().expect("scripts only"),
            Err(e) => {
                w.log.borrow_mut().push(Event::Err {
                    who,
                    what: kind(&e),
                });
                if who == 0 {
                    return Script::new();
                }
                incoming = w.main.switch(Box::new(Script::new()));
                continue;
            }
        };
        w.log.borrow_mut().push(Event::Got {
            who,
            steps: script.len(),
        });
        let step = script.pop_front();
        incoming = match step {
            None if who == 0 => return script,
            None | Some(Step::Main) if who != 0 => w.main.switch(Box::new(script)),
            None | Some(Step::Main) => Ok(Box::new(script) as Value),
            Some(Step::Hop(j)) => {
                let g = w.gs.borrow().get(j).cloned();
                match g {
                    Some(g) => g.switch(Box::new(script)),
                    None => Ok(Box::new(script) as Value),
                }
            }
            Some(Step::Finish) if who != 0 => return script,
            Some(Step::Panic) if who != 0 => panic!("scripted panic"),
            Some(Step::Finish | Step::Panic) => return script,
        };
    }
}

fn run_real(ops: &[Op]) -> (Vec<Event>, Vec<State>, usize, usize) {
    let w = Rc::new(World {
        gs: RefCell::new(Vec::new()),
        log: RefCell::new(Vec::new()),
        dropped: Cell::new(0),
        main: Greenlet::current(),
    });
    for op in ops {
        match op {
            Op::Create { parent } => {
                let k = w.gs.borrow().len();
                let w2 = w.clone();
                let mut b = Greenlet::builder().stack_size(32 * 1024);
                if let Some(p) = parent.and_then(|p| w.gs.borrow().get(p).cloned()) {
                    b = b.parent(&p);
                }
                let g = b
                    .build(move |first| {
                        let _token = Token(w2.clone());
                        Box::new(interpret(&w2, k + 1, Ok(first)))
                    })
                    .unwrap();
                w.gs.borrow_mut().push(g);
            }
            Op::Resume { g, script } => {
                let Some(target) = w.gs.borrow().get(*g).cloned() else {
                    continue;
                };
                let r = target.switch(Box::new(script.iter().copied().collect::<Script>()));
                interpret(&w, 0, r);
            }
            Op::Throw { g } => {
                let Some(target) = w.gs.borrow().get(*g).cloned() else {
                    continue;
                };
                let r = target.throw();
                interpret(&w, 0, r);
            }
        }
    }
    let states = w.gs.borrow().iter().map(|g| g.state()).collect();
    let created = w.gs.borrow().len();
    let log = w.log.borrow().clone();
    // Kill what is still suspended. A suspended greenlet may hold a handle to another (the one
    // it hopped to) whose parent is the first: such cycles are not broken by dropping handles
    // (python-greenlet leaves them to its garbage collector), so kill explicitly, each
    // returning straight to main.
    let gs = std::mem::take(&mut *w.gs.borrow_mut());
    for g in gs.iter().rev() {
        if g.state() == State::Suspended {
            g.set_parent(&w.main).unwrap();
            assert!(matches!(g.throw(), Err(SwitchError::Killed { .. })));
        }
    }
    drop(gs);
    (log, states, created, w.dropped.get())
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum M {
    NotStarted,
    Suspended,
    Running,
    Finished,
}

struct Model {
    st: Vec<M>,
    parent: Vec<Option<usize>>, // None = main
    log: Vec<Event>,
}

enum Incoming {
    Ok(Script),
    Err(&'static str),
}

impl Model {
    /// The participant that receives a finishing greenlet's outcome: first Suspended ancestor,
    /// else main (0).
    fn live_ancestor(&self, k: usize) -> usize {
        let mut p = self.parent[k];
        while let Some(a) = p {
            if self.st[a] == M::Suspended {
                return a + 1;
            }
            p = self.parent[a];
        }
        0
    }

    fn set_running(&mut self, who: usize, was: usize) {
        if was != 0 && self.st[was - 1] == M::Running {
            self.st[was - 1] = M::Suspended;
        }
        if who != 0 {
            self.st[who - 1] = M::Running;
        }
    }

    /// Runs until control is back in main with nothing to do. `who` receives `inc`.
    fn deliver(&mut self, mut who: usize, mut inc: Incoming) {
        loop {
            let mut script = match inc {
                Incoming::Err(what) => {
                    self.log.push(Event::Err { who, what });
                    if who == 0 {
                        return;
                    }
                    // switch to main with an empty script
                    self.set_running(0, who);
                    who = 0;
                    inc = Incoming::Ok(Script::new());
                    continue;
                }
                Incoming::Ok(s) => s,
            };
            self.log.push(Event::Got {
                who,
                steps: script.len(),
            });
            let step = script.pop_front();
            match step {
                None if who == 0 => return,
                None | Some(Step::Main) if who != 0 => {
                    self.set_running(0, who);
                    who = 0;
                    inc = Incoming::Ok(script);
                }
                None | Some(Step::Main) => inc = Incoming::Ok(script),
                Some(Step::Hop(j)) if j >= self.st.len() => inc = Incoming::Ok(script),
                Some(Step::Hop(j)) if j + 1 == who => inc = Incoming::Ok(script),
                Some(Step::Hop(j)) => match self.st[j] {
                    M::NotStarted | M::Suspended => {
                        self.set_running(j + 1, who);
                        who = j + 1;
                        inc = Incoming::Ok(script);
                    }
                    M::Finished => inc = Incoming::Err("dead"),
                    M::Running => unreachable!(),
                },
                Some(Step::Finish | Step::Panic) if who == 0 => return,
                Some(s @ (Step::Finish | Step::Panic)) => {
                    let k = who - 1;
                    self.st[k] = M::Finished;
                    let to = self.live_ancestor(k);
                    if to != 0 {
                        self.st[to - 1] = M::Running;
                    }
                    who = to;
                    inc = if s == Step::Finish {
                        Incoming::Ok(script)
                    } else {
                        Incoming::Err("panicked")
                    };
                }
            }
        }
    }

    fn run(ops: &[Op]) -> (Vec<Event>, Vec<State>) {
        let mut m = Model {
            st: Vec::new(),
            parent: Vec::new(),
            log: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Create { parent } => {
                    let p = parent.filter(|&p| p < m.st.len());
                    m.st.push(M::NotStarted);
                    m.parent.push(p);
                }
                Op::Resume { g, script } => {
                    if *g >= m.st.len() {
                        continue;
                    }
                    let s: Script = script.iter().copied().collect();
                    match m.st[*g] {
                        M::Finished => m.deliver(0, Incoming::Err("dead")),
                        _ => {
                            m.st[*g] = M::Running;
                            m.deliver(g + 1, Incoming::Ok(s));
                        }
                    }
                }
                Op::Throw { g } => {
                    if *g >= m.st.len() {
                        continue;
                    }
                    match m.st[*g] {
                        M::Finished => m.deliver(0, Incoming::Err("dead")),
                        M::NotStarted => {
                            m.st[*g] = M::Finished;
                            m.deliver(0, Incoming::Err("killed"));
                        }
                        M::Suspended => {
                            m.st[*g] = M::Finished;
                            let to = m.live_ancestor(*g);
                            if to != 0 {
                                m.st[to - 1] = M::Running;
                            }
                            m.deliver(to, Incoming::Err("killed"));
                        }
                        M::Running => unreachable!(),
                    }
                }
            }
        }
        let states =
            m.st.iter()
                .map(|s| match s {
                    M::NotStarted => State::NotStarted,
                    M::Suspended => State::Suspended,
                    M::Running => State::Running,
                    M::Finished => State::Finished,
                })
                .collect();
        (m.log, states)
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..12usize).prop_map(Step::Hop),
        2 => Just(Step::Main),
        2 => Just(Step::Finish),
        1 => Just(Step::Panic),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::of(0..12usize).prop_map(|parent| Op::Create { parent }),
        5 => (0..12usize, proptest::collection::vec(step(), 0..7)).prop_map(|(g, script)| Op::Resume { g, script }),
        1 => (0..12usize).prop_map(|g| Op::Throw { g }),
    ]
}

proptest! {
    // The default config: 256 cases, or what PROPTEST_CASES says (CI lowers it under
    // valgrind and qemu).
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn switch_trees_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        // Scripted panics are expected: keep them off stderr.
        std::panic::set_hook(Box::new(|_| {}));
        let (log, states, created, dropped) = run_real(&ops);
        let _ = std::panic::take_hook();
        let (mlog, mstates) = Model::run(&ops);
        prop_assert_eq!(&log, &mlog);
        prop_assert_eq!(&states, &mstates);
        // Every greenlet that started ran its destructors exactly once, whether it finished,
        // panicked, or was killed (by throw or by dropping its handle).
        let started = mlog.iter().filter_map(|e| match e { Event::Got { who, .. } if *who > 0 => Some(*who), _ => None })
            .collect::<std::collections::BTreeSet<_>>().len();
        prop_assert!(created >= started);
        prop_assert_eq!(dropped, started);
    }
}
