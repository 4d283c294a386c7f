//! `MAIL FROM`: starting a transaction.

use smtp_proto::MailFrom;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::reply;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    pub(super) fn mail(&mut self, from: MailFrom<String>) -> Flow {
        if self.helo.is_none() {
            return self.fail(&reply::HELO_FIRST);
        }
        if self.envelope.mail_from.is_some() {
            return self.fail(&reply::NESTED_MAIL);
        }
        if from.size > self.params.max_message_size {
            return self.fail(&reply::MESSAGE_TOO_BIG);
        }
        self.envelope.mail_from = Some(from.address);
        self.say(&reply::SENDER_OK)
    }
}
