//! A small JSON API over an in-memory store: handlers are synchronous, state is shared by
//! the greenlets of one hub through `Rc<RefCell<..>>` (no locks: greenlets never run at once).
//!
//!     cargo run --release --example json_api            (127.0.0.1:8081)
//!     curl -d '{"name":"apple","qty":3}' http://127.0.0.1:8081/items
//!     curl http://127.0.0.1:8081/items
//!     curl http://127.0.0.1:8081/items/1
//!     curl -X DELETE http://127.0.0.1:8081/items/1

use grove::http::{HttpServer, Request, Response};
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Default)]
struct Store {
    items: BTreeMap<u64, Value>,
    next: u64,
}

fn json_response(status: StatusCode, v: Value) -> Response {
    let mut r = Response::new(format!("{v}\n").into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, json!({ "error": msg }))
}

fn handle(store: &RefCell<Store>, mut req: Request) -> Response {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let id = path.get(1).map(|s| s.parse::<u64>());
    match (req.method().clone(), path.first().map(String::as_str), id) {
        (Method::GET, Some("items"), None) => {
            let s = store.borrow();
            let all: Vec<Value> = s
                .items
                .iter()
                .map(|(id, v)| json!({ "id": id, "item": v }))
                .collect();
            json_response(StatusCode::OK, Value::Array(all))
        }
        (Method::POST, Some("items"), None) => {
            let body = match req.body_mut().read_to_vec(64 * 1024) {
                Ok(b) => b,
                Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
            };
            let item: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
            };
            let mut s = store.borrow_mut();
            s.next += 1;
            let id = s.next;
            s.items.insert(id, item.clone());
            json_response(StatusCode::CREATED, json!({ "id": id, "item": item }))
        }
        (Method::GET, Some("items"), Some(Ok(id))) => match store.borrow().items.get(&id) {
            Some(v) => json_response(StatusCode::OK, json!({ "id": id, "item": v })),
            None => error(StatusCode::NOT_FOUND, "no such item"),
        },
        (Method::DELETE, Some("items"), Some(Ok(id))) => {
            match store.borrow_mut().items.remove(&id) {
                Some(_) => json_response(StatusCode::OK, json!({ "deleted": id })),
                None => error(StatusCode::NOT_FOUND, "no such item"),
            }
        }
        (_, Some("items"), Some(Err(_))) => error(StatusCode::BAD_REQUEST, "the id is a number"),
        _ => error(StatusCode::NOT_FOUND, "try /items"),
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let store = Rc::new(RefCell::new(Store::default()));
    let server = HttpServer::bind(addr.as_str())?.start(move |req| handle(&store, req))?;
    println!(
        "JSON API on http://{}/items (Ctrl-C to stop)",
        server.local_addr()?
    );
    server.serve_forever()
}
