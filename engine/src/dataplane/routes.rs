//! The routing table: which revisions answer which host, in what share.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Throttler;

/// One revision's share of a route's traffic.
#[derive(Debug, Clone)]
pub struct Split {
    /// The revision's throttler.
    pub throttler: Arc<Throttler>,
    /// Percent of requests (the splits of a destination sum to 100).
    pub percent: u32,
}

/// Where a host's requests go.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The revisions and their shares.
    pub splits: Vec<Split>,
    /// How long a request may wait for an instance (the revision's
    /// timeoutSeconds bounds it).
    pub timeout: std::time::Duration,
    /// The route's tagged revisions, for a request to the main host that
    /// names one in `Knative-Serving-Tag` (when `tag-header-based-routing`
    /// is on).
    pub tags: HashMap<String, Arc<Destination>>,
}

impl Destination {
    /// Where a request naming `tag` goes: the tag's revision, or this
    /// destination when the route has no such tag (as Knative does).
    pub fn for_tag(&self, tag: &str) -> &Destination {
        self.tags.get(tag).map_or(self, |d| d.as_ref())
    }

    /// Picks a revision by percent; `roll` is uniform in 0..100.
    pub fn pick(&self, roll: u32) -> Option<&Arc<Throttler>> {
        let total: u32 = self.splits.iter().map(|s| s.percent).sum();
        if total == 0 {
            return self.splits.first().map(|s| &s.throttler);
        }
        let mut point = roll % total;
        for split in &self.splits {
            if point < split.percent {
                return Some(&split.throttler);
            }
            point -= split.percent;
        }
        self.splits.last().map(|s| &s.throttler)
    }
}

/// Hosts to destinations, replaced as a whole when routes change.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<Destination>>,
}

impl RouteTable {
    /// Adds (or replaces) the destination of `host`.
    pub fn insert(&mut self, host: &str, destination: Arc<Destination>) {
        self.hosts.insert(host.to_ascii_lowercase(), destination);
    }

    /// The destination of a Host header value (port and case ignored).
    pub fn lookup(&self, host: &str) -> Option<&Arc<Destination>> {
        self.hosts.get(normalize_host(host).as_ref())
    }

    /// Every routed host, sorted.
    pub fn hosts(&self) -> BTreeSet<&str> {
        self.hosts.keys().map(String::as_str).collect()
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host is routed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Lowercases a Host header and strips its port (IPv6 literals keep their
/// brackets off); borrows when there is nothing to lowercase.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim().trim_end_matches('.');
    let without_port = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let name = without_port.trim_end_matches('.');
    if name.bytes().any(|c| c.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_without_port_or_case() {
        assert_eq!(
            normalize_host("Hello.Default.localhost:8080"),
            "hello.default.localhost"
        );
        assert_eq!(
            normalize_host("hello.default.localhost."),
            "hello.default.localhost"
        );
        assert_eq!(normalize_host("[::1]:80"), "::1");
    }
}
