//! Recipients' mail servers on loopback: test SMTP servers on 127.x.y.z, all on one
//! port (maskrelay's `outbound.mx_port`), named in the test DNS server by MX and A
//! records, and a gateway delivering to them by MX.

use std::net::{Ipv4Addr, SocketAddr};

use crate::db::{Backend, TestDb};
use crate::dns::TestDns;
use crate::gateway::{TestGateway, test_config};
use crate::smarthost::Smarthost;

/// A set of MX hosts sharing one port.
pub struct MxHosts {
    /// The port every host listens on.
    pub port: u16,
    /// The hosts, in the order asked for; host `i` listens on [`MxHosts::ip`]`(i)`.
    pub hosts: Vec<Smarthost>,
    /// The first three octets; hosts take consecutive last octets from `first`.
    net: [u8; 3],
    first: u8,
}

impl MxHosts {
    /// Starts `count` SMTP servers on consecutive loopback addresses and one port;
    /// the address after the last one has nothing listening ([`MxHosts::dead_ip`]).
    ///
    /// # Errors
    /// If no port could be had on all addresses after several tries.
    pub async fn start(count: usize) -> anyhow::Result<Self> {
        let count = u8::try_from(count)?;
        for _ in 0..20 {
            // Tests run at once: spread them over 127.0.0.0/8.
            let mut seed = [0u8; 3];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random: {e}"))?;
            let net = [127, 1 + seed[0] % 250, seed[1]];
            let first = 2 + seed[2] % 200;
            let ip = |i: u8| Ipv4Addr::new(net[0], net[1], net[2], first + i);
            let Ok(probe) = tokio::net::TcpListener::bind((ip(0), 0)).await else {
                continue;
            };
            let port = probe.local_addr()?.port();
            drop(probe);
            let mut hosts = Vec::new();
            for i in 0..count {
                match Smarthost::start_at(SocketAddr::from((ip(i), port))).await {
                    Ok(host) => hosts.push(host),
                    Err(_) => break,
                }
            }
            if hosts.len() == usize::from(count) {
                return Ok(Self {
                    port,
                    hosts,
                    net,
                    first,
                });
            }
        }
        anyhow::bail!("no loopback port was free on {count} addresses")
    }

    /// The address of host `i`.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.net;
        Ipv4Addr::new(a, b, c, self.first + u8::try_from(i).unwrap_or(u8::MAX))
    }

    /// An address on the same network where nothing listens: connections are
    /// refused.
    pub fn dead_ip(&self) -> Ipv4Addr {
        self.ip(self.hosts.len())
    }

    /// Publishes `mx{i}.<domain>` with host `i`'s address, and an MX record of
    /// `domain` pointing at it with `preference`.
    pub fn publish(&self, dns: &TestDns, domain: &str, preference: u16, i: usize) {
        let host = format!("mx{i}.{domain}");
        dns.a(&host, self.ip(i));
        dns.add_mx(domain, preference, &host);
    }
}

/// A gateway delivering by MX to port `mx.port`, with everything else as in
/// [`test_config`]; `change` adjusts the configuration first.
///
/// # Errors
/// If the database or the gateway cannot start.
pub async fn gateway_delivering_by_mx(
    backend: Backend,
    mx: &MxHosts,
    change: impl FnOnce(&mut maskrelay::Config),
) -> anyhow::Result<TestGateway> {
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, None)?;
    config.outbound.hold = false;
    config.outbound.mx_port = mx.port;
    change(&mut config);
    TestGateway::start_with(db, config).await
}
