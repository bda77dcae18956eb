//! The main demonstration: an HTTP/1.1 server whose handler is plain synchronous Rust, one
//! greenlet per connection, thousands of connections on one thread.
//!
//!     cargo run --release --example hello_http            (127.0.0.1:8080, or ADDR as argument)
//!     curl http://127.0.0.1:8080/
//!     curl http://127.0.0.1:8080/hello/grove
//!     curl -d 'some data' http://127.0.0.1:8080/echo
//!     curl -N http://127.0.0.1:8080/countdown           (a streamed, chunked response)
//!     curl http://127.0.0.1:8080/slow?ms=500           (sleeps cooperatively: others go on)

use grove::http::{HttpServer, Request, Response, ResponseBody};
use http::{header, HeaderValue, Method, StatusCode};
use std::io::Write;
use std::time::Duration;

fn text(status: StatusCode, body: impl Into<ResponseBody>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn handle(mut req: Request) -> Response {
    let path = req.uri().path().to_string();
    // HEAD is answered as GET; the server sends the head without the body.
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        m => m.clone(),
    };
    match (method, path.as_str()) {
        (Method::GET, "/") => text(StatusCode::OK, "Hello, World!\n"),
        (Method::GET, p) if p.starts_with("/hello/") => {
            text(StatusCode::OK, format!("Hello, {}!\n", &p[7..]))
        }
        (Method::POST, "/echo") => match req.body_mut().read_to_vec(1 << 20) {
            Ok(body) => text(StatusCode::OK, body),
            Err(e) => text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
        },
        (Method::GET, "/countdown") => text(
            StatusCode::OK,
            ResponseBody::stream(|w| {
                for i in (0..=5).rev() {
                    writeln!(w, "{i}...")?;
                    w.flush()?; // each line leaves at once, as a chunk
                    grove::sleep(Duration::from_millis(200));
                }
                writeln!(w, "liftoff")
            }),
        ),
        (Method::GET, "/slow") => {
            let ms: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            grove::sleep(Duration::from_millis(ms.min(10_000)));
            text(StatusCode::OK, format!("slept {ms} ms\n"))
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = HttpServer::bind(addr.as_str())?.start(handle)?;
    println!(
        "grove hello_http serving on http://{} (Ctrl-C to stop)",
        server.local_addr()?
    );
    println!("  try: curl http://{}/hello/grove", server.local_addr()?);
    server.serve_forever()
}
