//! What a handler sees and returns: [`Request`] (an `http::Request` whose body is a streaming
//! [`Body`]) and [`Response`] (an `http::Response` whose body is bytes or a stream written
//! through a [`BodyWriter`](super::BodyWriter)), and the [`Handler`] trait, implemented for
//! every `Fn(Request) -> Response`.
#![forbid(unsafe_code)]

use super::server::ConnIo;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

/// A request as the handler gets it: method, target, version, headers, and a body that is
/// read from the connection as the handler reads it (never buffered whole).
pub type Request = http::Request<Body>;

/// A response as the handler returns it.
pub type Response = http::Response<ResponseBody>;

/// A request handler: a closure `Fn(Request) -> Response`, or your own type. It runs in the
/// connection's greenlet, as plain blocking code; a panic in it is answered with 500 and
/// closes that connection only.
///
/// ```
/// use grove::http::{Handler, Request, Response};
///
/// struct Hello;
/// impl Handler for Hello {
///     fn handle(&self, _req: Request) -> Response {
///         Response::new("hello".into())
///     }
/// }
/// let closure = |_req: Request| Response::new("hello".into());
/// fn takes(_: impl Handler) {}
/// takes(Hello);
/// takes(closure);
/// ```
pub trait Handler {
    /// Answers one request.
    fn handle(&self, req: Request) -> Response;
}

impl<F: Fn(Request) -> Response> Handler for F {
    fn handle(&self, req: Request) -> Response {
        self(req)
    }
}

impl Handler for Box<dyn Handler> {
    fn handle(&self, req: Request) -> Response {
        (**self).handle(req)
    }
}

impl Handler for Box<dyn Handler + Send + Sync> {
    fn handle(&self, req: Request) -> Response {
        (**self).handle(req)
    }
}

/// A reason phrase other than the status's canonical one, set as a response extension:
/// `resp.extensions_mut().insert(ReasonPhrase("Okie Dokie".into()))`. A CR, LF or NUL in it
/// is refused (the client gets 500), never written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonPhrase(pub String);

/// The request body: `Read` it to get the decoded bytes (`Content-Length` or chunked framing
/// undone), streamed from the socket. If the client sent `Expect: 100-continue`, the first
/// read sends `100 Continue`. A framing error or a read timeout is an `io::Error`; the server
/// then answers the error itself and closes the connection, whatever the handler returns.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Bytes(io::Cursor<Cow<'static, [u8]>>),
    Conn(Rc<ConnIo>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Bytes(c) => write!(f, "Body({} bytes)", c.get_ref().len()),
            Inner::Conn(_) => f.write_str("Body(streaming)"),
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body::from_bytes(&b""[..])
    }

    /// A body of these bytes (to call a handler directly, in tests).
    pub fn from_bytes(b: impl Into<Cow<'static, [u8]>>) -> Body {
        Body {
            inner: Inner::Bytes(io::Cursor::new(b.into())),
        }
    }

    pub(crate) fn from_conn(c: Rc<ConnIo>) -> Body {
        Body {
            inner: Inner::Conn(c),
        }
    }

    /// Reads the whole body, failing with `ErrorKind::InvalidData` past `limit` bytes.
    pub fn read_to_vec(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        let n = self.take(limit as u64 + 1).read_to_end(&mut v)?;
        if n > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("grove: the request body is longer than {limit} bytes"),
            ));
        }
        Ok(v)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Bytes(c) => c.read(buf),
            Inner::Conn(c) => c.read_body(buf),
        }
    }
}

/// The closure of a streamed body: writes the body through the writer it is given.
pub type StreamFn = Box<dyn FnOnce(&mut super::BodyWriter<'_>) -> io::Result<()>>;

/// A response body.
#[derive(Default)]
pub enum ResponseBody {
    /// No body (`Content-Length: 0`, or none for HEAD, 204, 304).
    #[default]
    Empty,
    /// Bytes whose length is known: sent with `Content-Length`, in the same write as the head
    /// when they fit.
    Bytes(Cow<'static, [u8]>),
    /// A body produced as it is sent: the closure writes it through a
    /// [`BodyWriter`](super::BodyWriter) (`Write`). Chunked for HTTP/1.1 clients, delimited by
    /// closing the connection for HTTP/1.0 ones; give a `Content-Length` header yourself to
    /// send it with a length instead.
    Stream(StreamFn),
}

impl ResponseBody {
    /// A streamed body (see [`ResponseBody::Stream`]).
    pub fn stream(f: impl FnOnce(&mut super::BodyWriter<'_>) -> io::Result<()> + 'static) -> Self {
        ResponseBody::Stream(Box::new(f))
    }

    /// The length, when known.
    pub fn len(&self) -> Option<usize> {
        match self {
            ResponseBody::Empty => Some(0),
            ResponseBody::Bytes(b) => Some(b.len()),
            ResponseBody::Stream(_) => None,
        }
    }

    /// Whether it is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseBody::Empty => f.write_str("Empty"),
            ResponseBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ResponseBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl From<()> for ResponseBody {
    fn from(_: ()) -> Self {
        ResponseBody::Empty
    }
}

impl From<&'static str> for ResponseBody {
    fn from(s: &'static str) -> Self {
        ResponseBody::Bytes(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<&'static [u8]> for ResponseBody {
    fn from(s: &'static [u8]) -> Self {
        ResponseBody::Bytes(Cow::Borrowed(s))
    }
}

impl From<String> for ResponseBody {
    fn from(s: String) -> Self {
        ResponseBody::Bytes(Cow::Owned(s.into_bytes()))
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(v: Vec<u8>) -> Self {
        ResponseBody::Bytes(Cow::Owned(v))
    }
}
