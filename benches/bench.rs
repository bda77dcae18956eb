//! grove's one benchmark runner. Every case prints its figure last, as
//! `RESULT <value> <unit> <label>` (the format of `../shared/peers`), so
//! `../shared/peers/compare.sh` can run it beside a peer and print the ratio.
//!
//! ```text
//! cargo run --release --example bench -- switch [N]   coroutine switch round trip     ns/round-trip
//! cargo run --release --example bench -- create [N]   pooled stack + run to the end   ns/greenlet
//! cargo run --release --example bench -- stacks [N]   N live greenlets on 64 KiB stacks bytes/greenlet
//! cargo run --release --example bench -- spawn [N]    spawn + join, batches of 1000   ns/task
//! cargo run --release --example bench -- yield [N]    two greenlets yielding N times   ns/yield
//! cargo run --release --example bench -- pingpong [N] two greenlets hand a value N times ns/handoff
//! cargo run --release --example bench -- xpingpong [N] the same across two hubs/threads ns/handoff
//! cargo run --release --example bench -- echo PORT    a one-thread echo server for ../shared/peers/load.sh echo
//! cargo run --release --example bench -- http PORT [W] hello-world HTTP/1.1 server (W worker hubs) for load.sh http
//! cargo run --release --example bench -- park [N]     N greenlets blocked on one Event  bytes/greenlet
//! cargo run --release --example bench -- timers [N]   N greenlets sleep U(0,1) s       ms (p99 lateness)
//! ```
//!
//! * `pingpong` hands a number back and forth between two greenlets, N times each way,
//!   through the hub-level primitives: once over two rendezvous [`grove::Channel`]s and once
//!   over two FIFO [`grove::Queue`]s (both printed; the RESULT is the faster). Every handoff
//!   parks one greenlet and wakes the other through the hub. Peer: `peers tokio-pingpong`
//!   (unbounded mpsc channels), which also counts 2N handoffs.
//! * `xpingpong` does the same between the main greenlets of two hubs on two threads, over
//!   [`grove::sync::mpsc`]: each handoff wakes the other hub's poller (eventfd or pipe).
//! * `park` (default N = 100000; 1000000 works at the default `vm.max_map_count`) spawns N
//!   greenlets on 64 KiB stacks that all block on one `Event`, reports the growth
//!   of the process's RSS per parked greenlet, then sets the event and joins them all. Peer:
//!   `peers tokio-park` (tasks blocked on a semaphore).
//! * `timers` also prints when the sleepers started (first to last) and how many woke more
//!   than 5 ms late with a deadline before and after the last start: equally ready greenlets
//!   run in FIFO order, so one woken while others are still starting waits behind them.
//!
//! * `switch` prints three figures: the bare assembly (`grove::arch`, a hand-rolled pair of
//!   contexts), the raw greenlet (`Greenlet::switch`: symmetric, boxed `dyn Any` values, the
//!   current greenlet tracked for the hub and the overflow handler) and, as the RESULT, the
//!   typed coroutine (`grove::coroutine`), the same API shape as the peer, corosensei's
//!   `Coroutine<u64, u64, ()>`.
//!
//! Micro cases report the median of 7 in-process repetitions, like the peers.

use grove::greenlet::{Greenlet, Value};
use std::hint::black_box;
use std::time::Instant;

const REPS: usize = 7;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("argument {i} must be a number, got {s:?}"))
        })
        .unwrap_or(default)
}

fn result(samples: &mut [f64], unit: &str, label: &str) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (best, median) = (samples[0], samples[samples.len() / 2]);
    println!(
        "{label}: best {best:.2} median {median:.2} {unit} (n={})",
        samples.len()
    );
    println!("RESULT {median:.3} {unit} {label}");
}

