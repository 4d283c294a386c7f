//! `maskrelay dns print|check`: every DNS record the relay domain needs, written in
//! zone-file syntax, and looked up one by one with a sentence for each fault.
//!
//! The records: MX (replies reach the listener), A/AAAA of the MX host, SPF (mail
//! from the relay domain leaves from here), one DKIM record per published key,
//! DMARC (`p=quarantine` to start), TLS-RPT, and the reverse DNS of the sending
//! address, which many receivers require to match the MX host.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine;
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::proto::rr::RData;
use maskrelay_deliver::dkim::zone_line;
use maskrelay_schema::Store;
use maskrelay_schema::dkim::DkimAlgorithm;

use crate::config::Config;

/// What the relay domain should publish.
pub struct Plan {
    domain: String,
    mx_host: String,
    public_address: Option<IpAddr>,
    reports_to: Option<String>,
    dkim: Vec<(String, DkimAlgorithm, Vec<u8>)>,
}

/// One record looked up: right, or what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether the record is as it should be.
    pub ok: bool,
    /// What was found, or the fault and its fix.
    pub text: String,
}

impl Plan {
    /// The records for `config`'s relay domain, with the DKIM keys in `store` that are
    /// not retired.
    ///
    /// # Errors
    /// If the keys cannot be read.
    pub async fn new(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let keys = store.dkim_keys(false).await?;
        Ok(Self {
            domain: config.relay_domain.to_ascii_lowercase(),
            mx_host: config
                .smtp
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| config.relay_domain.clone())
                .to_ascii_lowercase(),
            public_address: config
                .dns
                .public_address
                .as_deref()
                .and_then(|a| a.parse().ok()),
            reports_to: config.dns.reports_to.clone(),
            dkim: keys
                .into_iter()
                .map(|k| (k.selector, k.algorithm, k.public_key))
                .collect(),
        })
    }

    fn spf(&self) -> String {
        match self.public_address {
            Some(IpAddr::V4(ip)) => format!("v=spf1 ip4:{ip} -all"),
            Some(IpAddr::V6(ip)) => format!("v=spf1 ip6:{ip} -all"),
            None => "v=spf1 mx -all".to_owned(),
        }
    }

    fn spf_mechanism(&self) -> String {
        match self.public_address {
            Some(IpAddr::V4(ip)) => format!("ip4:{ip}"),
            Some(IpAddr::V6(ip)) => format!("ip6:{ip}"),
            None => "mx".to_owned(),
        }
    }

    fn dmarc(&self) -> String {
        let rua = self
            .reports_to
            .as_ref()
            .map_or(String::new(), |to| format!("; rua=mailto:{to}"));
        format!("v=DMARC1; p=quarantine; adkim=r; aspf=r{rua}")
    }

    fn tls_rpt(&self) -> Option<String> {
        self.reports_to
            .as_ref()
            .map(|to| format!("v=TLSRPTv1; rua=mailto:{to}"))
    }

    /// The zone-file text.
    pub fn print(&self) -> String {
        let d = &self.domain;
        let mx = &self.mx_host;
        let mut out = format!("; DNS records for {d}, as maskrelay needs them\n");
        let _ = writeln!(out, "{d}. IN MX 10 {mx}.");
        match self.public_address {
            Some(ip @ IpAddr::V4(_)) => {
                let _ = writeln!(out, "{mx}. IN A {ip}");
            }
            Some(ip @ IpAddr::V6(_)) => {
                let _ = writeln!(out, "{mx}. IN AAAA {ip}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "; {mx} needs the A/AAAA record of this machine (set dns.public_address \
                     to have it written here)"
                );
            }
        }
        let _ = writeln!(out, "{d}. IN TXT \"{}\"", self.spf());
        if self.dkim.is_empty() {
            let _ = writeln!(
                out,
                "; no DKIM key yet: run `maskrelay dkim generate --selector NAME` (once with \
                 --algorithm ed25519, once with --algorithm rsa)"
            );
        }
        for (selector, algorithm, public_key) in &self.dkim {
            let _ = writeln!(out, "{}", zone_line(selector, d, *algorithm, public_key));
        }
        let _ = writeln!(
            out,
            "; DMARC: start with p=quarantine; once reports show only your own mail \
             passing, move to p=reject"
        );
        let _ = writeln!(out, "_dmarc.{d}. IN TXT \"{}\"", self.dmarc());
        match self.tls_rpt() {
            Some(record) => {
                let _ = writeln!(out, "_smtp._tls.{d}. IN TXT \"{record}\"");
            }
            None => {
                let _ = writeln!(
                    out,
                    "; TLS-RPT needs an address for reports: set dns.reports_to"
                );
            }
        }
        match self.public_address {
            Some(ip) => {
                let _ = writeln!(
                    out,
                    "; reverse DNS: the owner of {ip} (your hosting provider) must set its \
                     PTR record to {mx}."
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "; reverse DNS: the PTR record of this machine's public address must \
                     name {mx} (set dns.public_address to have it checked)"
                );
            }
        }
        out
    }

    /// Looks every record up through `resolver`, in the order [`Plan::print`]
    /// writes them.
    pub async fn check(&self, resolver: &MessageAuthenticator) -> Vec<Finding> {
        let d = &self.domain;
        let mx = &self.mx_host;
        let mut found = vec![self.check_mx(resolver).await];
        if let Some(ip) = self.public_address {
            found.push(check_address(resolver, mx, ip).await);
        }
        found.push(self.check_spf(resolver).await);
        for (selector, algorithm, public_key) in &self.dkim {
            found.push(check_dkim(resolver, selector, d, *algorithm, public_key).await);
        }
        found.push(self.check_dmarc(resolver).await);
        if let Some(record) = self.tls_rpt() {
            let name = format!("_smtp._tls.{d}");
            let txt = txt(resolver, &name).await;
            found.push(if txt.iter().any(|t| t.starts_with("v=TLSRPTv1") && t.contains("rua=")) {
                ok(format!("TLS-RPT {name}"))
            } else {
                fault(format!("TLS-RPT: no report address at {name}; publish `{name}. IN TXT \"{record}\"`"))
            });
        }
        if let Some(ip) = self.public_address {
            found.push(check_ptr(resolver, ip, mx).await);
        }
        found
    }

    async fn check_mx(&self, resolver: &MessageAuthenticator) -> Finding {
        let (d, mx) = (&self.domain, &self.mx_host);
        let fix = format!("publish `{d}. IN MX 10 {mx}.`");
        let hosts: Vec<String> = match lookup(resolver, d, Kind::Mx).await {
            Ok(hosts) => hosts,
            Err(e) => return fault(format!("MX: no MX record for {d} ({e}); {fix}")),
        };
        if hosts.iter().any(|h| h == mx) {
            ok(format!("MX {d} -> {mx}"))
        } else if hosts.is_empty() {
            fault(format!("MX: no MX record for {d}; {fix}"))
        } else {
            fault(format!(
                "MX: {d} points to {} rather than {mx}, so replies do not reach maskrelay; {fix}",
                hosts.join(", ")
            ))
        }
    }

    async fn check_spf(&self, resolver: &MessageAuthenticator) -> Finding {
        let d = &self.domain;
        let fix = format!("publish `{d}. IN TXT \"{}\"`", self.spf());
        let records: Vec<String> = txt(resolver, d)
            .await
            .into_iter()
            .filter(|t| t.to_ascii_lowercase().starts_with("v=spf1"))
            .collect();
        match records.as_slice() {
            [] => fault(format!("SPF: no SPF record at {d}; {fix}")),
            [record] => {
                let terms: Vec<String> = record
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
                let mechanism = self.spf_mechanism().to_ascii_lowercase();
                let strict_end = terms.last().is_some_and(|t| t == "-all" || t == "~all");
                if !terms.contains(&mechanism) {
                    fault(format!(
                        "SPF: the record at {d} (\"{record}\") does not allow {mechanism}, \
                         where maskrelay sends from; {fix}"
                    ))
                } else if !strict_end {
                    fault(format!(
                        "SPF: the record at {d} does not end with -all or ~all, so it proves \
                         nothing; {fix}"
                    ))
                } else {
                    ok(format!("SPF {d}: {record}"))
                }
            }
            _ => fault(format!(
                "SPF: {d} has {} SPF records; receivers treat that as an error (RFC 7208 \
                 §4.5). Keep one: {fix}",
                records.len()
            )),
        }
    }

    async fn check_dmarc(&self, resolver: &MessageAuthenticator) -> Finding {
        let name = format!("_dmarc.{}", self.domain);
        let fix = format!("publish `{name}. IN TXT \"{}\"`", self.dmarc());
        let records: Vec<String> = txt(resolver, &name)
            .await
            .into_iter()
            .filter(|t| t.starts_with("v=DMARC1"))
            .collect();
        let Some(record) = records.first() else {
            return fault(format!("DMARC: no DMARC record at {name}; {fix}"));
        };
        let policy = tag(record, "p").unwrap_or_default().to_ascii_lowercase();
        match policy.as_str() {
            "quarantine" | "reject" => ok(format!("DMARC {name}: {record}")),
            "none" => fault(format!(
                "DMARC: p=none at {name} asks receivers to do nothing with mail that fails; \
                 {fix}"
            )),
            _ => fault(format!(
                "DMARC: the record at {name} has no valid p= tag; {fix}"
            )),
        }
    }
}

