//! A small SMTP server playing the smarthost, or a recipient's MX host: it records
//! every message it accepts, and can be told to refuse a connection, a transaction or
//! a message, to hang up mid-DATA, or to offer STARTTLS.
//!
//! It is written here line by line on purpose, sharing no code with maskrelay's own
//! listener, so that it checks what maskrelay sends rather than agreeing with it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// `MAIL FROM` address.
    pub mail_from: String,
    /// `RCPT TO` addresses.
    pub rcpt_to: Vec<String>,
    /// The message, dot-stuffing removed.
    pub data: Vec<u8>,
    /// Whether it came over STARTTLS.
    pub encrypted: bool,
}

impl Delivered {
    /// The message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct Inner {
    delivered: Vec<Delivered>,
    /// Replies to give at the end of the next DATA commands, instead of 250.
    scripted: VecDeque<&'static str>,
    /// How long to think after each message before accepting it.
    delay: Duration,
    /// `MAIL FROM` commands received: transactions begun, finished or not.
    transactions: usize,
    /// Connections accepted.
    connections: usize,
    /// Replies to give instead of the greeting on the next connections.
    greetings: VecDeque<&'static str>,
    /// Replies to give to the next `MAIL FROM` commands; a 421 closes.
    mail_replies: VecDeque<&'static str>,
    /// How many of the next messages are cut off mid-DATA by closing.
    hang_ups: usize,
    /// Offer STARTTLS with this (self-signed) certificate.
    tls: Option<TlsAcceptor>,
    /// Close every connection right after accepting a message, as a server whose
    /// idle timeout is very short would.
    close_after_message: bool,
    /// Offer `AUTH PLAIN` and take mail only from this user and password.
    login: Option<(String, String)>,
    /// Users that authenticated, in order.
    logins: Vec<String>,
    /// Answer `MAIL` and `RCPT` only together with `DATA`, as a pipelining server may
    /// (RFC 2920): a client waiting for each answer before the next command waits
    /// for ever.
    answers_with_data: bool,
}

/// The running sink.
#[derive(Clone)]
pub struct Smarthost {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

impl Smarthost {
    /// Starts listening on a free loopback port.
    ///
    /// # Errors
    /// If no port can be bound.
    pub async fn start() -> anyhow::Result<Self> {
        Self::serve(TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts listening on `addr`, as an MX host on a loopback address.
    ///
    /// # Errors
    /// If `addr` cannot be bound.
    pub async fn start_at(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::serve(TcpListener::bind(addr).await?)
    }

    fn serve(listener: TcpListener) -> anyhow::Result<Self> {
        let sink = Self {
            addr: listener.local_addr()?,
            inner: Arc::default(),
            arrived: Arc::default(),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = serving.clone();
                tokio::spawn(async move {
                    let _ = s.session(stream).await;
                });
            }
        });
        Ok(sink)
    }

    /// The URL for `outbound.smarthost`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Makes the next message end with `reply` (e.g. `"451 4.3.0 try later"`).
    pub fn fail_next(&self, reply: &'static str) {
        self.lock().scripted.push_back(reply);
    }

    /// Answers the next connection with `reply` instead of a greeting, and closes.
    pub fn refuse_next_connection(&self, reply: &'static str) {
        self.lock().greetings.push_back(reply);
    }

    /// Answers the next `MAIL FROM` with `reply` (a `421` also closes).
    pub fn refuse_next_mail(&self, reply: &'static str) {
        self.lock().mail_replies.push_back(reply);
    }

    /// Closes the connection in the middle of the next message's DATA.
    pub fn hang_up_next_data(&self) {
        self.lock().hang_ups += 1;
    }

    /// Closes each connection, without a word, as soon as it has accepted a message.
    pub fn close_after_each_message(&self) {
        self.lock().close_after_message = true;
    }

