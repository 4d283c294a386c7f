//! `EHLO` and `HELO`: greeting the client, which also resets the transaction.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Envelope, Flow, Session};
use crate::reply;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    pub(super) fn ehlo(&mut self, host: String) -> Flow {
        self.helo = Some(host);
        self.envelope = Envelope::default();
        reply::ehlo(
            &self.params.hostname,
            self.params.max_message_size,
            self.offer_tls && !self.secured,
            &mut self.out,
        );
        Flow::Continue
    }

    pub(super) fn helo(&mut self, host: String) -> Flow {
        self.helo = Some(host);
        self.envelope = Envelope::default();
        self.say(&reply::helo(&self.params.hostname))
    }
}
