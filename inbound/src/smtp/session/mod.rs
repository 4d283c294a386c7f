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

use maskrelay_schema::routing::Route;
use maskrelay_schema::{BroadcastId, DeliveryId};
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::reply::{self, Reply};
use crate::route::Router;
use crate::smtp::params::SmtpParams;
use crate::smtp::pressure::Ticket;

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
    recipients: Vec<Route>,
    /// Deliveries named by VERP addresses (bounces coming back).
    bounces: Vec<DeliveryId>,
    /// The unsubscribe address is a recipient.
    unsubscribe: bool,
    /// A broadcast's address is a recipient.
    broadcast: Option<BroadcastId>,
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
pub struct Resume {
    deadline: Instant,
    errors: usize,
    ticket: Ticket,
}

impl Resume {
    /// Whether the listener is in stress mode (the handshake gets less time).
    pub fn is_stressed(&self) -> bool {
        self.ticket.is_stressed()
    }

    /// Cancelled if the session is reclaimed during the TLS handshake.
    pub fn reclaim_token(&self) -> CancellationToken {
        self.ticket.reclaim_token()
    }
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
    /// This session's place on the listener (stress mode, reclaiming).
    ticket: Ticket,
    /// When the last command completed: the next one is due within the timeout.
    progress_at: Instant,
    /// Bytes of message data received since `progress_at` (the `354`).
    data_received: usize,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// A session over `stream` with the client at `peer`, in the place `ticket`.
    pub fn new(
        stream: T,
        peer: SocketAddr,
        params: Arc<SmtpParams>,
        router: Router,
        shutdown: CancellationToken,
        ticket: Ticket,
    ) -> Self {
        let now = Instant::now();
        let deadline = now + params.session_timeout;
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
            ticket,
            progress_at: now,
            data_received: 0,
        }
    }

    /// Offers STARTTLS in the EHLO answer.
    pub fn offering_tls(mut self) -> Self {
        self.offer_tls = true;
        self
    }

    /// Continues a session over the encrypted stream after STARTTLS.
    pub fn resumed(
        stream: T,
        peer: SocketAddr,
        params: Arc<SmtpParams>,
        router: Router,
        shutdown: CancellationToken,
        resume: Resume,
    ) -> Self {
        let mut session = Self::new(stream, peer, params, router, shutdown, resume.ticket);
        session.secured = true;
        session.deadline = resume.deadline;
        session.errors = resume.errors;
        session
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
        let reclaim = self.ticket.reclaim_token();
        let mut stress = self.ticket.stress_watch();
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.say(&reply::SESSION_TOO_LONG);
                break;
            }
            let due = self.input_due().min(deadline);
            let read = tokio::select! {
                _ = self.shutdown.cancelled() => {
                    self.say(&reply::SHUTTING_DOWN);
                    break;
                }
                _ = reclaim.cancelled() => {
                    self.say(&reply::RECLAIMED);
                    break;
                }
                // Stress mode began or ended: the input is due at another time.
                Ok(()) = stress.changed() => continue,
                read = tokio::time::timeout_at(due, self.stream.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_) if due >= deadline => {
                    self.say(&reply::SESSION_TOO_LONG);
                    break;
                }
                Err(_) => {
                    self.ticket.timed_out();
                    self.say(&reply::TIMEOUT);
                    break;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => n,
            };
            if !matches!(self.state, State::Command) {
                self.data_received = self.data_received.saturating_add(n);
            }
            let flow = self.ingest(&buf[..n]).await;
            if self.flush().await.is_err() || flow == Flow::Close {
                return None;
            }
            if flow == Flow::StartTls {
                let resume = Resume {
                    deadline,
                    errors: self.errors,
                    ticket: self.ticket,
                };
                return Some((self.stream, resume));
            }
        }
        let _ = self.flush().await;
        None
    }

    /// When the client's next input is due. A command must be complete within the
    /// timeout of the previous one's end, however it trickles in; message data must
    /// keep up the minimum rate after that.
    fn input_due(&self) -> Instant {
        let timeout = if self.ticket.is_stressed() {
            self.params.stress_timeout
        } else {
            self.params.idle_timeout
        };
        let due = self.progress_at + timeout;
        match self.state {
            State::Command => due,
            State::Data { .. } | State::Discard { .. } => {
                let rate = self.params.min_data_rate.max(1);
                let allowed = self.data_received / rate;
                due + Duration::from_secs(u64::try_from(allowed).unwrap_or(u64::MAX))
            }
        }
    }

    /// The client completed a command or a message.
    fn progressed(&mut self) {
        self.progress_at = Instant::now();
        self.data_received = 0;
        self.ticket.progressed();
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
                    let flow = self.end_data(message).await;
                    // The time spent deciding on the message is ours, not the client's.
                    self.progressed();
                    if flow == Flow::Close {
                        return Flow::Close;
                    }
                }
                State::Discard { receiver, .. } => {
                    if !receiver.ingest(&mut iter) {
                        return Flow::Continue;
                    }
                    self.progressed();
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
        self.progressed();
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

    /// Queues an error reply and counts it; too many errors end the session (under
    /// stress, the first one does).
    fn fail(&mut self, r: &Reply) -> Flow {
        self.say(r);
        self.errors += 1;
        let budget = if self.ticket.is_stressed() {
            1
        } else {
            self.params.max_errors
        };
        if self.errors >= budget {
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
