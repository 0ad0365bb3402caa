//! CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) for `*_bound_cidrs`.

use std::net::IpAddr;

use super::LogicalError;

/// One parsed CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Cidr, LogicalError> {
        let bad = || LogicalError::invalid(format!("invalid CIDR block {s:?}"));
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// Does the block hold `ip`? An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parse a list of blocks given as a JSON array or a comma-separated string.
pub fn parse_list(items: &[String]) -> Result<Vec<String>, LogicalError> {
    let mut out = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Cidr::parse(item)?;
        out.push(item.to_string());
    }
    Ok(out)
}

/// Is `addr` inside one of `blocks`? No blocks: anyone. Blocks but no address: no.
pub fn allowed(blocks: &[String], addr: Option<IpAddr>) -> bool {
    if blocks.is_empty() {
        return true;
    }
    let Some(addr) = addr else { return false };
    blocks
        .iter()
        .filter_map(|b| Cidr::parse(b).ok())
        .any(|c| c.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_hold_their_addresses_only() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "::/129",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Cidr::parse(bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn allowed_needs_an_address_when_bound() {
        let blocks = vec!["127.0.0.0/8".to_string()];
        assert!(allowed(&[], None));
        assert!(!allowed(&blocks, None));
        assert!(allowed(&blocks, Some(ip("127.0.0.1"))));
        assert!(!allowed(&blocks, Some(ip("192.168.0.1"))));
    }
}
