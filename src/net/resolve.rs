//! Name resolution (gevent's resolver): `getaddrinfo` runs on the [thread pool]
//! (crate::threadpool) while the calling greenlet waits cooperatively; a numeric address is
//! parsed here and never touches a thread.

use crate::threadpool;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Resolves `host` to its addresses, with `port`. A numeric `host` (`"127.0.0.1"`, `"::1"`)
/// is parsed at once; a name is looked up with the system resolver on the thread pool, so
/// other greenlets run meanwhile.
///
/// ```
/// let addrs = grove::net::lookup_host("localhost", 80).unwrap();
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// ```
pub fn lookup_host(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Some(ip) = parse_ip(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_string();
    let r = threadpool::run(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(Iterator::collect)
    });
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("grove: cannot resolve {host:?}: {e}"),
        )),
        Err(e) => Err(io::Error::other(format!(
            "grove: cannot resolve {host:?}: {e}"
        ))),
    }
}

/// A numeric host, with or without the brackets of an IPv6 literal.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Something that names socket addresses, resolved cooperatively (grove's counterpart of
/// `std::net::ToSocketAddrs`, whose name lookups block the thread). Implemented for the same
/// types as std's: addresses, `(host, port)` pairs and `"host:port"` strings.
pub trait ToSocketAddrs {
    /// The addresses, in the resolver's order.
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>>;
}

impl ToSocketAddrs for SocketAddr {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        lookup_host(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        lookup_host(&self.0, self.1)
    }
}

impl ToSocketAddrs for str {
    /// `"host:port"`, `"[v6]:port"`.
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(vec![a]);
        }
        let (host, port) = self.rsplit_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("grove: {self:?} is not host:port"),
            )
        })?;
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("grove: {self:?} has an invalid port"),
            )
        })?;
        lookup_host(host, port)
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().to_socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).to_socket_addrs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_hosts_are_parsed_without_the_pool() {
        let before = threadpool::jobs_run();
        let v4 = "127.0.0.1:80".to_socket_addrs().unwrap();
        let v6 = ("[::1]", 443).to_socket_addrs().unwrap();
        let pair = ("10.0.0.1", 7).to_socket_addrs().unwrap();
        assert_eq!(v4, ["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(v6, ["[::1]:443".parse().unwrap()]);
        assert_eq!(pair, ["10.0.0.1:7".parse().unwrap()]);
        assert_eq!(threadpool::jobs_run(), before, "no thread was involved");
    }

    #[test]
    fn bad_addresses_are_clear_errors() {
        let e = "no-port-here".to_socket_addrs().unwrap_err();
        assert!(e.to_string().contains("not host:port"), "{e}");
        let e = "host:99999".to_socket_addrs().unwrap_err();
        assert!(e.to_string().contains("invalid port"), "{e}");
    }
}
