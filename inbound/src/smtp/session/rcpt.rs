//! `RCPT TO`: only live relay addresses of our domain, the VERP addresses bounces
//! come back to, and the address that unsubscribes from broadcasts are accepted.

use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::reply;
use crate::route::Recipient;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Flow {
        if self.envelope.mail_from.is_none() {
            return self.fail(&reply::MAIL_FIRST);
        }
        if self.envelope.recipients.len() + self.envelope.bounces.len()
            >= self.params.max_recipients
        {
            return self.say(&reply::TOO_MANY_RECIPIENTS);
        }
        match self.router.check_recipient(&to.address).await {
            Ok(Recipient::Bounce(delivery_id)) => {
                if !self.envelope.bounces.contains(&delivery_id) {
                    self.envelope.bounces.push(delivery_id);
                }
                self.say(&reply::RECIPIENT_OK)
            }
            Ok(Recipient::Broadcast(id)) => {
                self.envelope.broadcast = Some(id);
                self.say(&reply::RECIPIENT_OK)
            }
            Ok(Recipient::Unsubscribe) => {
                self.envelope.unsubscribe = true;
                self.say(&reply::RECIPIENT_OK)
            }
            Ok(Recipient::Relay(relay)) => {
                if !self
                    .envelope
                    .recipients
                    .iter()
                    .any(|r| r.relay.token == relay.relay.token)
                {
                    self.envelope.recipients.push(*relay);
                }
                self.say(&reply::RECIPIENT_OK)
            }
            Err(r) => self.fail(&r),
        }
    }
}
