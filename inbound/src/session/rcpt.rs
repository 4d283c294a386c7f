//! `RCPT TO`: only live relay addresses of our domain are accepted.

use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::reply;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Flow {
        if self.envelope.mail_from.is_none() {
            return self.fail(&reply::MAIL_FIRST);
        }
        if self.envelope.recipients.len() >= self.params.max_recipients {
            return self.say(&reply::TOO_MANY_RECIPIENTS);
        }
        match self.router.check_recipient(&to.address).await {
            Ok(relay) => {
                if !self
                    .envelope
                    .recipients
                    .iter()
                    .any(|r| r.token == relay.token)
                {
                    self.envelope.recipients.push(relay);
                }
                self.say(&reply::RECIPIENT_OK)
            }
            Err(r) => self.fail(&r),
        }
    }
}
