//! Unwinding out of a greenlet: a backtrace captured inside one continues, through the
//! trampoline's CFI, into the code that switched into it.

use grove::greenlet::{Greenlet, Value};
use std::backtrace::Backtrace;

#[inline(never)]
fn resumer_marker_function(g: &Greenlet) -> Value {
    let v = g.switch(Box::new(())).unwrap();
    std::hint::black_box(v)
}

#[inline(never)]
fn inside_greenlet_marker() -> String {
    Backtrace::force_capture().to_string()
}

#[test]
fn backtrace_inside_a_greenlet_reaches_its_resumer() {
    let g = Greenlet::builder()
        .stack_size(1024 * 1024) // symbolication is stack-hungry
        .build(|_| Box::new(inside_greenlet_marker()) as Value)
        .unwrap();
    let bt = *resumer_marker_function(&g).downcast::<String>().unwrap();
    assert!(
        bt.contains("inside_greenlet_marker"),
        "the greenlet's own frames:\n{bt}"
    );
    assert!(bt.contains("greenlet_entry"), "the entry frame:\n{bt}");
    assert!(
        bt.contains("resumer_marker_function"),
        "the walk must cross into the resumer's stack:\n{bt}"
    );
    // ...and go on to this test function, and stop cleanly somewhere after it.
    assert!(
        bt.contains("backtrace_inside_a_greenlet_reaches_its_resumer"),
        "{bt}"
    );
}

#[test]
fn backtrace_after_a_second_resume_follows_the_new_resumer() {
    let main = Greenlet::current();
    let g = Greenlet::builder()
        .stack_size(1024 * 1024)
        .build(move |_| {
            let _ = main.switch(Box::new(()));
            Box::new(inside_greenlet_marker()) as Value
        })
        .unwrap();
    g.switch(Box::new(())).unwrap();
    #[inline(never)]
    fn second_resumer(g: &Greenlet) -> Value {
        std::hint::black_box(g.switch(Box::new(())).unwrap())
    }
    let bt = *second_resumer(&g).downcast::<String>().unwrap();
    assert!(bt.contains("second_resumer"), "{bt}");
}

#[test]
fn backtrace_after_a_child_switched_back_reaches_the_resumer_and_ends() {
    // g resumes a child, which switches straight back to g (its resumer). A walk from g must
    // still go to g's own resumer, not into the suspended child (whose link leads back to g:
    // a cycle an unwinder would follow for ever).
    let g = Greenlet::builder()
        .stack_size(1024 * 1024)
        .build(|_| {
            let me = Greenlet::current();
            let child = Greenlet::new(move |_| {
                let _ = me.switch(Box::new(()));
                Box::new(()) as Value
            })
            .unwrap();
            child.switch(Box::new(())).unwrap();
            let bt = inside_greenlet_marker();
            drop(child);
            Box::new(bt) as Value
        })
        .unwrap();
    let bt = *resumer_marker_function(&g).downcast::<String>().unwrap();
    assert!(bt.contains("resumer_marker_function"), "{bt}");
    assert!(
        bt.matches("inside_greenlet_marker").count() == 1,
        "the walk went round a cycle:\n{bt}"
    );
}

#[test]
fn backtrace_while_an_orphan_unwinds_walks_into_its_killer() {
    // p starts a child and finishes, handing the child's handle out; then the child's last
    // handle goes while it is suspended, which kills it with us as its new parent and drops
    // p's last handle: p's stack is unmapped (pooling off). A backtrace taken by a destructor
    // during the child's unwind must walk into us, never into p's unmapped stack.
    grove::stack::pool::set_limit(0);
    let main = Greenlet::current();
    let bt = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let b = bt.clone();
    let p = Greenlet::builder()
        .stack_size(256 * 1024)
        .build(move |_| {
            let child = Greenlet::builder()
                .stack_size(1024 * 1024)
                .build(move |_| {
                    struct OnUnwind(std::rc::Rc<std::cell::RefCell<String>>);
                    impl Drop for OnUnwind {
                        fn drop(&mut self) {
                            *self.0.borrow_mut() = inside_greenlet_marker();
                        }
                    }
                    let _guard = OnUnwind(b);
                    let _ = main.switch(Box::new(()));
                    Box::new(()) as Value
                })
                .unwrap();
            child.switch(Box::new(())).unwrap();
            Box::new(child) as Value
        })
        .unwrap();
    #[inline(never)]
    fn orphan_killer(child: Greenlet) {
        drop(std::hint::black_box(child));
    }
    // p runs until its child switches to us: p is then suspended in child.switch.
    p.switch(Box::new(())).unwrap();
    // Resume p: its child.switch returns, and p finishes, handing us the child.
    let child = *p
        .switch(Box::new(()))
        .unwrap()
        .downcast::<Greenlet>()
        .unwrap();
    assert!(p.is_dead());
    drop(p); // the child's parent handle is now p's last
    orphan_killer(child);
    let bt = bt.borrow();
    assert!(bt.contains("orphan_killer"), "{bt}");
    grove::stack::pool::set_limit(grove::stack::pool::DEFAULT_LIMIT);
}
