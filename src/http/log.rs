//! The access log: one [`AccessRecord`] per response, given to a hook; the default hook
//! writes the Common Log Format to stderr, as web servers (and gevent's pywsgi) do:
//!
//! ```text
//! 127.0.0.1 - - [01/Dec/2026:07:19:07 +0000] "GET /hello HTTP/1.1" 200 13
//! ```
#![forbid(unsafe_code)]

use super::date::{civil_from_days, MONTHS};
use http::{Method, StatusCode, Uri, Version};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the access log hook hears about each response.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// The client.
    pub peer: SocketAddr,
    /// The request method.
    pub method: Method,
    /// The request target.
    pub target: Uri,
    /// The request version.
    pub version: Version,
    /// The status sent.
    pub status: StatusCode,
    /// Body bytes sent (not counting the head or chunk framing).
    pub bytes: u64,
    /// When the request head was complete.
    pub time: SystemTime,
    /// From the request head to the end of the response.
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
            "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"{} {} {:?}\" {} {}",
            self.peer.ip(),
            d,
            MONTHS[m - 1],
            y,
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            self.method,
            self.target,
            self.version,
            self.status.as_u16(),
            self.bytes
        )
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
        let r = AccessRecord {
            peer: "127.0.0.1:5555".parse().unwrap(),
            method: Method::GET,
            target: "/hello?x=1".parse().unwrap(),
            version: Version::HTTP_11,
            status: StatusCode::OK,
            bytes: 13,
            time: UNIX_EPOCH + Duration::from_secs(1_795_937_947),
            elapsed: Duration::from_millis(1),
        };
        assert_eq!(
            r.to_string(),
            "127.0.0.1 - - [29/Nov/2026:07:39:07 +0000] \"GET /hello?x=1 HTTP/1.1\" 200 13"
        );
    }
}
