//! gevent's classic chat server: every line a client sends goes to every other client.
//! Each client has a reader greenlet (its handler) and a writer greenlet fed by a queue, so
//! a slow client never holds up the others.
//!
//!     cargo run --release --example chat [ADDR]      (default 127.0.0.1:7008)
//!     nc 127.0.0.1 7008      (in two terminals)

use grove::net::TcpStream;
use grove::server::StreamServer;
use grove::Queue;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::rc::Rc;

/// Everyone connected: their outgoing queues, by address.
type Room = Rc<RefCell<HashMap<SocketAddr, Rc<Queue<String>>>>>;

fn broadcast(room: &Room, from: SocketAddr, line: &str) {
    for (addr, q) in room.borrow().iter() {
        if *addr != from {
            // A client whose queue is full is too slow: it misses the line, nobody waits.
            let _ = q.try_put(line.to_string());
        }
    }
}

fn serve(room: &Room, conn: TcpStream, peer: SocketAddr) {
    let conn = Rc::new(conn);
    let outbox = Rc::new(Queue::bounded(100));
    room.borrow_mut().insert(peer, outbox.clone());
    let writer = {
        let (conn, outbox) = (conn.clone(), outbox.clone());
        grove::spawn(move || {
            for line in outbox.iter() {
                if (&*conn).write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    let _ = (&*conn).write_all(b"welcome to the grove chat\n");
    broadcast(room, peer, &format!("* {peer} joined\n"));
    for line in BufReader::new(&*conn).lines() {
        let Ok(line) = line else { break };
        broadcast(room, peer, &format!("{peer}: {line}\n"));
    }
    room.borrow_mut().remove(&peer);
    outbox.shutdown();
    let _ = writer.join();
    broadcast(room, peer, &format!("* {peer} left\n"));
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7008".into());
    let room: Room = Rc::default();
    let server = StreamServer::bind(addr.as_str(), move |conn, peer| serve(&room, conn, peer))?;
    println!("chat server on {} (Ctrl-C to stop)", server.local_addr()?);
    server.serve_forever()
}