    /// Offers STARTTLS from now on, with a self-signed certificate for `name`.
    ///
    /// # Errors
    /// If the certificate cannot be made.
    pub fn offer_starttls(&self, name: &str) -> anyhow::Result<()> {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()])?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)?;
        self.lock().tls = Some(TlsAcceptor::from(Arc::new(config)));
        Ok(())
    }

    /// Offers `AUTH PLAIN` from now on and takes mail only once `user` has logged in
    /// with `password`.
    pub fn require_login(&self, user: &str, password: &str) {
        self.lock().login = Some((user.to_owned(), password.to_owned()));
    }

    /// Users that logged in so far.
    pub fn logins(&self) -> Vec<String> {
        self.lock().logins.clone()
    }

    /// Answers `MAIL` and `RCPT` only together with the `DATA` after them.
    pub fn answer_with_data(&self) {
        self.lock().answers_with_data = true;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// Makes every later `DATA` wait `delay` before `354`, so that deliveries are
    /// still in progress, their message not yet sent, when a test kills the gateway.
    pub fn slow_down(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// How many mail transactions were begun (`MAIL FROM`), whether or not they
    /// ended with a message: a second attempt at one delivery shows here at once.
    pub fn transactions(&self) -> usize {
        self.lock().transactions
    }

    /// Everything accepted so far.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.lock().delivered.clone()
    }

    /// Waits until at least `count` messages were accepted.
    ///
    /// # Errors
    /// If they do not arrive within `timeout`.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Delivered>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let delivered = self.delivered();
            if delivered.len() >= count {
                return Ok(delivered);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!(
                    "expected {count} messages at the smarthost, got {}",
                    delivered.len()
                );
            }
        }
    }

    /// Waits until a message whose bytes contain `needle` was accepted, and returns
    /// it; for tests where other mail (a notice) may arrive in between.
    ///
    /// # Errors
    /// If none arrives within `timeout`.
    pub async fn wait_containing(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<Delivered> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(found) = self
                .delivered()
                .into_iter()
                .find(|d| d.text().contains(needle))
            {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!("no message containing {needle:?} reached the smarthost");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let (greeting, tls) = {
            let mut inner = self.lock();
            inner.connections += 1;
            (inner.greetings.pop_front(), inner.tls.clone())
        };
        let mut lines = BufReader::new(stream);
        if let Some(reply) = greeting {
            // A refusal at the door, then the connection closes (RFC 5321 §3.1).
            lines
                .get_mut()
                .write_all(format!("{reply}\r\n").as_bytes())
                .await?;
            return Ok(());
        }
        lines
            .get_mut()
            .write_all(b"220 sink.test ESMTP test smarthost\r\n")
            .await?;
        if let Some(plain) = self.converse(lines, tls.is_some(), false).await?
            && let Some(acceptor) = tls
        {
            let encrypted = acceptor.accept(plain).await?;
            self.converse(BufReader::new(encrypted), false, true)
                .await?;
        }
        Ok(())
    }

    /// One SMTP conversation; returns the connection when the client asked for
    /// STARTTLS (and it was offered).
    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut lines: BufReader<S>,
        offer_tls: bool,
        encrypted: bool,
    ) -> std::io::Result<Option<S>> {
        let mut mail_from = String::new();
        let mut rcpt_to = Vec::new();
        let mut line = Vec::new();
        let (mut in_mail, mut logged_in) = (false, false);
        // Answers to `MAIL` and `RCPT` not yet written (see `answer_with_data`).
        let mut held = Vec::new();
        loop {
            line.clear();
            if lines.read_until(b'\n', &mut line).await? == 0 {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let upper = text.to_ascii_uppercase();
            let reply: Vec<u8> = if upper.starts_with("EHLO") {
                let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
                let auth = if self.lock().login.is_some() {
                    "250-AUTH PLAIN\r\n"
                } else {
                    ""
                };
                format!("250-sink.test\r\n{tls}{auth}250-8BITMIME\r\n250 PIPELINING\r\n").into()
            } else if upper.starts_with("AUTH PLAIN ") {
                let encoded = text.get("AUTH PLAIN ".len()..).unwrap_or_default();
                match self.log_in(encoded) {
                    Some(user) => {
                        logged_in = true;
                        self.lock().logins.push(user);
                        b"235 2.7.0 Authentication successful\r\n".to_vec()
                    }
                    None => b"535 5.7.8 Authentication credentials invalid\r\n".to_vec(),
                }
            } else if upper == "STARTTLS" && offer_tls {
                lines.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
                return Ok(Some(lines.into_inner()));
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                b"250 OK\r\n".to_vec()
            } else if upper.starts_with("MAIL FROM:") {
                mail_from = angle(&text);
                rcpt_to.clear();
                in_mail = false;
                if self.lock().login.is_some() && !logged_in {
                    self.answer(
                        &mut lines,
                        &mut held,
                        b"530 5.7.0 Authentication required\r\n",
                    )
                    .await?;
                    continue;
                }
                let refusal = {
                    let mut inner = self.lock();
                    inner.transactions += 1;
                    inner.mail_replies.pop_front()
                };
                if let Some(reply) = refusal {
                    if reply.starts_with("421") {
                        lines.get_mut().write_all(&held).await?;
                        lines
                            .get_mut()
                            .write_all(format!("{reply}\r\n").as_bytes())
                            .await?;
                        return Ok(None);
                    }
                    self.answer(&mut lines, &mut held, format!("{reply}\r\n").as_bytes())
                        .await?;
                    continue;
                }
                in_mail = true;
                self.answer(&mut lines, &mut held, b"250 2.1.0 OK\r\n")
                    .await?;
                continue;
            } else if upper.starts_with("RCPT TO:") {
                let reply: &[u8] = if in_mail {
                    rcpt_to.push(angle(&text));
                    b"250 2.1.5 OK\r\n"
                } else {
                    b"503 5.5.1 Error: need MAIL command\r\n"
                };
                self.answer(&mut lines, &mut held, reply).await?;
                continue;
            } else if upper == "DATA" && rcpt_to.is_empty() {
                lines
                    .get_mut()
                    .write_all(&std::mem::take(&mut held))
                    .await?;
                b"503 5.5.1 Error: need RCPT command\r\n".to_vec()
            } else if upper == "DATA" {
                lines
                    .get_mut()
                    .write_all(&std::mem::take(&mut held))
                    .await?;
                let (delay, hang_up) = {
                    let mut inner = self.lock();
                    let hang_up = inner.hang_ups > 0;
                    inner.hang_ups = inner.hang_ups.saturating_sub(1);
                    (inner.delay, hang_up)
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                lines.get_mut().write_all(b"354 go ahead\r\n").await?;
                if hang_up {
                    // Read a little of the message, then vanish without a reply.
                    let mut some = Vec::new();
                    lines.read_until(b'\n', &mut some).await?;
                    return Ok(None);
                }
                let data = read_data(&mut lines).await?;
                let scripted = self.lock().scripted.pop_front();
                if let Some(reply) = scripted {
                    lines
                        .get_mut()
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await?;
                    continue;
                }
                self.lock().delivered.push(Delivered {
                    mail_from: mail_from.clone(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                    encrypted,
                });
                self.arrived.notify_waiters();
                if self.lock().close_after_message {
                    lines.get_mut().write_all(b"250 2.0.0 queued\r\n").await?;
                    return Ok(None);
                }
                b"250 2.0.0 queued\r\n".to_vec()
            } else if upper.starts_with("RSET") {
                rcpt_to.clear();
                in_mail = false;
                b"250 OK\r\n".to_vec()
            } else if upper.starts_with("QUIT") {
                lines.get_mut().write_all(b"221 bye\r\n").await?;
                return Ok(None);
            } else {
                b"502 5.5.1 unknown\r\n".to_vec()
            };
            lines.get_mut().write_all(&reply).await?;
        }
    }
}

impl Smarthost {
    /// Writes an answer to `MAIL` or `RCPT`, or holds it for the `DATA` to come.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        lines: &mut BufReader<S>,
        held: &mut Vec<u8>,
        reply: &[u8],
    ) -> std::io::Result<()> {
        held.extend_from_slice(reply);
        if !self.lock().answers_with_data {
            lines.get_mut().write_all(&std::mem::take(held)).await?;
        }
        Ok(())
    }

    /// The user `AUTH PLAIN`'s argument logs in, if its password is right.
    fn log_in(&self, encoded: &str) -> Option<String> {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let mut parts = decoded.split(|&b| b == 0).skip(1);
        let (user, password) = (parts.next()?, parts.next()?);
        let (want_user, want_password) = self.lock().login.clone()?;
        (user == want_user.as_bytes() && password == want_password.as_bytes()).then_some(want_user)
    }
}

fn angle(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(line.len());
    line[start..end].to_owned()
}

async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}
