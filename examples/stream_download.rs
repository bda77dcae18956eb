//! A streaming download: the response body is produced as it is sent (chunked, never held in
//! memory), and a slow client only slows its own greenlet.
//!
//!     cargo run --release --example stream_download     (127.0.0.1:8082)
//!     curl -o /dev/null http://127.0.0.1:8082/download?mb=500
//!     curl http://127.0.0.1:8082/download?mb=1 | sha256sum

use grove::http::{HttpServer, Request, Response, ResponseBody};
use http::{header, HeaderValue, StatusCode};
use std::io::Write;

fn handle(req: Request) -> Response {
    let mb: u64 = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("mb="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .min(10_000);
    if req.uri().path() != "/download" {
        let mut r = Response::new("try /download?mb=10\n".into());
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    let mut r = Response::new(ResponseBody::stream(move |w| {
        // Deterministic bytes, 64 KiB at a time: the server frames each write as a chunk.
        let mut block = vec![0u8; 64 * 1024];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        for _ in 0..mb * 16 {
            w.write_all(&block)?;
        }
        Ok(())
    }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let server = HttpServer::bind(addr.as_str())?.start(handle)?;
    println!(
        "streaming downloads on http://{}/download?mb=N (Ctrl-C to stop)",
        server.local_addr()?
    );
    server.serve_forever()
}
