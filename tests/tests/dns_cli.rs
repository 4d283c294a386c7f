//! `maskrelay dns print` and `dns check` against a DNS server on loopback: the zone
//! `print` writes, published as it is, passes `check`; each fault a mail admin makes
//! is named, with its fix, and makes `check` fail.

use std::net::Ipv4Addr;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::dns::TestDns;
use maskrelay_tests::gateway::test_config;
use maskrelay_tests::gateway_binary;
use maskrelay_tests::process::run_cli;
use maskrelay_tests::{Backend, both_backends};

const PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 25);
const MX_HOST: &str = "mx.relay.test";

/// A way to break the published zone, and what `dns check` must then say.
type Fault<'a> = (Box<dyn Fn() + 'a>, &'static str);

/// Every name the zone has records at.
const NAMES: [&str; 6] = [
    "relay.test",
    "mx.relay.test",
    "_dmarc.relay.test",
    "ed1._domainkey.relay.test",
    "rsa1._domainkey.relay.test",
    "_smtp._tls.relay.test",
];

async fn dns_print_and_check(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let dns = TestDns::start().await?;
    // No default SPF answer for the relay domain: only what a test publishes.
    dns.nothing("relay.test");
    let mut config = test_config(&db, None)?;
    config.dns.nameservers = dns.addr.to_string();
    config.dns.public_address = Some(PUBLIC.to_string());
    config.dns.reports_to = Some("postmaster@example.org".into());
    config.smtp.hostname = Some(MX_HOST.into());
    let cli = |args: &'static [&'static str]| run_cli(gateway_binary!(), &config, args);
    cli(&[
        "dkim",
        "generate",
        "--selector",
        "ed1",
        "--algorithm",
        "ed25519",
    ])
    .await?;
    cli(&[
        "dkim",
        "generate",
        "--selector",
        "rsa1",
        "--algorithm",
        "rsa",
    ])
    .await?;

    let zone = cli(&["dns", "print"]).await?;
    for expected in [
        "relay.test. IN MX 10 mx.relay.test.",
        "mx.relay.test. IN A 192.0.2.25",
        "relay.test. IN TXT \"v=spf1 ip4:192.0.2.25 -all\"",
        "ed1._domainkey.relay.test. IN TXT ( \"v=DKIM1; k=ed25519; p=",
        "rsa1._domainkey.relay.test. IN TXT ( \"v=DKIM1; k=rsa; p=",
        "_dmarc.relay.test. IN TXT \"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@example.org\"",
        "_smtp._tls.relay.test. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.org\"",
        "PTR record to mx.relay.test.",
        "move to p=reject",
    ] {
        assert!(zone.contains(expected), "missing {expected:?} in:\n{zone}");
    }

    // Nothing published yet: every record is named.
    let failed = cli(&["dns", "check"]).await.err().map(|e| e.to_string());
    let said = failed.unwrap_or_default();
    for fault in [
        "MX: no MX record",
        "SPF: no SPF record",
        "DKIM: no key at ed1",
        "DMARC: no DMARC",
        "TLS-RPT",
        "PTR: 192.0.2.25 has no reverse DNS",
    ] {
        assert!(said.contains(fault), "{fault:?} not said:\n{said}");
    }

    // The zone as printed, with reverse DNS set by the "hosting provider", passes.
    assert_eq!(dns.publish_zone(&zone)?, 7);
    dns.ptr(PUBLIC, MX_HOST);
    let checked = cli(&["dns", "check"]).await?;
    assert_eq!(
        checked.lines().filter(|l| l.starts_with("ok ")).count(),
        8,
        "{checked}"
    );

    // Each fault on its own is named, with its fix, and fails the check.
    let faults: Vec<Fault<'_>> = vec![
        (
            Box::new(|| dns.mx("relay.test", 10, "mail.elsewhere.test")),
            "MX: relay.test points to mail.elsewhere.test rather than mx.relay.test",
        ),
        (
            Box::new(|| dns.a(MX_HOST, Ipv4Addr::new(192, 0, 2, 99))),
            "A: mx.relay.test resolves to [192.0.2.99], not 192.0.2.25",
        ),
        (
            Box::new(|| dns.add_txt("relay.test", "v=spf1 include:_spf.example.com ~all")),
            "SPF: relay.test has 2 SPF records",
        ),
        (
            Box::new(|| dns.txt("relay.test", "v=spf1 include:_spf.example.com -all")),
            "does not allow ip4:192.0.2.25",
        ),
        (
            Box::new(|| {
                dns.txt(
                    "ed1._domainkey.relay.test",
                    "v=DKIM1; k=ed25519; p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )
            }),
            "DKIM: the key at ed1._domainkey.relay.test is not the one",
        ),
        (
            Box::new(|| dns.txt("_dmarc.relay.test", "v=DMARC1; p=none")),
            "DMARC: p=none",
        ),
        (
            Box::new(|| dns.remove("_dmarc.relay.test", "TXT")),
            "DMARC: no DMARC record at _dmarc.relay.test; publish",
        ),
        (
            Box::new(|| dns.ptr(PUBLIC, "static-192-0-2-25.isp.test")),
            "PTR: 192.0.2.25 points to [static-192-0-2-25.isp.test], not mx.relay.test",
        ),
    ];
    for (break_it, named) in faults {
        for name in NAMES {
            for kind in ["TXT", "MX", "A"] {
                dns.remove(name, kind);
            }
        }
        dns.publish_zone(&zone)?;
        dns.ptr(PUBLIC, MX_HOST);
        break_it();
        let said = cli(&["dns", "check"])
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(said.contains(named), "{named:?} not said:\n{said}");
        assert!(
            said.contains("publish") || said.contains("ask its owner"),
            "no fix given:\n{said}"
        );
        assert!(said.contains("1 DNS record(s) missing or wrong"), "{said}");
    }
    Ok(())
}

both_backends!(dns_print_and_check);