fn ns_per(t: Instant, ops: u64) -> f64 {
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line[6..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS value");
    kib * 1024
}

fn unit() -> Value {
    Box::new(())
}

/// The bare context switch, main <-> a fresh context, through `grove::arch` alone.
fn switch_arch(n: u64) -> f64 {
    use grove::arch::{self, Context};
    use grove::stack::{MmapStack, Stack};
    struct Pair {
        main: Context,
        co: Context,
    }
    unsafe extern "C" fn body(mut x: usize, data: *mut u8) -> ! {
        let p = data as *mut Pair;
        loop {
            // SAFETY: `p` outlives the loop (main keeps it until it stops switching here).
            x = unsafe { arch::switch_return(x.wrapping_add(1), &mut (*p).co, &(*p).main) };
        }
    }
    let stack = MmapStack::new(64 * 1024).expect("stack");
    let mut pair = Box::new(Pair {
        main: Context::running(),
        // SAFETY: a fresh stack of ours; body never returns.
        co: unsafe { Context::fresh(stack.top(), body, std::ptr::null_mut()) },
    });
    let p: *mut Pair = &mut *pair;
    // SAFETY: fresh context on a live stack: re-made with the real data pointer.
    unsafe { (*p).co = Context::fresh(stack.top(), body, p as *mut u8) };
    let mut v = 0usize;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: `co` is fresh or suspended in `body`, its stack alive.
        v = unsafe { arch::switch(black_box(v), &mut (*p).main, &(*p).co) };
    }
    let r = ns_per(t, n);
    black_box(v);
    // The context is left suspended in `body`; its stack is unmapped when `stack` drops, and
    // nothing on it needs dropping.
    r
}

fn switch(n: u64) {
    let mut bare = Vec::new();
    for _ in 0..REPS {
        bare.push(switch_arch(n));
    }
    bare.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "arch::switch (bare asm): median {:.2} ns/round-trip",
        bare[REPS / 2]
    );

    let main = Greenlet::current();
    let g = Greenlet::new(move |mut v| loop {
        v = main.switch(v).expect("main is alive");
    })
    .expect("greenlet");
    let mut samples = Vec::new();
    let mut v = unit();
    for _ in 0..REPS {
        let t = Instant::now();
        for _ in 0..n {
            v = g.switch(black_box(v)).expect("switch");
        }
        samples.push(ns_per(t, n));
    }
    black_box(v);
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "grove greenlet switch (symmetric, boxed values, current tracked): best {:.2} median {:.2} ns/round-trip",
        samples[0],
        samples[REPS / 2]
    );

    // The like-for-like of the peer (corosensei's `Coroutine<u64, u64, ()>`): a typed,
    // asymmetric coroutine that adds one and suspends.
    use grove::coroutine::{Coroutine, CoroutineResult};
    let mut co: Coroutine<u64, u64, ()> = Coroutine::new(|y, mut x: u64| loop {
        x = y.suspend(x.wrapping_add(1));
    })
    .expect("coroutine");
    let mut samples = Vec::new();
    let mut v = 0u64;
    for _ in 0..REPS {
        let t = Instant::now();
        for _ in 0..n {
            match co.resume(black_box(v)) {
                CoroutineResult::Yield(r) => v = r,
                CoroutineResult::Return(()) => unreachable!(),
            }
        }
        samples.push(ns_per(t, n));
    }
    black_box(v);
    result(&mut samples, "ns/round-trip", "grove coroutine switch");
}

fn create(n: u64) {
    let mut samples = Vec::new();
    // Warm the pool.
    drop(Greenlet::new(|v| v).unwrap().switch(unit()));
    for _ in 0..REPS {
        let t = Instant::now();
        for i in 0..n {
            let g = Greenlet::new(move |v| {
                black_box(i);
                v
            })
            .expect("greenlet");
            black_box(g.switch(unit()).expect("run"));
        }
        samples.push(ns_per(t, n));
    }
    // The typed coroutine, for comparison (corosensei's case is this shape): printed, not the
    // RESULT, which stays the greenlet's.
    let mut co_samples = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        for i in 0..n {
            let mut co = grove::coroutine::Coroutine::<(), (), u64>::new(move |_, ()| black_box(i))
                .expect("coroutine");
            black_box(co.resume(()));
        }
        co_samples.push(ns_per(t, n));
    }
    co_samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "grove coroutine create from pool + run to completion: median {:.2} ns",
        co_samples[REPS / 2]
    );
    result(
        &mut samples,
        "ns/greenlet",
        "grove create from pool + run to completion",
    );
}

