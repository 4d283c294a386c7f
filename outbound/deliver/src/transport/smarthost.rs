//! Delivery through a smarthost: every message goes to one SMTP server, which relays
//! it onwards.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use smtp_proto::EXT_PIPELINING;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::DeliveryError;
use crate::transport::mx_session::{Failure, Session};
use crate::transport::pool::Pool;

/// Idle connections kept to the smarthost: as many as deliveries usually run at once.
const SMARTHOST_IDLE_CONNECTIONS: usize = 8;

/// How the connection to the smarthost is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain text (a smarthost on the same host or a trusted network).
    Plain,
    /// `smtp+starttls://`: STARTTLS is required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

/// A smarthost parsed from a URL such as `smtp://mail.example.org:587`.
#[derive(Clone)]
pub struct Smarthost {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport security.
    pub security: Security,
    /// Optional `user:password` for SMTP AUTH.
    pub credentials: Option<(String, String)>,
    /// The client settings, built once: building them loads the system's TLS roots,
    /// which is far too slow to repeat for every delivery.
    client: OnceLock<Result<SmtpClientBuilder<String>, String>>,
    /// Connections kept open between messages.
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Smarthost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smarthost")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

impl FromStr for Smarthost {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL like smtp://host:port"))?;
        let (security, default_port) = match scheme {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::ImplicitTls, 465),
            other => {
                return Err(format!(
                    "unknown scheme {other:?}: use smtp://, smtp+starttls:// or smtps://"
                ));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, pass) = userinfo
                    .split_once(':')
                    .ok_or("credentials must be written user:password@host")?;
                (Some((user.to_owned(), pass.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || hostport.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{port:?} is not a port number"))?;
                (host, port)
            }
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the smarthost URL has no host".into());
        }
        Ok(Smarthost {
            host: host.to_owned(),
            port,
            security,
            credentials,
            client: OnceLock::new(),
            pool: Arc::new(Pool::new(SMARTHOST_IDLE_CONNECTIONS)),
        })
    }
}

impl Smarthost {
    /// Sends `content` from `mail_from` to `rcpt_to`, greeting as `helo`; `helo` and
    /// `timeout` are fixed by the first call, as they are per worker. A connection
    /// is kept a few seconds for the next message ([`crate::transport::pool`]).
    ///
    /// # Errors
    /// [`DeliveryError::Permanent`] for a 5xx reply, otherwise
    /// [`DeliveryError::Temporary`].
    pub async fn send(
        &self,
        helo: &str,
        mail_from: &str,
        rcpt_to: &str,
        content: &[u8],
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let builder = self
            .client
            .get_or_init(|| self.client_builder(helo, timeout))
            .as_ref()
            .map_err(|e| DeliveryError::Temporary(format!("TLS setup: {e}")))?;
        let server = format!("{}:{}", self.host, self.port);
        // A failed connection is told in mail-send's terms (AUTH, TLS, greeting).
        let mut refused = None;
        let slot = &mut refused;
        let open = move || async move {
            self.connect(builder, helo).await.map_err(|e| {
                *slot = Some(e);
                Failure::Connection(String::new())
            })
        };
        let sent = self
            .pool
            .send(&server, open, mail_from, rcpt_to, content)
            .await;
        match (sent, refused) {
            (Ok(()), _) => Ok(()),
            // The connection itself failed: mail-send's error says how.
            (Err(_), Some(e)) => Err(e),
            (Err(Failure::Permanent(reason)), None) => Err(DeliveryError::Permanent(reason)),
            (Err(failure), None) => Err(DeliveryError::Temporary(failure.reason())),
        }
    }

    /// Closes connections kept past their time.
    pub fn tidy(&self) {
        self.pool.tidy();
    }

