use grove::greenlet::Greenlet;
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let n = 2_000_000u64;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            let s = grove::stack::pool::take(256 * 1024).unwrap();
            grove::stack::pool::give(black_box(s), usize::MAX);
        }
        let a = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for i in 0..n {
            let g = Greenlet::new(move |v| {
                black_box(i);
                v
            })
            .unwrap();
            drop(black_box(g));
        }
        let b = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for i in 0..n {
            let g = Greenlet::new(move |v| {
                black_box(i);
                v
            })
            .unwrap();
            black_box(g.switch(Box::new(())).unwrap());
        }
        let c = t.elapsed().as_nanos() as f64 / n as f64;
        println!("pool take+give {a:.1} ns; create+drop unstarted {b:.1} ns; create+run {c:.1} ns");
    }
}