fn stacks(n: u64) {
    grove::stack::pool::set_limit(0);
    let before = rss_bytes();
    let t = Instant::now();
    let mut gs = Vec::with_capacity(n as usize);
    let main = Greenlet::current();
    for i in 0..n {
        let m = main.clone();
        let g = Greenlet::builder()
            .stack_size(64 * 1024)
            .build(move |v| {
                // Park: hand control back and wait to be resumed (or killed).
                let v = m.switch(v).unwrap_or_else(|_| unit());
                black_box(i);
                v
            })
            .unwrap_or_else(|e| panic!("greenlet {i} of {n}: {e}"));
        g.switch(unit()).expect("park");
        gs.push(g);
    }
    let after = rss_bytes();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0);
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!(
        "{n} live greenlets on 64 KiB guard-paged stacks in {:.2?}; {maps} memory mappings; RSS +{} MiB",
        t.elapsed(),
        (after - before) >> 20
    );
    let t = Instant::now();
    drop(gs); // kills every parked greenlet: each unwinds and returns its stack
    println!("killed and released all {n} in {:.2?}", t.elapsed());
    result(
        &mut [per],
        "bytes/greenlet",
        "grove idle greenlet RSS (64 KiB stacks)",
    );
}

fn spawn_case(n: u64) {
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        for _ in 0..n / 1000 {
            let gs: Vec<_> = (0..1000).map(|_| grove::spawn(|| ())).collect();
            for g in gs {
                g.join().expect("join");
            }
        }
        samples.push(ns_per(t, n));
    }
    result(&mut samples, "ns/task", "grove spawn+join");
}

