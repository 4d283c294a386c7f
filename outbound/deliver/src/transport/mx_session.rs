//! One SMTP connection to a receiving mail server: greeting, EHLO, STARTTLS when
//! offered, then any number of transactions. The smarthost's connections, opened by
//! mail-send's client builder (AUTH, implicit TLS), carry their transactions here too.
//!
//! Certificates are not verified, as Postfix's `may` and `encrypt` levels do not:
//! almost no MX host has a certificate for the name that points to it, and refusing
//! them would only push mail back to plain text. STARTTLS still defeats passive
//! reading; checking names is MTA-STS's and DANE's job.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use mail_send::smtp::message::Parameters;
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EXT_PIPELINING, EXT_START_TLS, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What went wrong, in terms of what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No usable connection (refused, timeout, dropped, unreadable reply, bad
    /// greeting): try the next host.
    Connection(String),
    /// The TLS handshake failed after `220 Go ahead`; the connection is gone.
    Handshake,
    /// `outbound.tls = "require"` and the server offers no STARTTLS.
    NoStartTls,
    /// A 4xx reply: try the next host, or later.
    Temporary(String),
    /// A 421 or 450 with an enhanced status 4.7.x: the destination wants us to slow
    /// down.
    RateLimited(String),
    /// A 5xx reply: the message will never be accepted.
    Permanent(String),
}

impl Failure {
    /// The words for the queue: the code and enhanced status, never the remote text
    /// (it often repeats the recipient's address).
    pub fn reason(&self) -> String {
        match self {
            Failure::Connection(why) => format!("connection: {why}"),
            Failure::Handshake => "TLS handshake failed".into(),
            Failure::NoStartTls => "the receiving server does not offer STARTTLS, which \
                                    outbound.tls = \"require\" demands"
                .into(),
            Failure::Temporary(r) | Failure::RateLimited(r) | Failure::Permanent(r) => r.clone(),
        }
    }
}

enum Stream {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// An open, greeted connection, ready for `MAIL FROM`.
pub struct Session {
    stream: Stream,
    /// Where it goes.
    pub addr: SocketAddr,
    /// Whether STARTTLS succeeded.
    pub encrypted: bool,
    /// Whether the server takes `MAIL`, `RCPT` and `DATA` in one write (RFC 2920).
    pub pipelining: bool,
    /// When its last transaction ended.
    pub idle_since: Instant,
    /// Transactions it has carried.
    pub transactions: u32,
}

/// How to open a session.
#[derive(Clone, Copy)]
pub struct Opening<'a> {
    /// Our name in EHLO.
    pub helo: &'a str,
    /// The host's name, for TLS's server name indication.
    pub host: &'a str,
    /// `None` to stay in plain text; otherwise try STARTTLS with it.
    pub tls: Option<&'a TlsConnector>,
    /// Refuse to go on without STARTTLS.
    pub require_tls: bool,
    /// Time limit of the connection and of each command.
    pub timeout: Duration,
}

