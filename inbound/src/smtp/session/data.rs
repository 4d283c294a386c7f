//! `DATA`: receiving the message, then deciding on it before answering.

use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State};
use crate::read::authenticate::Client;
use crate::reply;
use crate::route::Transaction;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    pub(super) fn data(&mut self) -> Flow {
        if self.envelope.mail_from.is_none() {
            return self.fail(&reply::MAIL_FIRST);
        }
        if self.envelope.recipients.is_empty()
            && self.envelope.bounces.is_empty()
            && !self.envelope.unsubscribe
            && self.envelope.broadcast.is_none()
        {
            return self.fail(&reply::NO_VALID_RECIPIENTS);
        }
        self.state = State::Data {
            receiver: DataReceiver::new(),
            message: Vec::with_capacity(16 * 1024),
        };
        self.say(&reply::START_DATA)
    }

    /// The message is complete: route it, and answer only once it is stored.
    pub(super) async fn end_data(&mut self, message: Vec<u8>) -> Flow {
        let envelope = std::mem::take(&mut self.envelope);
        let mail_from = envelope.mail_from.unwrap_or_default();
        let tx = Transaction {
            client: Client {
                ip: self.peer.ip(),
                helo: self.helo.as_deref().unwrap_or_default(),
            },
            mail_from: &mail_from,
            recipients: &envelope.recipients,
            bounces: &envelope.bounces,
            unsubscribe: envelope.unsubscribe,
            broadcast: envelope.broadcast.as_ref(),
        };
        let answer = self.router.accept(&tx, &message).await;
        // The envelope was taken above, so the next transaction starts empty either way.
        if answer.is_error() {
            self.fail(&answer)
        } else {
            self.say(&answer)
        }
    }
}
