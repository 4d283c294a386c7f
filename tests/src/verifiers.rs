//! Two DKIM verifiers independent of maskrelay and of each other: Python's dkimpy
//! (Debian `python3-dkim`, with `python3-nacl` for Ed25519) and Perl's Mail::DKIM
//! (`libmail-dkim-perl`). Both look keys up in a [`TestDns`](crate::dns::TestDns) on
//! loopback, as a receiving server would.
//!
//! Debian 12's Mail::DKIM (1.20230212) predates its Ed25519 support: it reports an
//! Ed25519 signature as an unsupported algorithm, which RFC 6376 treats as no
//! signature, and verifies the RSA one. That is the receiver RFC 8463's dual
//! signing is for, so it is kept as a verdict of its own rather than a failure.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// One signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `s=` of the signature.
    pub selector: String,
    /// `d=` of the signature.
    pub domain: String,
    /// `a=` of the signature.
    pub algorithm: String,
    /// How it verified.
    pub result: Outcome,
}

/// A verifier's result for one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The signature verified.
    Pass,
    /// The verifier does not implement the algorithm (so ignores the signature).
    Unsupported,
    /// It did not verify, with the verifier's reason.
    Fail(String),
}

const DKIMPY: &str = r#"
import sys, dkim, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [sys.argv[1]]
resolver.port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = resolver.resolve(name.rstrip('.'), 'TXT', lifetime=timeout)
    return b''.join(b''.join(rr.strings) for rr in answer)
message = sys.stdin.buffer.read()
d = dkim.DKIM(message)
count = sum(1 for name, _ in d.headers if name.lower() == b'dkim-signature')
for i in range(count):
    checker = dkim.DKIM(message)
    ok = checker.verify(idx=i, dnsfunc=dnsfunc)
    sig = checker.signature_fields
    get = lambda k: sig.get(k, b'').decode()
    print(get(b's'), get(b'd'), get(b'a'), 'pass' if ok else 'fail:dkimpy')
"#;

const MAIL_DKIM: &str = r#"
use strict; use warnings;
use Mail::DKIM::Verifier; use Net::DNS::Resolver;
my $resolver = Net::DNS::Resolver->new(nameservers => [$ARGV[0]], port => $ARGV[1],
    udppacketsize => 4096, recurse => 1, tcp_timeout => 5, udp_timeout => 5, retry => 1);
