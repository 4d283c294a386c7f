//! Where outgoing mail goes: the reader's MX hosts ([`mx`], found by [`mx_route`],
//! spoken to by [`mx_session`]), a [`smarthost`], or a [`capture`] folder; [`pool`]
//! keeps connections open between messages.

pub mod capture;
pub mod mx;
pub mod mx_route;
pub mod mx_session;
pub mod pool;
pub mod smarthost;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use maskrelay_schema::DeliveryId;

use crate::error::DeliveryError;
use mx::Mx;
use smarthost::Smarthost;

/// The configured way out.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Each message to its recipient's MX hosts.
    Mx(Arc<Mx>),
    /// Every message through one SMTP server.
    Smarthost(Box<Smarthost>),
    /// Every message into a folder as an `.eml` file.
    Capture(PathBuf),
}

/// The envelope of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Delivery id (names capture files).
    pub delivery_id: &'a DeliveryId,
    /// `MAIL FROM`: an address of the relay domain, never a member's.
    pub mail_from: &'a str,
    /// `RCPT TO`: the reader's real address.
    pub rcpt_to: &'a str,
}

impl Transport {
    /// Delivers one message.
    ///
    /// # Errors
    /// [`DeliveryError`], temporary or permanent.
    pub async fn deliver(
        &self,
        helo: &str,
        envelope: &Envelope<'_>,
        content: &[u8],
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        match self {
            Transport::Mx(mx) => {
                mx.send(helo, envelope.mail_from, envelope.rcpt_to, content, timeout)
                    .await
            }
            Transport::Smarthost(host) => {
                host.send(helo, envelope.mail_from, envelope.rcpt_to, content, timeout)
                    .await
            }
            Transport::Capture(dir) => capture::write(dir, envelope.delivery_id, content)
                .await
                .map(|_| ()),
        }
    }
}

impl Transport {
    /// Closes connections kept open past their time.
    pub fn tidy(&self) {
        match self {
            Transport::Mx(mx) => mx.tidy(),
            Transport::Smarthost(host) => host.tidy(),
            Transport::Capture(_) => {}
        }
    }
}
