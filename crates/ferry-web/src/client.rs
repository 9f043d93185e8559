//! The client's address: the TCP peer, or, when the peer is a trusted reverse proxy
//! (`FERRY_TRUSTED_PROXIES`), the address the proxies recorded in `X-Forwarded-For`.
//! Anyone can send `X-Forwarded-For`, so it is read only from trusted peers.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// One network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or a CIDR network"))?;
        let net = canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses a comma- or space-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Warns once per process when a peer that is not trusted sends `X-Forwarded-For`: behind
    /// an unlisted proxy every client shares the proxy's address (and its sign-in budget).
    pub fn warn_if_untrusted_proxy(&self, peer: IpAddr, headers: &HeaderMap) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if headers.contains_key("x-forwarded-for")
            && !self.trusts(canonical(peer))
            && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                %peer,
                "a request from a peer not in FERRY_TRUSTED_PROXIES carried X-Forwarded-For, which was ignored; \
                 if Ferry is behind a reverse proxy, list it there, or every client shares the proxy's address"
            );
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that came from `peer`: the peer itself unless it is trusted;
    /// else the right-most `X-Forwarded-For` address that is not a trusted proxy (each proxy
    /// appends the address it was reached from, so addresses left of that one were written
    /// by the client and prove nothing).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_membership() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.local".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), &headers(&["192.0.2.9"])),
            ip("127.0.0.1")
        );
        let t = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        // The client made up the first entry; the trusted proxy appended the real address.
        assert_eq!(
            t.client(ip("127.0.0.1"), &headers(&["6.6.6.6, 192.0.2.9"])),
            ip("192.0.2.9")
        );
        // Two trusted proxies in a row, in two header lines.
        assert_eq!(
            t.client(ip("127.0.0.1"), &headers(&["192.0.2.9", "10.0.0.4"])),
            ip("192.0.2.9")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            t.client(ip("198.51.100.1"), &headers(&["192.0.2.9"])),
            ip("198.51.100.1")
        );
        // Garbage ends the walk at the last address proxies vouched for.
        assert_eq!(
            t.client(ip("127.0.0.1"), &headers(&["nonsense"])),
            ip("127.0.0.1")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &headers(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
    }
}