impl Session {
    /// Connects to `addr`, reads the greeting, says EHLO and starts TLS when the
    /// server offers it and `how.tls` is set.
    ///
    /// # Errors
    /// A [`Failure`] saying whether to try another host.
    pub async fn open(addr: SocketAddr, how: Opening<'_>) -> Result<Self, Failure> {
        let connect_timeout = how.timeout.min(Duration::from_secs(30));
        let mut client = SmtpClient::connect(addr, connect_timeout)
            .await
            .map_err(|e| connection_failure(&e))?;
        client.timeout = how.timeout;
        // mail-send writes the message and its final dot separately; with Nagle's
        // algorithm the dot would wait for the peer's delayed ACK.
        let _ = client.stream.set_nodelay(true);
        let greeting = tokio::time::timeout(how.timeout, client.read())
            .await
            .map_err(|_| Failure::Connection("no greeting".into()))?
            .map_err(|e| connection_failure(&e))?;
        if greeting.code != 220 {
            return Err(match reply_failure(greeting.code, greeting.esc) {
                rate @ Failure::RateLimited(_) => rate,
                _ => Failure::Connection(format!("greeting {}", greeting.code)),
            });
        }
        let ehlo = client.ehlo(how.helo).await.map_err(|e| classify(&e))?;
        let offers_tls = ehlo.has_capability(EXT_START_TLS);
        let Some(connector) = how.tls.filter(|_| offers_tls) else {
            if how.require_tls {
                let _ = client.quit().await;
                return Err(Failure::NoStartTls);
            }
            let pipelining = ehlo.has_capability(EXT_PIPELINING);
            return Ok(Self::new(Stream::Plain(client), addr, false, pipelining));
        };
        let reply = client
            .cmd(b"STARTTLS\r\n")
            .await
            .map_err(|e| connection_failure(&e))?;
        if reply.code != 220 {
            if how.require_tls {
                return Err(Failure::NoStartTls);
            }
            // Refused: the connection is still a plain one in its EHLO state.
            let pipelining = ehlo.has_capability(EXT_PIPELINING);
            return Ok(Self::new(Stream::Plain(client), addr, false, pipelining));
        }
        let mut client = client
            .into_tls(connector, how.host)
            .await
            .map_err(|_| Failure::Handshake)?;
        // The capabilities before TLS do not count (RFC 3207 §4.2).
        let ehlo = client.ehlo(how.helo).await.map_err(|e| classify(&e))?;
        let pipelining = ehlo.has_capability(EXT_PIPELINING);
        Ok(Self::new(
            Stream::Tls(Box::new(client)),
            addr,
            true,
            pipelining,
        ))
    }

    /// A plain connection another client opened and greeted (the smarthost's).
    pub fn adopt_plain(client: SmtpClient<TcpStream>, addr: SocketAddr, pipelining: bool) -> Self {
        Self::new(Stream::Plain(client), addr, false, pipelining)
    }

    /// A TLS connection another client opened and greeted (the smarthost's).
    pub fn adopt_tls(
        client: SmtpClient<TlsStream<TcpStream>>,
        addr: SocketAddr,
        pipelining: bool,
    ) -> Self {
        Self::new(Stream::Tls(Box::new(client)), addr, true, pipelining)
    }

    fn new(stream: Stream, addr: SocketAddr, encrypted: bool, pipelining: bool) -> Self {
        Self {
            stream,
            addr,
            encrypted,
            pipelining,
            idle_since: Instant::now(),
            transactions: 0,
        }
    }

    /// Sends one message to one recipient.
    ///
    /// # Errors
    /// A [`Failure`]; after a reply failure the session is reset and may be used
    /// again, which [`Session::usable_after`] says.
    pub async fn send(
        &mut self,
        mail_from: &str,
        rcpt_to: &str,
        content: &[u8],
    ) -> Result<(), Failure> {
        self.transactions += 1;
        let outcome = match &mut self.stream {
            Stream::Plain(c) => transaction(c, mail_from, rcpt_to, content, self.pipelining).await,
            Stream::Tls(c) => {
                transaction(c.as_mut(), mail_from, rcpt_to, content, self.pipelining).await
            }
        };
        self.idle_since = Instant::now();
        outcome
    }

    /// Whether the connection can carry another transaction after `failure`.
    pub fn usable_after(failure: &Failure) -> bool {
        matches!(failure, Failure::Temporary(_) | Failure::Permanent(_))
    }

    /// Says goodbye; the answer does not matter.
    pub async fn quit(self) {
        match self.stream {
            Stream::Plain(c) => drop(c.quit().await),
            Stream::Tls(c) => drop(c.quit().await),
        }
    }
}

async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    mail_from: &str,
    rcpt_to: &str,
    content: &[u8],
    pipelining: bool,
) -> Result<(), Failure> {
    let none = Parameters::default();
    let sent = async {
        if pipelining {
            return pipelined(client, mail_from, rcpt_to, content).await;
        }
        client.mail_from(mail_from, &none).await?;
        client.rcpt_to(rcpt_to, &none).await?;
        client.data(content).await
    }
    .await;
    match sent {
        Ok(()) => Ok(()),
        Err(e) => {
            let failure = classify(&e);
            if Session::usable_after(&failure) && client.rset().await.is_err() {
                return Err(Failure::Connection(format!(
                    "lost after {}",
                    failure.reason()
                )));
            }
            Err(failure)
        }
    }
}

