//! A set of IP ranges as sorted, merged intervals: lookup is a binary
//! search, O(log n) however many ranges the list holds.

use std::net::IpAddr;

use ipnet::IpNet;

/// IPv4 and IPv6 ranges, each kept as disjoint, sorted `[start, end]`
/// intervals. IPv4-mapped IPv6 addresses are looked up as IPv4.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    pub(super) fn new(nets: impl IntoIterator<Item = IpNet>) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Intervals held after merging.
    #[cfg(test)]
    pub(super) fn intervals(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

fn merge<T: Ord + Copy + num::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            // Overlapping or adjacent: extend.
            Some((_, last_end)) if last_end.succ().is_none_or(|n| start <= n) => {
                if end > *last_end {
                    *last_end = end;
                }
            }
            _ => out.push((start, end)),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // The last interval starting at or before x is the only candidate.
    let i = ranges.partition_point(|(start, _)| *start <= x);
    i > 0 && ranges[i - 1].1 >= x
}

mod num {
    pub(super) trait Succ: Sized {
        fn succ(self) -> Option<Self>;
    }
    impl Succ for u32 {
        fn succ(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(nets: &[&str]) -> IpSet {
        IpSet::new(nets.iter().map(|n| n.parse::<IpNet>().unwrap()))
    }

    #[test]
    fn lookups() {
        let s = set(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.168.1.1/32",
            "192.168.1.2/32",
            "2001:db8::/32",
        ]);
        assert_eq!(s.intervals(), 3);
        for (ip, want) in [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.1", true),
            ("192.168.1.2", true),
            ("192.168.1.3", false),
            ("::ffff:10.2.3.4", true),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(s.contains(ip.parse().unwrap()), want, "{ip}");
        }
        let all = set(&["0.0.0.0/0", "::/0"]);
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        assert!(all.contains("ffff::1".parse().unwrap()));
        assert!(!IpSet::default().contains("1.2.3.4".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn agrees_with_a_linear_scan(
            nets in proptest::collection::vec((any::<u32>(), 8u8..=32), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 50),
        ) {
            let nets: Vec<IpNet> = nets
                .into_iter()
                .map(|(a, p)| IpNet::new(std::net::Ipv4Addr::from(a).into(), p).unwrap().trunc())
                .collect();
            let s = IpSet::new(nets.clone());
            for p in probes.into_iter().chain(nets.iter().map(|n| u32::from(match n.network() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!(),
            }))) {
                let ip = IpAddr::V4(p.into());
                prop_assert_eq!(s.contains(ip), nets.iter().any(|n| n.contains(&ip)));
            }
        }
    }
}