fn yield_case(n: u64) {
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        let a = grove::spawn(move || {
            for _ in 0..n {
                grove::yield_now()
            }
        });
        let b = grove::spawn(move || {
            for _ in 0..n {
                grove::yield_now()
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        samples.push(ns_per(t, 2 * n));
    }
    result(&mut samples, "ns/yield", "grove yield_now");
}

/// The two ends of a ping-pong: a way to hand a value over, and to wait for one.
trait Pipe: 'static {
    fn send(&self, v: u64);
    fn recv(&self) -> u64;
}

impl Pipe for grove::Queue<u64> {
    fn send(&self, v: u64) {
        self.put(v).unwrap()
    }
    fn recv(&self) -> u64 {
        self.get().unwrap()
    }
}

impl Pipe for grove::Channel<u64> {
    fn send(&self, v: u64) {
        self.put(v).unwrap()
    }
    fn recv(&self) -> u64 {
        self.get().unwrap()
    }
}

/// Two greenlets hand a number back and forth `n` times each way through two pipes made by
/// `make`; returns the median ns per handoff.
fn pingpong_over<P: Pipe>(n: u64, make: fn() -> P) -> f64 {
    use std::rc::Rc;
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let (to_b, to_a) = (Rc::new(make()), Rc::new(make()));
        let t = Instant::now();
        let b = {
            let (to_b, to_a) = (to_b.clone(), to_a.clone());
            grove::spawn(move || {
                for _ in 0..n {
                    let v = to_b.recv();
                    to_a.send(v + 1);
                }
            })
        };
        let a = grove::spawn(move || {
            for i in 0..n {
                to_b.send(i);
                assert_eq!(to_a.recv(), i + 1);
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        samples.push(ns_per(t, 2 * n));
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[REPS / 2]
}

/// Ping-pong between two greenlets over `Channel` and over the FIFO `Queue`; the RESULT is
/// the faster.
fn pingpong_case(n: u64) {
    let channel = pingpong_over(n, grove::Channel::<u64>::new);
    println!("grove Channel ping-pong: median {channel:.2} ns/handoff");
    let queue = pingpong_over(n, grove::Queue::<u64>::new);
    println!("grove Queue ping-pong: median {queue:.2} ns/handoff");
    let (best, label) = if channel <= queue {
        (channel, "grove Channel ping-pong")
    } else {
        (queue, "grove Queue ping-pong")
    };
    println!("RESULT {best:.3} ns/handoff {label}");
}

/// Ping-pong between greenlets of two hubs on two threads, over `sync::mpsc`: every handoff
/// wakes the other hub through its poller.
fn xpingpong_case(n: u64) {
    use grove::sync::mpsc;
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let (to_b, from_a) = mpsc::channel::<u64>();
        let (to_a, from_b) = mpsc::channel::<u64>();
        let b = std::thread::spawn(move || {
            while let Ok(v) = from_a.recv() {
                to_a.send(v + 1).unwrap();
            }
        });
        let t = Instant::now();
        for i in 0..n {
            to_b.send(i).unwrap();
            assert_eq!(from_b.recv().unwrap(), i + 1);
        }
        samples.push(ns_per(t, 2 * n));
        drop(to_b);
        b.join().unwrap();
    }
    result(
        &mut samples,
        "ns/handoff",
        "grove mpsc ping-pong across two hubs",
    );
}

/// `n` greenlets blocked on one `Event`: the RSS each costs, then all released and joined.
fn park_case(n: u64) {
    use std::cell::Cell;
    use std::rc::Rc;
    // Make the hub (and warm the allocator) before the baseline.
    grove::spawn(|| ()).join().unwrap();
    let ev = Rc::new(grove::Event::new());
    let parked = Rc::new(Cell::new(0u64));
    let before = rss_bytes();
    let t = Instant::now();
    let mut gs = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (ev, parked) = (ev.clone(), parked.clone());
        let g = grove::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                parked.set(parked.get() + 1);
                ev.wait().expect("set once all are parked");
            })
            .unwrap_or_else(|e| panic!("greenlet {i} of {n}: {e}"));
        gs.push(g);
    }
    let spawned = t.elapsed();
    // Every greenlet runs once, up to its wait.
    while parked.get() < n {
        grove::yield_now();
    }
    let after = rss_bytes();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0);
    let per = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "{n} greenlets spawned in {spawned:.2?}, all parked after {:.2?}; {maps} memory mappings; RSS +{} MiB",
        t.elapsed(),
        after.saturating_sub(before) >> 20
    );
    let t = Instant::now();
    ev.set();
    for g in gs {
        g.join().unwrap();
    }
    println!("woken and joined all {n} in {:.2?}", t.elapsed());
    result(&mut [per], "bytes/greenlet", "grove parked greenlet RSS");
}

/// The peers' deterministic U(0,1) sequence, so every runtime sleeps the same durations.
fn uniform(i: u64) -> std::time::Duration {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    std::time::Duration::from_nanos(x % 1_000_000_000)
}

