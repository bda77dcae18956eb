//! A TCP port forwarder: every connection to LISTEN is relayed to TARGET, one greenlet per
//! direction, with `std::io::copy` (grove's sockets are `Read` and `Write`, also through `&`).
//!
//!     cargo run --release --example proxy -- 127.0.0.1:8000 example.com:80

use grove::net::TcpStream;
use grove::server::StreamServer;
use std::net::Shutdown;
use std::rc::Rc;

fn relay(from: Rc<TcpStream>, to: Rc<TcpStream>) -> u64 {
    let n = std::io::copy(&mut &*from, &mut &*to).unwrap_or(0);
    let _ = to.shutdown(Shutdown::Write); // pass the end of file on
    n
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target)) = (args.next(), args.next()) else {
        eprintln!("usage: proxy LISTEN_ADDR TARGET_ADDR");
        std::process::exit(2);
    };
    let server = StreamServer::bind(listen.as_str(), move |client, peer| {
        let upstream = match TcpStream::connect(target.as_str()) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("{peer}: cannot reach {target}: {e}");
                return;
            }
        };
        let (client, upstream) = (Rc::new(client), Rc::new(upstream));
        let up = {
            let (c, u) = (client.clone(), upstream.clone());
            grove::spawn(move || relay(c, u))
        };
        let down = relay(upstream, client);
        let up = up.get().unwrap_or(0);
        println!("{peer}: {up} bytes up, {down} bytes down");
    })?;
    println!("forwarding {} (Ctrl-C to stop)", server.local_addr()?);
    server.serve_forever()
}