async fn check_dkim(
    resolver: &MessageAuthenticator,
    selector: &str,
    domain: &str,
    algorithm: DkimAlgorithm,
    public_key: &[u8],
) -> Finding {
    let name = format!("{selector}._domainkey.{domain}");
    let fix = format!(
        "publish {}",
        zone_line(selector, domain, algorithm, public_key)
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(public_key);
    let records = txt(resolver, &name).await;
    let Some(record) = records.iter().find(|t| t.contains("p=")) else {
        return fault(format!("DKIM: no key at {name}; {fix}"));
    };
    let published: String = tag(record, "p")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if published == expected {
        ok(format!("DKIM {name} ({})", algorithm.as_str()))
    } else {
        fault(format!(
            "DKIM: the key at {name} is not the one maskrelay signs with (rotated or \
             mistyped); {fix}"
        ))
    }
}

async fn check_address(resolver: &MessageAuthenticator, host: &str, ip: IpAddr) -> Finding {
    let kind = if ip.is_ipv4() { Kind::A } else { Kind::Aaaa };
    let record = if ip.is_ipv4() { "A" } else { "AAAA" };
    match lookup(resolver, host, kind).await {
        Ok(addresses) if addresses.contains(&ip.to_string()) => {
            ok(format!("{record} {host} -> {ip}"))
        }
        Ok(addresses) => fault(format!(
            "{record}: {host} resolves to [{}], not {ip}; publish `{host}. IN {record} {ip}`",
            addresses.join(", ")
        )),
        Err(e) => fault(format!(
            "{record}: {host} has no address ({e}); publish `{host}. IN {record} {ip}`"
        )),
    }
}

async fn check_ptr(resolver: &MessageAuthenticator, ip: IpAddr, host: &str) -> Finding {
    let names = match resolver.resolver().reverse_lookup(ip).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(ptr) => Some(normal(&ptr.0.to_ascii())),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            let e = said(&e);
            return fault(format!(
                "PTR: {ip} has no reverse DNS ({e}); ask its owner (your hosting provider) to \
                 set it to {host}"
            ));
        }
    };
    if names.iter().any(|n| n == host) {
        ok(format!("PTR {ip} -> {host}"))
    } else {
        fault(format!(
            "PTR: {ip} points to [{}], not {host}; many receivers refuse mail from an address \
             whose reverse DNS does not match; ask its owner to set it to {host}",
            names.join(", ")
        ))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Mx,
    A,
    Aaaa,
}

