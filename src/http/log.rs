//! The access log: one [`AccessRecord`] per response, given to a hook; the default hook
//! writes the Common Log Format to stderr, as web servers (and gevent's pywsgi) do:
//!
//! ```text
//! 127.0.0.1 - - [01/Dec/2026:07:19:07 +0000] "GET /hello HTTP/1.1" 200 13
//! 127.0.0.1 - - [01/Dec/2026:07:19:08 +0000] "-" 400 25
//! ```
//!
//! The second line is a request rejected before its request line could be read (malformed,
//! too long, headers too large, an unsupported version): it is logged too, with `"-"` where
//! the request line goes, as Apache and nginx do.
#![forbid(unsafe_code)]

use super::date::{civil_from_days, MONTHS};
use http::{Method, StatusCode, Uri, Version};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A request's first line, as the access log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The request method.
    pub method: Method,
    /// The request target.
    pub target: Uri,
    /// The request version.
    pub version: Version,
}

/// What the access log hook hears about each response.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// The client.
    pub peer: SocketAddr,
    /// The request line, or `None` for a request rejected before one was read (its error
    /// response is logged all the same).
    pub request: Option<RequestLine>,
    /// The status sent.
    pub status: StatusCode,
    /// Body bytes sent (not counting the head or chunk framing).
    pub bytes: u64,
    /// When the request head was complete (for a rejected request: when it was rejected).
    pub time: SystemTime,
    /// From the request head to the end of the response (rejected: the error's sending).
    pub elapsed: Duration,
}

impl fmt::Display for AccessRecord {
    /// The Common Log Format line (no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (y, m, d) = civil_from_days(secs / 86_400);
        let rem = secs % 86_400;
        write!(
            f,
            "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] ",
            self.peer.ip(),
            d,
            MONTHS[m - 1],
            y,
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
        )?;
        match &self.request {
            Some(l) => write!(f, "\"{} {} {:?}\"", l.method, l.target, l.version)?,
            None => f.write_str("\"-\"")?,
        }
        write!(f, " {} {}", self.status.as_u16(), self.bytes)
    }
}

/// The default access log: the record's Common Log Format line on stderr.
pub fn log_to_stderr(r: &AccessRecord) {
    eprintln!("{r}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_log_format() {
        let mut r = AccessRecord {
            peer: "127.0.0.1:5555".parse().unwrap(),
            request: Some(RequestLine {
                method: Method::GET,
                target: "/hello?x=1".parse().unwrap(),
                version: Version::HTTP_11,
            }),
            status: StatusCode::OK,
            bytes: 13,
            time: UNIX_EPOCH + Duration::from_secs(1_795_937_947),
            elapsed: Duration::from_millis(1),
        };
        assert_eq!(
            r.to_string(),
            "127.0.0.1 - - [29/Nov/2026:07:39:07 +0000] \"GET /hello?x=1 HTTP/1.1\" 200 13"
        );
        r.request = None;
        r.status = StatusCode::BAD_REQUEST;
        r.bytes = 25;
        assert_eq!(
            r.to_string(),
            "127.0.0.1 - - [29/Nov/2026:07:39:07 +0000] \"-\" 400 25"
        );
    }
}