fn timers_case(n: u64) {
    use std::cell::RefCell;
    use std::rc::Rc;
    // Per sleeper: when it started and when its sleep was due (ms since t0), how late it woke.
    let rec = Rc::new(RefCell::new(Vec::with_capacity(n as usize)));
    let t0 = Instant::now();
    let gs: Vec<_> = (0..n)
        .map(|i| {
            let rec = rec.clone();
            grove::Builder::new()
                .stack_size(32 * 1024)
                .spawn(move || {
                    let d = uniform(i);
                    let start = Instant::now();
                    grove::sleep(d);
                    let lateness = start.elapsed().saturating_sub(d);
                    let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
                    rec.borrow_mut()
                        .push((ms(start), ms(start + d), lateness.as_secs_f64() * 1e3));
                })
                .expect("spawn")
        })
        .collect();
    let spawned = t0.elapsed();
    for g in gs {
        g.join().unwrap();
    }
    let rec = rec.borrow();
    // Equally ready greenlets run in FIFO order, so a sleeper due before the last one started
    // waits behind those still starting: how long the start phase lasts matters.
    let first = rec.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    let last = rec.iter().map(|r| r.0).fold(0.0, f64::max);
    let slow = |phase: &dyn Fn(f64) -> bool| rec.iter().filter(|r| phase(r.1) && r.2 > 5.0).count();
    println!(
        "spawned {n} in {:.2?}; they started from {first:.1} to {last:.1} ms; woken > 5 ms late: {} due before the last start, {} after",
        spawned,
        slow(&|due| due < last),
        slow(&|due| due >= last)
    );
    let mut l: Vec<f64> = rec.iter().map(|r| r.2).collect();
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = l[l.len() / 2];
    let p99 = l[l.len() * 99 / 100];
    println!(
        "{n} sleepers done in {:.3} s wall; lateness p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
        t0.elapsed().as_secs_f64(),
        l[l.len() - 1]
    );
    println!("RESULT {p99:.3} ms grove timers p99 lateness");
}

/// A one-thread TCP echo server on 127.0.0.1:`port` (a handler greenlet per connection),
/// for `../shared/peers/load.sh echo`, which measures it from outside. Runs until killed.
fn echo_server(port: u16) {
    use std::io::{Read, Write};
    let server = grove::server::StreamServer::bind(("127.0.0.1", port), |mut conn, _| {
        let _ = conn.set_nodelay(true);
        let mut buf = [0u8; 4096];
        loop {
            let n = match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if conn.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    })
    .expect("bind the echo port");
    println!("grove echo server on {}", server.local_addr().unwrap());
    server.serve_forever().expect("serve");
}

/// The hello-world HTTP/1.1 server (13-byte body, as the peers answer) on 127.0.0.1:`port`,
/// on `workers` hubs, for `../shared/peers/load.sh http`. No access log (as the peers have
/// none). Runs until killed.
fn http_server(port: u16, workers: usize) {
    use grove::http::{HttpServer, Request, Response};
    fn hello(_: Request) -> Response {
        let mut r = Response::new("Hello, World!".into());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        r
    }
    let server = HttpServer::bind(("127.0.0.1", port))
        .expect("resolve")
        .no_access_log()
        .workers(workers);
    if workers > 1 {
        let w = server.spawn_workers(hello).expect("bind the http port");
        println!("grove http on {} ({workers} hubs)", w.local_addr());
        loop {
            std::thread::park();
        }
    }
    let running = server.start(hello).expect("bind the http port");
    println!("grove http on {}", running.local_addr().unwrap());
    running.serve_forever().expect("serve");
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "switch" => switch(arg(2, 10_000_000)),
        "create" => create(arg(2, 1_000_000)),
        "stacks" => stacks(arg(2, 100_000)),
        "spawn" => spawn_case(arg(2, 100_000)),
        "yield" => yield_case(arg(2, 1_000_000)),
        "pingpong" => pingpong_case(arg(2, 1_000_000)),
        "xpingpong" => xpingpong_case(arg(2, 100_000)),
        "echo" => echo_server(arg(2, 18093) as u16),
        "http" => http_server(arg(2, 18094) as u16, arg(3, 1) as usize),
        "park" => park_case(arg(2, 100_000)),
        "timers" => timers_case(arg(2, 100_000)),
        _ => {
            eprintln!(
                "usage: bench switch|create|stacks|spawn|yield|pingpong|xpingpong|park|timers [N] | echo PORT | http PORT [WORKERS]   (see benches/bench.rs)"
            );
            std::process::exit(2);
        }
    }
}