/// The MX exchanges or addresses of `name`, lower-case, without the final dot.
async fn lookup(
    resolver: &MessageAuthenticator,
    name: &str,
    kind: Kind,
) -> Result<Vec<String>, String> {
    let resolver = resolver.resolver();
    let lookup = match kind {
        Kind::Mx => resolver.mx_lookup(fqdn(name)).await,
        Kind::A => resolver.ipv4_lookup(fqdn(name)).await,
        Kind::Aaaa => resolver.ipv6_lookup(fqdn(name)).await,
    }
    .map_err(|e| said(&e))?;
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some(normal(&mx.exchange.to_ascii())),
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect())
}

/// A resolver error in a few words: "no such record" rather than the query dump.
fn said(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    if text.contains("no records found") {
        "no such record".to_owned()
    } else {
        text
    }
}

/// Every TXT record of `name`, its strings joined; none if the look-up fails.
async fn txt(resolver: &MessageAuthenticator, name: &str) -> Vec<String> {
    let Ok(lookup) = resolver.resolver().txt_lookup(fqdn(name)).await else {
        return Vec::new();
    };
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// The value of `name=` in a `tag=value; …` record.
fn tag<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn ok(text: String) -> Finding {
    Finding { ok: true, text }
}

fn fault(text: String) -> Finding {
    Finding { ok: false, text }
}
