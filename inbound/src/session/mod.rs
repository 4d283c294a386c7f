//! One SMTP session: a state machine driven by the bytes the client sends.
//!
//! The session is generic over its stream so that tests can drive it in memory and
//! STARTTLS can later upgrade it in place. Replies to pipelined commands are
//! collected and written together when the client's input runs dry.

mod data;
mod ehlo;
mod mail;
mod rcpt;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use maskrelay_schema::conversations::RelayAddress;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::params::SmtpParams;
use crate::reply::{self, Reply};
use crate::route::Router;

const READ_BUFFER: usize = 8192;

/// What the session is reading.
enum State {
    /// Commands.
    Command,
    /// A message after `354`.
    Data {
        receiver: DataReceiver,
        message: Vec<u8>,
    },
    /// The rest of a message that is already too big, or a BDAT chunk we refuse; the
    /// reply is sent once it has been read.
    Discard {
        receiver: DummyDataReceiver,
        reply: Reply,
    },
}

/// The mail transaction being built.
#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    recipients: Vec<RelayAddress>,
}

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
    /// `220` was queued for STARTTLS: the TLS handshake comes next.
    StartTls,
}

/// What carries over into the TLS session after STARTTLS. Everything else is
/// forgotten, as RFC 3207 requires: the client says EHLO again.
#[derive(Debug, Clone, Copy)]
pub struct Resume {
    deadline: Instant,
    errors: usize,
}

/// One client connection.
pub struct Session<T> {
    stream: T,
    peer: SocketAddr,
    params: Arc<SmtpParams>,
    router: Router,
    shutdown: CancellationToken,
    state: State,
    commands: RequestReceiver,
    helo: Option<String>,
    envelope: Envelope,
    errors: usize,
    commands_seen: usize,
    /// Bytes of the command line being received so far.
    partial_line: usize,
    out: Vec<u8>,
    /// STARTTLS is offered: an acceptor exists and the stream is not encrypted yet.
    offer_tls: bool,
    /// The stream is already encrypted.
    secured: bool,
    deadline: Instant,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// A session over `stream` with the client at `peer`.
    pub fn new(
        stream: T,
        peer: SocketAddr,
        params: Arc<SmtpParams>,
        router: Router,
        shutdown: CancellationToken,
    ) -> Self {
        let deadline = Instant::now() + params.session_timeout;
        Self {
            stream,
            peer,
            params,
            router,
            shutdown,
            state: State::Command,
            commands: RequestReceiver::default(),
            helo: None,
            envelope: Envelope::default(),
            errors: 0,
            commands_seen: 0,
            partial_line: 0,
            out: Vec::with_capacity(512),
            offer_tls: false,
            secured: false,
            deadline,
        }
    }

    /// Offers STARTTLS in the EHLO answer.
    pub fn offering_tls(mut self) -> Self {
        self.offer_tls = true;
        self
    }

    /// Continues a session over the encrypted stream after STARTTLS.
    pub fn resumed(mut self, resume: Resume) -> Self {
        self.secured = true;
        self.deadline = resume.deadline;
        self.errors = resume.errors;
        self
    }

