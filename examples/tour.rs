//! The grove tour: what the runtime can do, one short scene at a time. Later layers (the hub,
//! sockets, HTTP) add their scenes here; this first part shows raw greenlets, the primitive
//! everything else stands on.
//!
//!     cargo run --release --example tour

use grove::greenlet::{Greenlet, State, SwitchError, Value};
use std::time::Instant;

fn val<T: 'static>(v: T) -> Value {
    Box::new(v)
}

fn main() {
    println!("grove tour, part 1: raw greenlets\n");

    // 1. Two greenlets taking turns: a producer hands numbers to main, one at a time.
    let main = Greenlet::current();
    let m = main.clone();
    let producer = Greenlet::builder()
        .name("producer")
        .build(move |_| {
            for i in 1..=3 {
                println!("  producer: handing over {i}");
                m.switch(val(i)).expect("main is alive");
            }
            val("producer done")
        })
        .expect("a stack from the pool");
    loop {
        let v = producer.switch(val(())).expect("switch");
        match v.downcast::<i32>() {
            Ok(i) => println!("  main: got {i}, switching back"),
            Err(v) => {
                println!(
                    "  main: producer finished with {:?}",
                    v.downcast::<&str>().unwrap()
                );
                break;
            }
        }
    }
    println!("  producer is now {:?}\n", producer.state());

    // 2. A panic inside a greenlet is caught and handed to its parent.
    std::panic::set_hook(Box::new(|_| {}));
    let faulty = Greenlet::builder()
        .name("faulty")
        .build(|_| -> Value { panic!("disk on fire") })
        .unwrap();
    match faulty.switch(val(())) {
        Err(e @ SwitchError::Panicked(_)) => println!("  caught: {e}"),
        other => println!("  unexpected: {other:?}"),
    }
    let _ = std::panic::take_hook();

    // 3. Killing a suspended greenlet unwinds its stack: its destructors run.
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            println!("  sleeper: my destructor ran during the kill");
        }
    }
    let m = main.clone();
    let sleeper = Greenlet::builder()
        .name("sleeper")
        .build(move |_| {
            let _n = Noisy;
            let _ = m.switch(val(()));
            unreachable!("killed while suspended")
        })
        .unwrap();
    sleeper.switch(val(())).unwrap();
    println!("  sleeper is {:?}; killing it", sleeper.state());
    let _ = sleeper.throw();
    assert_eq!(sleeper.state(), State::Finished);

    // 4. Many at once: 10,000 greenlets each suspended mid-function, then resumed to finish.
    let t = Instant::now();
    let gs: Vec<Greenlet> = (0..10_000u64)
        .map(|i| {
            let m = main.clone();
            let g = Greenlet::builder()
                .stack_size(64 * 1024)
                .build(move |_| {
                    let _ = m.switch(val(()));
                    val(i * 2)
                })
                .unwrap();
            g.switch(val(())).unwrap();
            g
        })
        .collect();
    let sum: u64 = gs
        .iter()
        .map(|g| *g.switch(val(())).unwrap().downcast::<u64>().unwrap())
        .sum();
    println!(
        "\n  10,000 greenlets parked and resumed on guard-paged stacks in {:.1?}; sum of results {sum}",
        t.elapsed()
    );

    // 5. The switch itself.
    let m = main.clone();
    let echo = Greenlet::new(move |mut v| loop {
        v = m.switch(v).unwrap();
    })
    .unwrap();
    let n = 2_000_000;
    let t = Instant::now();
    let mut v = val(());
    for _ in 0..n {
        v = echo.switch(v).unwrap();
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("  a switch round trip (main -> greenlet -> main) takes {ns:.1} ns here");

    // 5b. The same switch under a typed, asymmetric API: a coroutine (a generator here). Values
    //     go by pointer, not boxed, and there is no current greenlet to keep: the cheapest way
    //     onto another stack, and one that needs no std (bring a StaticStack).
    use grove::coroutine::{Coroutine, CoroutineResult};
    let mut squares = Coroutine::new(|y, limit: u64| {
        for i in 1..=limit {
            y.suspend(i * i);
        }
        "no more"
    })
    .unwrap();
    let mut got = Vec::new();
    let end = loop {
        match squares.resume(5) {
            CoroutineResult::Yield(v) => got.push(v),
            CoroutineResult::Return(r) => break r,
        }
    };
    println!("  a coroutine yielded {got:?}, then returned {end:?}");

    // 6. The hub: greenlets scheduled by this thread's event loop. Spawned greenlets start on
    //    a later loop turn; sleeping ones let the others run.
    println!("\ngrove tour, part 2: the hub\n");
    let t = Instant::now();
    let sleepers: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            grove::Builder::new()
                .name(format!("sleeper-{ms}"))
                .spawn(move || {
                    grove::sleep(std::time::Duration::from_millis(ms));
                    println!("  sleeper-{ms} woke after {:.1?}", t.elapsed());
                    ms
                })
                .expect("spawn")
        })
        .collect();
    println!("  spawned 3 sleepers; none has run yet (spawn never runs at once)");
    let total: u64 = sleepers.into_iter().map(|g| g.get().unwrap()).sum();
    println!(
        "  all three slept concurrently: {total} ms of sleeping in {:.1?} of wall time",
        t.elapsed()
    );

    // 7. Kill, links, timeouts: gevent's Greenlet API.
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;
    let worker = grove::Builder::new()
        .name("worker")
        .spawn(|| {
            grove::sleep(Duration::from_secs(3600));
            "never"
        })
        .expect("spawn");
    worker.link_error(|e| println!("  link: the worker ended with an error: {e}"));
    grove::yield_now(); // it starts and parks in its hour-long sleep
    worker.kill(); // unwinds it where it sleeps; its link fires
    let r = grove::timeout(Duration::from_millis(20), || {
        grove::sleep(Duration::from_secs(3600));
    });
    println!("  a one-hour sleep inside timeout(20 ms): {r:?}");

    // 8. Waiting for whichever finishes first, and what every greenlet is doing.
    let ev = Rc::new(grove::Event::new());
    let e = ev.clone();
    let fast = grove::spawn(|| grove::sleep(Duration::from_millis(5)));
    let setter = grove::Builder::new()
        .name("setter")
        .spawn(move || {
            grove::sleep(Duration::from_millis(15));
            e.set();
        })
        .expect("spawn");
    grove::yield_now();
    println!(
        "  run_info while they wait:\n{}",
        indent(&grove::debug::run_info().to_string())
    );
    let order: Vec<usize> = grove::iwait(&[&*ev as &dyn grove::Waitable, &fast], None).collect();
    println!("  iwait yielded [event, fast] in the order they became ready: {order:?}");
    setter.join().unwrap();

    // 9. Greenlet-local storage.
    grove::greenlet_local! { static HITS: Cell<u32> = Cell::new(0); }
    let gs: Vec<_> = (1..=3)
        .map(|n| {
            grove::spawn(move || {
                for _ in 0..n {
                    HITS.with(|h| h.set(h.get() + 1));
                    grove::yield_now();
                }
                HITS.with(|h| h.get())
            })
        })
        .collect();
    let counts: Vec<u32> = gs.into_iter().map(|g| g.get().unwrap()).collect();
    println!("  three greenlets counted into their own greenlet_local: {counts:?}");

    // 10. A pipeline: a producer feeds a bounded queue, a pool of four workers processes the
    //     items (at most four at once), and results come back in completion order.
    println!("\ngrove tour, part 3: queues, pools, threads\n");
    let q = Rc::new(grove::Queue::bounded(4));
    let producer = {
        let q = q.clone();
        grove::spawn(move || {
            for job in 1..=12u64 {
                q.put(job).unwrap(); // waits whenever four jobs are queued
            }
            q.shutdown(); // consumers finish what is queued, then stop
        })
    };
    let pool = grove::pool::Pool::new(4);
    let t = Instant::now();
    let results: Vec<u64> = pool
        .imap_unordered(
            |job: u64| {
                grove::sleep(Duration::from_millis(13 - job)); // later jobs are quicker
                job * job
            },
            q.iter(),
            4,
        )
        .map(Result::unwrap)
        .collect();
    producer.join().unwrap();
    println!(
        "  12 jobs through a queue of 4 and a pool of 4 in {:.1?}: {results:?}",
        t.elapsed()
    );

    // 11. Across threads: a plain thread sets an AsyncResult and sends over an mpsc channel;
    //     the greenlets here wait cooperatively and wake when the other thread delivers.
    let answer = grove::AsyncResult::new();
    let (tx, rx) = grove::sync::mpsc::channel();
    let a = answer.clone();
    let th = std::thread::spawn(move || {
        for i in 0..3 {
            tx.send(format!("line {i} from a thread")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        a.set(42).unwrap();
    });
    let reader = grove::spawn(move || rx.iter().collect::<Vec<_>>());
    println!("  an AsyncResult set by another thread: {:?}", answer.get());
    println!("  an mpsc channel fed by it: {:?}", reader.get().unwrap());
    th.join().unwrap();

    // 12. Sockets and servers: an echo server with a greenlet per connection, and 100 client
    //     greenlets talking to it at once, all on this one thread.
    println!("\ngrove tour, part 4: sockets, servers, the thread pool\n");
    use std::io::{Read, Write};
    let server = grove::server::StreamServer::bind("127.0.0.1:0", |mut conn, _| {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            if conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
    .expect("bind");
    server.start().expect("start");
    let addr = server.local_addr().unwrap();
    let t = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            grove::spawn(move || {
                let mut c = grove::net::TcpStream::connect(addr).unwrap();
                let msg = format!("hello from client {i}");
                let mut back = vec![0u8; msg.len()];
                for _ in 0..10 {
                    c.write_all(msg.as_bytes()).unwrap();
                    c.read_exact(&mut back).unwrap();
                }
                back == msg.as_bytes()
            })
        })
        .collect();
    let ok = clients
        .into_iter()
        .map(|c| c.get().unwrap())
        .filter(|&b| b)
        .count();
    println!(
        "  100 clients x 10 round trips through an echo server on {addr}: {ok} all correct, {:.1?}",
        t.elapsed()
    );
    server.stop(Duration::from_secs(1));

    // 13. Blocking work on the thread pool, and a name lookup there, while greenlets run.
    let ticker = grove::spawn(|| {
        let mut n = 0;
        for _ in 0..5 {
            grove::sleep(Duration::from_millis(2));
            n += 1;
        }
        n
    });
    let sum = grove::threadpool::run(|| {
        std::thread::sleep(Duration::from_millis(15)); // blocks a pool thread, not the hub
        (1..=100u64).sum::<u64>()
    })
    .unwrap();
    let local = grove::net::lookup_host("localhost", 80).unwrap();
    println!(
        "  a blocking job on the pool returned {sum} while a ticker ran {} times; localhost is {:?}",
        ticker.get().unwrap(),
        local.first().map(|a| a.ip())
    );

    // 14. HTTP: a handler written as plain synchronous Rust, served on this hub; a client
    //     greenlet asks it twice over one kept-alive connection.
    println!("\ngrove tour, part 5: HTTP\n");
    let http = grove::http::HttpServer::bind("127.0.0.1:0")
        .expect("resolve")
        .no_access_log()
        .start(|req: grove::http::Request| {
            grove::http::Response::new(format!("hello from {}\n", req.uri().path()).into())
        })
        .expect("start");
    let addr = http.local_addr().unwrap();
    let mut c = grove::net::TcpStream::connect(addr).unwrap();
    for path in ["/a", "/b"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: tour\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        println!(
            "  GET {path} -> {:?} ... {:?}",
            text.lines().next().unwrap_or(""),
            text.rsplit("\r\n\r\n").next().unwrap_or("").trim_end()
        );
    }
    drop(c);
    http.shutdown(Duration::from_secs(1));
    println!("  (the main demonstration: cargo run --release --example hello_http)");

    println!("\nsee `cargo run --release --example bench -- switch` for the measured figures");
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
