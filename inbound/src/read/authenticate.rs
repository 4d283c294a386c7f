//! Proving who a message is from: SPF, DKIM and DMARC through `mail-auth`.
//!
//! A relay address is a capability, so a reply counts as Bob's only when its `From:`
//! domain is authenticated: DMARC passes, or, where the domain publishes no DMARC
//! record, SPF or DKIM passes for a domain aligned with `From:` (relaxed alignment:
//! the same domain, or one a subdomain of the other). A domain with no SPF record and
//! no DKIM signature has no authentication at all; whether that is enough is the
//! organisation's choice. ARC is not consulted: its results are only as good as the
//! forwarder that wrote them.

use std::net::{IpAddr, SocketAddr};

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult};

use crate::error::InboundError;

/// How the `From:` domain of a message was authenticated, or why it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// DMARC passed.
    Dmarc,
    /// No DMARC record; SPF passed for an aligned envelope sender.
    AlignedSpf,
    /// No DMARC record; a DKIM signature of an aligned domain verified.
    AlignedDkim,
    /// The domain has no SPF record and the message no DKIM signature.
    Unauthenticated,
    /// Authentication was possible and failed (DMARC fail, SPF fail, bad signature,
    /// or nothing aligned with `From:`).
    Failed,
    /// DNS did not answer; the sender should try again later.
    TempError,
    /// Checking is turned off (development only).
    NotChecked,
}

impl Verdict {
    /// The value recorded with the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Dmarc => "dmarc-pass",
            Verdict::AlignedSpf => "spf-aligned-pass",
            Verdict::AlignedDkim => "dkim-aligned-pass",
            Verdict::Unauthenticated => "unauthenticated",
            Verdict::Failed => "failed",
            Verdict::TempError => "temperror",
            Verdict::NotChecked => "not-checked",
        }
    }

    /// Whether the `From:` domain is proven.
    pub fn is_pass(self) -> bool {
        matches!(
            self,
            Verdict::Dmarc | Verdict::AlignedSpf | Verdict::AlignedDkim
        )
    }
}

/// A resolver asking `nameservers` (`ip:port`), or the system's resolvers when the
/// list is empty; shared with `maskrelay dns check`, so that both ask the same DNS.
///
/// # Errors
/// [`InboundError::Resolver`] if the system configuration cannot be read.
pub fn resolver(nameservers: &[SocketAddr]) -> Result<MessageAuthenticator, InboundError> {
    if nameservers.is_empty() {
        MessageAuthenticator::new_system_conf()
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        MessageAuthenticator::new(
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    }
    .map_err(|e| InboundError::Resolver(e.to_string()))
}

/// The SMTP client a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// Its IP address.
    pub ip: IpAddr,
    /// The name it gave in EHLO/HELO.
    pub helo: &'a str,
}

/// Checks senders, or does not (development).
#[derive(Clone)]
pub struct SenderAuth {
    authenticator: Option<std::sync::Arc<MessageAuthenticator>>,
    hostname: String,
}

impl SenderAuth {
    /// Checks senders with DNS from `nameservers` (`ip` or `ip:port`), or from the
    /// system's configuration when the list is empty.
    ///
    /// # Errors
    /// [`InboundError::Resolver`] if the system configuration cannot be read.
    pub fn new(nameservers: &[SocketAddr], hostname: &str) -> Result<Self, InboundError> {
        Ok(Self {
            authenticator: Some(std::sync::Arc::new(resolver(nameservers)?)),
            hostname: hostname.to_owned(),
        })
    }

    /// Trusts the `From:` line without checking (development, never production).
    pub fn off() -> Self {
        Self {
            authenticator: None,
            hostname: String::new(),
        }
    }

    /// Whether senders are checked.
    pub fn is_on(&self) -> bool {
        self.authenticator.is_some()
    }

    /// Authenticates the domain of `from` (the `From:` address) of a raw message sent
    /// by `client` with envelope sender `mail_from` (empty for the null sender).
    pub async fn verify(
        &self,
        client: Client<'_>,
        mail_from: &str,
        from: &str,
        raw: &[u8],
    ) -> Verdict {
        let Some(auth) = &self.authenticator else {
            return Verdict::NotChecked;
        };
        let Some((_, from_domain)) = from.rsplit_once('@') else {
            return Verdict::Failed;
        };
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Verdict::Failed;
        };
        let dkim = auth.verify_dkim(&message).await;
        let spf = auth
            .verify_spf(SpfParameters::verify(
                client.ip,
                client.helo,
                &self.hostname,
                mail_from,
            ))
            .await;
        let mail_from_domain = match mail_from.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => client.helo,
        };
        let dmarc = auth
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                mail_from_domain,
                &spf,
            ))
            .await;
        if dmarc.dmarc_record().is_some() {
            return match dmarc.result() {
                DmarcResult::Pass => Verdict::Dmarc,
                DmarcResult::TempError(_) => Verdict::TempError,
                _ => Verdict::Failed,
            };
        }
        if matches!(dmarc.dkim_result(), DmarcResult::TempError(_)) {
            // The DMARC record could not be looked up.
            return Verdict::TempError;
        }
        let dkim_aligned = dkim.iter().any(|d| {
            d.result() == &DkimResult::Pass
                && d.signature().is_some_and(|s| aligned(&s.d, from_domain))
        });
        if dkim_aligned {
            return Verdict::AlignedDkim;
        }
        if spf.result() == SpfResult::Pass && aligned(mail_from_domain, from_domain) {
            return Verdict::AlignedSpf;
        }
        let temporary = spf.result() == SpfResult::TempError
            || dkim
                .iter()
                .any(|d| matches!(d.result(), DkimResult::TempError(_)));
        if temporary {
            return Verdict::TempError;
        }
        let from_has_spf = if aligned(mail_from_domain, from_domain) {
            spf.result() != SpfResult::None
        } else {
            // The envelope names another domain: ask about the From: domain itself.
            auth.verify_spf(SpfParameters::verify_mail_from(
                client.ip,
                client.helo,
                &self.hostname,
                from,
            ))
            .await
            .result()
                != SpfResult::None
        };
        if dkim.is_empty() && !from_has_spf {
            Verdict::Unauthenticated
        } else {
            Verdict::Failed
        }
    }
}

/// Relaxed alignment without a public-suffix list: the same domain, or one a
/// subdomain of the other.
fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.trim_end_matches('.').to_ascii_lowercase(),
        b.trim_end_matches('.').to_ascii_lowercase(),
    );
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_relaxed() {
        assert!(aligned("example.com", "EXAMPLE.com"));
        assert!(aligned("mail.example.com", "example.com"));
        assert!(aligned("example.com", "news.example.com."));
        assert!(!aligned("example.com", "badexample.com"));
        assert!(!aligned("example.com", "example.org"));
    }
}
