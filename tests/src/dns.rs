//! A DNS server on loopback publishing the SPF, DKIM and DMARC records of test domains,
//! so that sender authentication runs against real DNS messages over UDP, and the MX
//! and PTR records `maskrelay dns check` looks for.
//!
//! Names without records of their own get `default_spf` (if set) as their only TXT
//! record: every test domain then passes SPF from 127.0.0.1 without DMARC, which keeps
//! tests about other things independent of authentication. Tests about
//! authentication publish records of their own, or `nothing` for a domain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// What a name has.
#[derive(Debug, Clone)]
enum Entry {
    Records(Records),
    Nothing,
    Broken,
}

/// The records of one name, by type.
#[derive(Debug, Clone, Default)]
struct Records {
    txt: Vec<String>,
    mx: Vec<(u16, String)>,
    ptr: Vec<String>,
    a: Vec<std::net::Ipv4Addr>,
}

/// The running server.
#[derive(Clone)]
pub struct TestDns {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    zone: Arc<Mutex<HashMap<String, Entry>>>,
    default_spf: Arc<Mutex<Option<String>>>,
}

impl TestDns {
    /// Starts serving on a free loopback port, with `v=spf1 ip4:127.0.0.0/8 -all` as
    /// the default record.
    ///
    /// # Errors
    /// If no port can be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let dns = Self {
            addr: socket.local_addr()?,
            zone: Arc::default(),
            default_spf: Arc::new(Mutex::new(Some("v=spf1 ip4:127.0.0.0/8 -all".into()))),
        };
        let server = dns.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = server.answer(&buf[..n]) {
                    let _ = socket.send_to(&answer, peer).await;
                }
            }
        });
        Ok(dns)
    }

    /// Publishes a TXT record (replacing the name's TXT records).
    pub fn txt(&self, name: &str, value: &str) {
        self.records(name, |r| r.txt = vec![value.to_owned()]);
    }

    /// Adds a TXT record beside the name's others (two SPF records, say).
    pub fn add_txt(&self, name: &str, value: &str) {
        self.records(name, |r| r.txt.push(value.to_owned()));
    }

    /// Publishes an MX record (replacing the name's MX records).
    pub fn mx(&self, name: &str, preference: u16, exchange: &str) {
        self.records(name, |r| r.mx = vec![(preference, exchange.to_owned())]);
    }

    /// Adds an MX record beside the name's others (several hosts, say); an
    /// `exchange` of `"."` makes a null MX.
    pub fn add_mx(&self, name: &str, preference: u16, exchange: &str) {
        self.records(name, |r| r.mx.push((preference, exchange.to_owned())));
    }

    /// Publishes an A record (replacing the name's A records).
    pub fn a(&self, name: &str, ip: std::net::Ipv4Addr) {
        self.records(name, |r| r.a = vec![ip]);
    }

    /// Removes every record of one type from a name (`"TXT"`, `"MX"`, `"A"`, `"PTR"`).
    pub fn remove(&self, name: &str, record_type: &str) {
        self.records(name, |r| match record_type {
            "TXT" => r.txt.clear(),
            "MX" => r.mx.clear(),
            "A" => r.a.clear(),
            _ => r.ptr.clear(),
        });
    }

    /// Publishes every record line of a zone as `maskrelay dns print` writes it
    /// (MX, A and TXT, one per line); returns how many.
    ///
    /// # Errors
    /// On a line of another kind.
    pub fn publish_zone(&self, zone: &str) -> anyhow::Result<usize> {
        let mut published = 0;
        for line in zone
            .lines()
            .filter(|l| !l.starts_with(';') && !l.is_empty())
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            let name = words
                .first()
                .copied()
                .unwrap_or_default()
                .trim_end_matches('.');
            let field = |i: usize| words.get(i).copied().unwrap_or_default();
            match words.get(2).copied() {
                Some("MX") => self.mx(name, field(3).parse()?, field(4).trim_end_matches('.')),
                Some("A") => self.a(name, field(3).parse()?),
                Some("TXT") => {
                    let value: String = line.split('"').skip(1).step_by(2).collect();
                    self.add_txt(name, &value);
                }
                other => anyhow::bail!("unexpected record {other:?} in: {line}"),
            }
            published += 1;
        }
        Ok(published)
    }

    /// Publishes the PTR record of an IPv4 address.
    pub fn ptr(&self, ip: std::net::Ipv4Addr, host: &str) {
        let [a, b, c, d] = ip.octets();
        let name = format!("{d}.{c}.{b}.{a}.in-addr.arpa");
        self.records(&name, |r| r.ptr = vec![host.to_owned()]);
    }

    fn records(&self, name: &str, change: impl FnOnce(&mut Records)) {
        let mut zone = self.lock_zone();
        let entry = zone
            .entry(normal(name))
            .or_insert_with(|| Entry::Records(Records::default()));
        if !matches!(entry, Entry::Records(_)) {
            *entry = Entry::Records(Records::default());
        }
        if let Entry::Records(records) = entry {
            change(records);
        }
    }

    /// Makes a name have no records at all (NXDOMAIN), not even the default.
    pub fn nothing(&self, name: &str) {
        self.lock_zone().insert(normal(name), Entry::Nothing);
    }

    /// Makes look-ups of a name fail (SERVFAIL), as a broken DNS server would.
    pub fn broken(&self, name: &str) {
        self.lock_zone().insert(normal(name), Entry::Broken);
    }

    fn lock_zone(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.zone.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        let question = request.queries.first()?.clone();
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.message_type = MessageType::Response;
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_query(question.clone());
        let name = normal(&question.name.to_ascii());
        let entry = self.lock_zone().get(&name).cloned();
        let entry = entry.or_else(|| {
            let is_policy = name.starts_with("_dmarc.") || name.contains("._domainkey.");
            let default = self
                .default_spf
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            default.filter(|_| !is_policy).map(|spf| {
                Entry::Records(Records {
                    txt: vec![spf],
                    ..Records::default()
                })
            })
        });
        match entry {
            Some(Entry::Records(records)) => {
                let owner = Name::from_str_relaxed(&name).ok()?;
                let data: Vec<RData> = match question.query_type {
                    RecordType::TXT => records
                        .txt
                        .iter()
                        .map(|v| RData::TXT(TXT::new(chunks(v))))
                        .collect(),
                    RecordType::MX => records
                        .mx
                        .iter()
                        .filter_map(|(preference, host)| {
                            let host = Name::from_str_relaxed(host).ok()?;
                            Some(RData::MX(MX::new(*preference, host)))
                        })
                        .collect(),
                    RecordType::PTR => records
                        .ptr
                        .iter()
                        .filter_map(|host| {
                            Some(RData::PTR(PTR(Name::from_str_relaxed(host).ok()?)))
                        })
                        .collect(),
                    RecordType::A => records.a.iter().map(|ip| RData::A(A(*ip))).collect(),
                    // The name exists, with nothing of the asked type.
                    _ => Vec::new(),
                };
                for rdata in data {
                    response.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
                }
            }
            Some(Entry::Broken) => {
                response.metadata.response_code = ResponseCode::ServFail;
            }
            Some(Entry::Nothing) | None => {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
        }
        response.to_vec().ok()
    }
}

/// A TXT value split into the 255-byte strings DNS carries.
fn chunks(value: &str) -> Vec<String> {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