Mail::DKIM::DNS::resolver($resolver);
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) { $line =~ s/\r?\n\z/\r\n/; $dkim->PRINT($line); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    print join(' ', $sig->selector, $sig->domain, $sig->algorithm,
        $sig->result eq 'pass' ? 'pass'
        : ($sig->result_detail // '') =~ /unsupported algorithm/ ? 'unsupported'
        : 'fail:' . ($sig->result_detail // $sig->result)), "\n";
}
"#;

/// What dkimpy says of each signature of `message`.
///
/// # Errors
/// If Python or dkimpy is missing or the script fails.
pub async fn dkimpy(message: &[u8], dns: SocketAddr) -> anyhow::Result<Vec<Verdict>> {
    // Debian's packages live with Debian's interpreter, whatever is first on PATH.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    run(python, &["-c", DKIMPY], message, dns).await
}

/// What Mail::DKIM says of each signature of `message`.
///
/// # Errors
/// If Perl or Mail::DKIM is missing or the script fails.
pub async fn mail_dkim(message: &[u8], dns: SocketAddr) -> anyhow::Result<Vec<Verdict>> {
    run("perl", &["-e", MAIL_DKIM], message, dns).await
}

async fn run(
    program: &str,
    script: &[&str],
    message: &[u8],
    dns: SocketAddr,
) -> anyhow::Result<Vec<Verdict>> {
    let ip = dns.ip().to_string();
    let port = dns.port().to_string();
    let mut child = Command::new(program)
        .args(script)
        .args([ip.as_str(), port.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("{program} could not be started: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message).await?;
    }
    let out = child.wait_with_output().await?;
    anyhow::ensure!(
        out.status.success(),
        "{program} verifier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let selector = words.next()?.to_owned();
            let domain = words.next()?.to_owned();
            let algorithm = words.next()?.to_owned();
            let rest = words.collect::<Vec<_>>().join(" ");
            let result = match rest.as_str() {
                "pass" => Outcome::Pass,
                "unsupported" => Outcome::Unsupported,
                other => Outcome::Fail(other.trim_start_matches("fail:").to_owned()),
            };
            Some(Verdict {
                selector,
                domain,
                algorithm,
                result,
            })
        })
        .collect())
}

/// The selectors whose signatures by `domain` on `message` verify: each must pass
/// dkimpy, and pass Mail::DKIM too, except that Debian's Mail::DKIM may not know
/// Ed25519 (see above); the message must then still verify there by RSA.
///
/// # Errors
/// If a verifier cannot run, or a signature fails either one.
pub async fn both_verify(
    message: &[u8],
    domain: &str,
    dns: SocketAddr,
) -> anyhow::Result<Vec<String>> {
    let python = dkimpy(message, dns).await?;
    let perl = mail_dkim(message, dns).await?;
    let text = String::from_utf8_lossy(message);
    anyhow::ensure!(
        python.len() == perl.len(),
        "dkimpy {python:?} / Mail::DKIM {perl:?}\n{text}"
    );
    let mut selectors = Vec::new();
    for v in &python {
        anyhow::ensure!(v.domain == domain, "{v:?}");
        anyhow::ensure!(v.result == Outcome::Pass, "dkimpy: {v:?}\n{text}");
        let p = perl
            .iter()
            .find(|p| p.selector == v.selector)
            .ok_or_else(|| anyhow::anyhow!("Mail::DKIM did not see {v:?}"))?;
        let acceptable = p.result == Outcome::Pass
            || (p.result == Outcome::Unsupported && p.algorithm == "ed25519-sha256");
        anyhow::ensure!(acceptable, "Mail::DKIM: {p:?}\n{text}");
        selectors.push(v.selector.clone());
    }
    anyhow::ensure!(
        perl.iter().any(|p| p.result == Outcome::Pass),
        "Mail::DKIM verified no signature: {perl:?}"
    );
    selectors.sort();
    Ok(selectors)
}

/// What a receiving server concludes of `message` under DMARC: its `From:` domain's
/// policy, SPF for `mail_from` sent from `client_ip` (greeting as `helo`), and DKIM,
/// all through `dns`. mail-auth is the receiving side here, not maskrelay's code.
///
/// # Errors
/// If DMARC does not pass, or the domain publishes no DMARC record.
pub async fn dmarc_passes(
    message: &[u8],
    dns: SocketAddr,
    client_ip: std::net::IpAddr,
    helo: &str,
    mail_from: &str,
) -> anyhow::Result<()> {
    use mail_auth::dmarc::verify::DmarcParameters;
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use mail_auth::spf::verify::SpfParameters;
    use mail_auth::{AuthenticatedMessage, DmarcResult, MessageAuthenticator};

    let mut server = NameServerConfig::udp_and_tcp(dns.ip());
    for connection in &mut server.connections {
        connection.port = dns.port();
    }
    let auth = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(vec![server]),
        ResolverOpts::default(),
    )?;
    let parsed = AuthenticatedMessage::parse(message)
        .ok_or_else(|| anyhow::anyhow!("the message does not parse"))?;
    let dkim = auth.verify_dkim(&parsed).await;
    let spf = auth
        .verify_spf(SpfParameters::verify(
            client_ip,
            helo,
            "receiver.test",
            mail_from,
        ))
        .await;
    let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf))
        .await;
    anyhow::ensure!(dmarc.dmarc_record().is_some(), "no DMARC record was found");
    anyhow::ensure!(
        dmarc.dkim_result() == &DmarcResult::Pass && dmarc.spf_result() == &DmarcResult::Pass,
        "DMARC: dkim {:?}, spf {:?} (SPF said {:?})",
        dmarc.dkim_result(),
        dmarc.spf_result(),
        spf.result()
    );
    Ok(())
}