    /// A new connection: greeted, with STARTTLS and AUTH as configured.
    async fn connect(
        &self,
        builder: &SmtpClientBuilder<String>,
        helo: &str,
    ) -> Result<Session, DeliveryError> {
        match self.security {
            Security::Plain => {
                let mut client = builder.connect_plain().await.map_err(classify)?;
                let pipelining = self.greet(&mut client, helo).await.map_err(classify)?;
                // mail-send writes the message and its final dot separately; with
                // Nagle's algorithm the dot waits for the peer's delayed ACK (~40 ms).
                let _ = client.stream.set_nodelay(true);
                let peer = client
                    .stream
                    .peer_addr()
                    .map_err(|e| DeliveryError::Temporary(format!("connection: {}", e.kind())))?;
                Ok(Session::adopt_plain(client, peer, pipelining))
            }
            Security::StartTls | Security::ImplicitTls => {
                let mut client = builder.connect().await.map_err(classify)?;
                let pipelining = self.greet(&mut client, helo).await.map_err(classify)?;
                let tcp = client.stream.get_ref().0;
                let _ = tcp.set_nodelay(true);
                let peer = tcp
                    .peer_addr()
                    .map_err(|e| DeliveryError::Temporary(format!("connection: {}", e.kind())))?;
                Ok(Session::adopt_tls(client, peer, pipelining))
            }
        }
    }
}

impl Smarthost {
    /// Says EHLO (after TLS, if any) and authenticates as configured; whether the
    /// smarthost offers pipelining. mail-send would say EHLO itself, but keeps what
    /// the answer offered to itself.
    async fn greet<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
        helo: &str,
    ) -> mail_send::Result<bool> {
        let offered = client.capabilities(helo, false).await?;
        if let Some((user, pass)) = &self.credentials {
            client
                .authenticate(Credentials::new(user.as_str(), pass.as_str()), &offered)
                .await?;
        }
        Ok(offered.has_capability(EXT_PIPELINING))
    }

    fn client_builder(
        &self,
        helo: &str,
        timeout: Duration,
    ) -> Result<SmtpClientBuilder<String>, String> {
        let builder = SmtpClientBuilder::new(self.host.clone(), self.port)?
            .helo_host(helo)
            .timeout(timeout)
            .implicit_tls(self.security == Security::ImplicitTls)
            .say_ehlo(false);
        Ok(builder)
    }
}

/// Sorts a client error into temporary or permanent, keeping only the reply code:
/// the text of a remote reply often repeats the recipient's address.
fn classify(e: mail_send::Error) -> DeliveryError {
    use mail_send::Error as E;
    match e {
        // Our login refused is our configuration, not the message: it waits for the
        // operator to mend it, as Postfix soft-bounces (`smtp_sasl_auth_soft_bounce`).
        E::AuthenticationFailed(r) => {
            let [c0, c1, c2] = r.esc;
            tracing::error!(
                code = r.code(),
                "the smarthost refused our login: check outbound.smarthost's user and password"
            );
            DeliveryError::Temporary(format!(
                "smarthost login refused: smtp {} {c0}.{c1}.{c2}",
                r.code()
            ))
        }
        E::UnexpectedReply(r) => {
            let code = r.code();
            let [c0, c1, c2] = r.esc;
            let text = format!("smtp {code} {c0}.{c1}.{c2}");
            if (500..600).contains(&code) {
                DeliveryError::Permanent(text)
            } else {
                DeliveryError::Temporary(text)
            }
        }
        E::Io(io) => DeliveryError::Temporary(format!("connection: {}", io.kind())),
        E::Timeout => DeliveryError::Temporary("timeout".into()),
        E::Tls(_) => DeliveryError::Temporary("TLS handshake failed".into()),
        E::MissingStartTls => DeliveryError::Temporary("smarthost does not offer STARTTLS".into()),
        other => DeliveryError::Temporary(format!("smtp client: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_smarthost_with_port() -> Result<(), String> {
        let s: Smarthost = "smtp://127.0.0.1:2526".parse()?;
        assert_eq!(
            (s.host.as_str(), s.port, s.security),
            ("127.0.0.1", 2526, Security::Plain)
        );
        Ok(())
    }

    #[test]
    fn default_ports_follow_the_scheme() -> Result<(), String> {
        assert_eq!("smtp://mx".parse::<Smarthost>()?.port, 25);
        assert_eq!("smtp+starttls://mx".parse::<Smarthost>()?.port, 587);
        assert_eq!("smtps://mx".parse::<Smarthost>()?.port, 465);
        Ok(())
    }

    #[test]
    fn parses_credentials_and_hides_them_from_debug() -> Result<(), String> {
        let s: Smarthost = "smtps://user:s3cret@mail.example.org".parse()?;
        assert_eq!(s.credentials, Some(("user".into(), "s3cret".into())));
        assert!(!format!("{s:?}").contains("s3cret"));
        Ok(())
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for bad in [
            "mail.example.org",
            "http://x",
            "smtp://",
            "smtp://h:notaport",
        ] {
            assert!(bad.parse::<Smarthost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_bracketed_ipv6() -> Result<(), String> {
        let s: Smarthost = "smtp://[::1]:2526".parse()?;
        assert_eq!((s.host.as_str(), s.port), ("::1", 2526));
        Ok(())
    }
}