    /// Serves the client until it quits, misbehaves, times out or we shut down.
    /// Returns the stream when the client asked for STARTTLS, for the caller to
    /// encrypt and resume on.
    pub async fn run(mut self) -> Option<(T, Resume)> {
        if !self.secured {
            reply::greeting(&self.params.hostname).write_to(&mut self.out);
            if self.flush().await.is_err() {
                return None;
            }
        }
        let deadline = self.deadline;
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.say(&reply::SESSION_TOO_LONG);
                break;
            }
            let wait = remaining.min(self.params.idle_timeout);
            let read = tokio::select! {
                _ = self.shutdown.cancelled() => {
                    self.say(&reply::SHUTTING_DOWN);
                    break;
                }
                read = tokio::time::timeout(wait, self.stream.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_) if wait < self.params.idle_timeout => {
                    self.say(&reply::SESSION_TOO_LONG);
                    break;
                }
                Err(_) => {
                    self.say(&reply::TIMEOUT);
                    break;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => n,
            };
            let flow = self.ingest(&buf[..n]).await;
            if self.flush().await.is_err() || flow == Flow::Close {
                return None;
            }
            if flow == Flow::StartTls {
                let resume = Resume {
                    deadline,
                    errors: self.errors,
                };
                return Some((self.stream, resume));
            }
        }
        let _ = self.flush().await;
        None
    }

    /// Feeds bytes from the client through the state machine.
    async fn ingest(&mut self, bytes: &[u8]) -> Flow {
        let mut iter = bytes.iter();
        loop {
            match &mut self.state {
                State::Command => match self.ingest_command(&mut iter) {
                    Ok(None) => return Flow::Close,
                    Ok(Some(request)) => {
                        match self.command(request).await {
                            Flow::Continue => {}
                            // Whatever the client pipelined after STARTTLS is dropped
                            // unread: it must not count as said under encryption.
                            flow => return flow,
                        }
                    }
                    Err(ProtoError::NeedsMoreData { .. }) => return Flow::Continue,
                    Err(e) => {
                        if self.fail(&protocol_error(&e)) == Flow::Close {
                            return Flow::Close;
                        }
                    }
                },
                State::Data { receiver, message } => {
                    let done = receiver.ingest(&mut iter, message);
                    if message.len() > self.params.max_message_size {
                        let receiver = DummyDataReceiver::new_data(receiver);
                        self.state = State::Discard {
                            receiver,
                            reply: reply::MESSAGE_TOO_BIG,
                        };
                        if done {
                            self.end_discard();
                        }
                        continue;
                    }
                    if !done {
                        return Flow::Continue;
                    }
                    let message = std::mem::take(message);
                    self.state = State::Command;
                    if self.end_data(message).await == Flow::Close {
                        return Flow::Close;
                    }
                }
                State::Discard { receiver, .. } => {
                    if !receiver.ingest(&mut iter) {
                        return Flow::Continue;
                    }
                    if self.end_discard() == Flow::Close {
                        return Flow::Close;
                    }
                }
            }
        }
    }

    /// The next command, after checking the length of the line it came on (and of
    /// the line still being received); `None` once a line is too long, which ends
    /// the session: a client that sends such lines is not speaking SMTP.
    fn ingest_command(
        &mut self,
        iter: &mut std::slice::Iter<'_, u8>,
    ) -> Result<Option<Request<String>>, ProtoError> {
        let before = iter.as_slice();
        let result = self.commands.ingest(iter).map(|r| r.into_owned());
        let consumed = &before[..before.len() - iter.as_slice().len()];
        let mut segments = consumed.split(|&b| b == b'\n');
        let first = segments.next().map_or(0, <[u8]>::len);
        let (line, pending) = match segments.next_back() {
            // A line ended here: it was what was pending plus the first segment.
            Some(last) => (self.partial_line + first + 1, last.len()),
            None => (0, self.partial_line + first),
        };
        self.partial_line = pending;
        if line > self.params.max_line_length || pending > self.params.max_line_length {
            self.say(&reply::LINE_TOO_LONG);
            return Ok(None);
        }
        result.map(Some)
    }

    async fn command(&mut self, request: Request<String>) -> Flow {
        self.commands_seen += 1;
        if self.commands_seen > self.params.max_commands {
            self.say(&reply::TOO_MANY_COMMANDS);
            return Flow::Close;
        }
        match request {
            Request::Ehlo { host } => self.ehlo(host),
            Request::Helo { host } => self.helo(host),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => self.data(),
            Request::Rset => {
                self.envelope = Envelope::default();
                self.say(&reply::RESET)
            }
            Request::Noop { .. } => self.say(&reply::OK),
            Request::Quit => {
                self.say(&reply::CLOSING);
                Flow::Close
            }
            Request::Vrfy { .. } => self.say(&reply::CANNOT_VERIFY),
            Request::StartTls => self.starttls(),
            Request::Help { .. } => self.say(&reply::HELP),
            Request::Bdat { chunk_size, .. } => {
                // CHUNKING is not offered; the chunk is read and dropped so that its
                // bytes are not taken for commands.
                self.state = State::Discard {
                    receiver: DummyDataReceiver::new_bdat(chunk_size),
                    reply: reply::NOT_IMPLEMENTED,
                };
                Flow::Continue
            }
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.fail(&reply::NOT_IMPLEMENTED),
        }
    }

    fn starttls(&mut self) -> Flow {
        if self.secured {
            return self.fail(&reply::TLS_ACTIVE);
        }
        if !self.offer_tls {
            return self.fail(&reply::NOT_IMPLEMENTED);
        }
        if self.helo.is_none() {
            return self.fail(&reply::HELO_FIRST);
        }
        self.say(&reply::START_TLS);
        Flow::StartTls
    }

    fn end_discard(&mut self) -> Flow {
        let reply = match std::mem::replace(&mut self.state, State::Command) {
            State::Discard { reply, .. } => reply,
            _ => reply::OK,
        };
        self.envelope = Envelope::default();
        self.fail(&reply)
    }

    /// Queues a reply.
    fn say(&mut self, r: &Reply) -> Flow {
        r.write_to(&mut self.out);
        Flow::Continue
    }

    /// Queues an error reply and counts it; too many errors end the session.
    fn fail(&mut self, r: &Reply) -> Flow {
        self.say(r);
        self.errors += 1;
        if self.errors >= self.params.max_errors {
            self.say(&reply::TOO_MANY_ERRORS);
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        // A client that stops reading must not hold the session forever.
        let result = tokio::time::timeout(Duration::from_secs(30), write).await;
        self.out.clear();
        match result {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

fn protocol_error(e: &ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand | ProtoError::InvalidResponse { .. } => reply::UNKNOWN_COMMAND,
        ProtoError::InvalidSenderAddress => reply::BAD_SENDER_SYNTAX,
        ProtoError::InvalidRecipientAddress => reply::BAD_RECIPIENT_SYNTAX,
        ProtoError::SyntaxError { syntax } => reply::syntax(syntax),
        ProtoError::InvalidParameter { param } => reply::bad_parameter(param),
        ProtoError::UnsupportedParameter { param } => reply::unsupported_parameter(param),
        ProtoError::ResponseTooLong => reply::LINE_TOO_LONG,
        ProtoError::NeedsMoreData { .. } => reply::UNKNOWN_COMMAND,
    }
}
