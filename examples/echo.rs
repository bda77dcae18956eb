//! An echo server: every connection gets its own greenlet, written as plain blocking code.
//!
//!     cargo run --release --example echo [ADDR]      (default 127.0.0.1:7007)
//!     printf 'hello\n' | nc 127.0.0.1 7007

use grove::server::StreamServer;
use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7007".into());
    let server = StreamServer::bind(addr.as_str(), |mut conn, peer| {
        println!("{peer} connected");
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("{peer}: {e}");
                    break;
                }
            }
        }
        println!("{peer} left");
    })?;
    println!("echo server on {} (Ctrl-C to stop)", server.local_addr()?);
    server.serve_forever()
}