/// `MAIL`, `RCPT` and `DATA` written together and answered together (RFC 2920):
/// one round trip where there were three, then the message.
async fn pipelined<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    mail_from: &str,
    rcpt_to: &str,
    content: &[u8],
) -> mail_send::Result<()> {
    let envelope = format!("MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt_to}>\r\nDATA\r\n");
    let timeout = client.timeout;
    let replies = tokio::time::timeout(timeout, async {
        client.stream.write_all(envelope.as_bytes()).await?;
        client.stream.flush().await?;
        replies(&mut client.stream, 3).await
    })
    .await
    .map_err(|_| mail_send::Error::Timeout)??;
    let refused = replies
        .iter()
        .take(2)
        .find(|reply| !reply.is_positive_completion())
        .cloned();
    match (refused, replies.get(2)) {
        (None, Some(data)) if data.code == 354 => {}
        (Some(refusal), Some(data)) if data.code == 354 => {
            // The server took DATA although it refused the envelope: end the message
            // empty, and the transaction fails with the first refusal.
            client.cmd(b".\r\n").await?;
            return Err(mail_send::Error::UnexpectedReply(refusal));
        }
        (Some(refusal), _) => return Err(mail_send::Error::UnexpectedReply(refusal)),
        (None, Some(data)) => return Err(mail_send::Error::UnexpectedReply(data.clone())),
        // Closed before answering everything, refusing nothing.
        (None, None) => return Err(mail_send::Error::UnparseableReply),
    }
    tokio::time::timeout(timeout, async {
        client.write_message(content).await?;
        client.read().await
    })
    .await
    .map_err(|_| mail_send::Error::Timeout)??
    .assert_positive_completion()
}

/// Up to `n` replies, fewer if the server closes after them (a `421` to `MAIL`).
/// One read may carry several replies: mail-send's `read` would drop all but the
/// first.
async fn replies<T: AsyncRead + Unpin>(
    stream: &mut T,
    n: usize,
) -> mail_send::Result<Vec<Response<String>>> {
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::with_capacity(n);
    let mut parser = ResponseReceiver::default();
    while got.len() < n {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        let mut bytes = buf[..read].iter();
        while got.len() < n {
            match parser.parse(&mut bytes) {
                Ok(reply) => {
                    got.push(reply);
                    parser.reset();
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                Err(_) => return Err(mail_send::Error::UnparseableReply),
            }
        }
    }
    Ok(got)
}

/// Sorts a client error; a reply keeps only its code and enhanced status.
fn classify(e: &mail_send::Error) -> Failure {
    match e {
        mail_send::Error::UnexpectedReply(r) => reply_failure(r.code, r.esc),
        other => connection_failure(other),
    }
}

fn reply_failure(code: u16, esc: [u8; 3]) -> Failure {
    let [c0, c1, c2] = esc;
    let text = if c0 == 0 {
        format!("smtp {code}")
    } else {
        format!("smtp {code} {c0}.{c1}.{c2}")
    };
    match code {
        500..=599 => Failure::Permanent(text),
        421 | 450 if c0 == 4 && c1 == 7 => Failure::RateLimited(text),
        _ => Failure::Temporary(text),
    }
}

fn connection_failure(e: &mail_send::Error) -> Failure {
    use mail_send::Error as E;
    Failure::Connection(match e {
        E::Io(io) => format!("{}", io.kind()),
        E::Timeout => "timeout".into(),
        E::UnparseableReply => "closed or unreadable reply".into(),
        E::Tls(_) => "TLS".into(),
        _ => "smtp client error".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_sort_into_what_to_do_next() {
        assert!(matches!(
            reply_failure(421, [4, 7, 0]),
            Failure::RateLimited(_)
        ));
        assert!(matches!(
            reply_failure(450, [4, 7, 1]),
            Failure::RateLimited(_)
        ));
        assert!(matches!(
            reply_failure(451, [4, 7, 1]),
            Failure::Temporary(_)
        ));
        assert!(matches!(
            reply_failure(421, [4, 4, 2]),
            Failure::Temporary(_)
        ));
        assert!(matches!(
            reply_failure(421, [0, 0, 0]),
            Failure::Temporary(_)
        ));
        assert_eq!(
            reply_failure(550, [5, 1, 1]),
            Failure::Permanent("smtp 550 5.1.1".into())
        );
        assert_eq!(reply_failure(554, [0, 0, 0]).reason(), "smtp 554");
    }
}
