//! Where mail for a domain goes: its MX hosts (RFC 5321 §5.1), in preference order,
//! each with its addresses.
//!
//! A null MX (RFC 7505) or a domain that does not exist fails the delivery for
//! good; a domain without MX records is its own mail server (the "implicit MX").
//! Hosts of equal preference are shuffled so that load spreads as their owner
//! meant. Errors name no domain: a recipient's domain can be personal data.

use std::net::{IpAddr, SocketAddr};

use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::net::NetError;
use mail_auth::hickory_resolver::proto::rr::RData;

use crate::error::DeliveryError;

/// Hosts tried per delivery, as Postfix's `smtp_mx_address_limit`: more rarely
/// helps, and each costs a connection timeout when the hosts are down.
pub const MAX_ADDRESSES: usize = 5;

/// One host to try, with its addresses (IPv4 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The host name (for the TLS server name); an address literal for a domain
    /// written `[192.0.2.1]`.
    pub host: String,
    /// Where to connect, port included.
    pub addrs: Vec<SocketAddr>,
}

/// The hosts that receive mail for `domain`, best first, at most
/// [`MAX_ADDRESSES`] addresses in all.
///
/// # Errors
/// [`DeliveryError::Permanent`] for a null MX or a domain with no mail server at
/// all; [`DeliveryError::Temporary`] when DNS fails or no MX host has an address.
pub async fn route(
    resolver: &TokioResolver,
    domain: &str,
    port: u16,
    mut roll: impl FnMut(usize) -> usize,
) -> Result<Vec<Hop>, DeliveryError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip: IpAddr = literal
            .strip_prefix("ipv6:")
            .unwrap_or(literal)
            .parse()
            .map_err(|_| DeliveryError::Permanent("malformed address literal".into()))?;
        return Ok(vec![Hop {
            host: ip.to_string(),
            addrs: vec![SocketAddr::new(ip, port)],
        }]);
    }
    let exchanges = match resolver.mx_lookup(fqdn(&domain)).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect(),
        Err(e) if e.is_nx_domain() => {
            return Err(DeliveryError::Permanent(
                "the recipient's domain does not exist".into(),
            ));
        }
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(DeliveryError::Temporary(dns_failure("MX", &e))),
    };
    if exchanges.iter().any(|(_, host)| host.is_empty()) {
        return Err(DeliveryError::Permanent(
            "the recipient's domain accepts no mail (null MX)".into(),
        ));
    }
    if exchanges.is_empty() {
        // No MX: the domain itself receives mail, if it has an address.
        let addrs = addresses(resolver, &domain, port).await?;
        if addrs.is_empty() {
            return Err(DeliveryError::Permanent(
                "the recipient's domain has no mail server (no MX, no address)".into(),
            ));
        }
        return Ok(vec![Hop {
            host: domain,
            addrs,
        }]);
    }
    let mut hops = Vec::new();
    let mut budget = MAX_ADDRESSES;
    let mut last_error = None;
    for host in in_preference_order(exchanges, &mut roll) {
        if budget == 0 {
            break;
        }
        match addresses(resolver, &host, port).await {
            Ok(mut addrs) if !addrs.is_empty() => {
                addrs.truncate(budget);
                budget -= addrs.len();
                hops.push(Hop { host, addrs });
            }
            Ok(_) => {}
            Err(e) => last_error = Some(e),
        }
    }
    if hops.is_empty() {
        return Err(last_error.unwrap_or_else(|| {
            DeliveryError::Temporary("no MX host of the recipient's domain has an address".into())
        }));
    }
    Ok(hops)
}

/// Hosts sorted by preference, shuffled among equals with `roll(n)` (a number below
/// `n`), each name once.
pub fn in_preference_order(
    mut exchanges: Vec<(u16, String)>,
    roll: &mut impl FnMut(usize) -> usize,
) -> Vec<String> {
    exchanges.sort_by_key(|(preference, _)| *preference);
    let mut start = 0;
    while start < exchanges.len() {
        let preference = exchanges[start].0;
        let end = exchanges[start..]
            .iter()
            .position(|(p, _)| *p != preference)
            .map_or(exchanges.len(), |n| start + n);
        // Fisher-Yates over the hosts of this preference.
        for i in (start + 1..end).rev() {
            let j = start + roll(i - start + 1).min(i - start);
            exchanges.swap(i, j);
        }
        start = end;
    }
    let mut seen = std::collections::HashSet::new();
    exchanges
        .into_iter()
        .map(|(_, host)| host)
        .filter(|host| seen.insert(host.clone()))
        .collect()
}

/// IPv4 then IPv6 addresses of `host`; none when it has neither.
async fn addresses(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, DeliveryError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = fqdn(host);
    let mut found = Vec::new();
    let mut failure = None;
    for v6 in [false, true] {
        let lookup = if v6 {
            resolver.ipv6_lookup(name.as_str()).await
        } else {
            resolver.ipv4_lookup(name.as_str()).await
        };
        match lookup {
            Ok(lookup) => found.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), port)),
                _ => None,
            })),
            Err(e) if e.is_no_records_found() => {}
            Err(e) => failure = Some(dns_failure(if v6 { "AAAA" } else { "A" }, &e)),
        }
    }
    match failure {
        Some(reason) if found.is_empty() => Err(DeliveryError::Temporary(reason)),
        _ => Ok(found),
    }
}

fn fqdn(name: &str) -> String {
    format!("{name}.")
}

/// A DNS failure in a few words, without the query (it names the domain).
fn dns_failure(kind: &str, e: &NetError) -> String {
    let what = if e.is_connection_closed() {
        "no answer from the resolver"
    } else if matches!(e, NetError::Timeout) {
        "timed out"
    } else {
        "failed"
    };
    format!("DNS: {kind} look-up {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, (*h).to_owned())).collect()
    }

    #[test]
    fn lower_preference_comes_first() {
        let order = in_preference_order(hosts(&[(20, "b"), (10, "a"), (30, "c")]), &mut |_| 0);
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn equal_preferences_are_shuffled_but_never_jump_a_better_host() {
        let list = hosts(&[
            (10, "a1"),
            (10, "a2"),
            (10, "a3"),
            (5, "first"),
            (20, "last"),
        ]);
        let mut orders = std::collections::HashSet::new();
        let mut state = 7usize;
        for _ in 0..200 {
            let order = in_preference_order(list.clone(), &mut |n| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) % n
            });
            assert_eq!(order.first().map(String::as_str), Some("first"));
            assert_eq!(order.last().map(String::as_str), Some("last"));
            orders.insert(order);
        }
        assert_eq!(
            orders.len(),
            6,
            "all orders of the three equal hosts appear"
        );
    }

    #[test]
    fn a_host_listed_twice_is_tried_once() {
        let order = in_preference_order(hosts(&[(10, "a"), (20, "a"), (30, "b")]), &mut |_| 0);
        assert_eq!(order, ["a", "b"]);
    }
}
