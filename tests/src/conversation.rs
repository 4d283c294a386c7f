//! One conversation between two members, Alice and Bob, each with two addresses:
//! Alice has written to Bob through the API, and Bob answers by mail. The set-up of
//! the privacy tests.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::Backend;
use crate::gateway::{TestGateway, send_mail_to};
use crate::mail::{from_address, parse};
use crate::privacy::decoded_views;
use crate::smarthost::{Delivered, Smarthost};

/// Alice's main address.
pub const ALICE: &str = "alice.liddell@example.com";
/// Alice's second address.
pub const ALICE_WORK: &str = "a.liddell@work.example";
/// Bob's main address.
pub const BOB: &str = "Bob.Smith@example.net";
/// Bob's second address.
pub const BOB_HOME: &str = "bob@home.example";
/// Every real address of both members.
pub const EVERY_ADDRESS: [&str; 4] = [ALICE, ALICE_WORK, BOB, BOB_HOME];
/// How long a delivery may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Alice has written to Bob through the API.
pub struct Conversation {
    /// Receives what the gateway relays.
    pub smarthost: Smarthost,
    /// The gateway.
    pub gw: TestGateway,
    /// The conversation's id.
    pub id: String,
    /// Alice's relay address, as Bob sees it.
    pub alice_relay: String,
    /// Bob's own relay address: the `To:` of what he received.
    pub bob_relay: String,
    /// What Bob received.
    pub first: Delivered,
}

impl Conversation {
    /// Alice and Bob as members; Alice writes "Tennis?" to Bob through the API.
    ///
    /// # Errors
    /// If the gateway, the members or the first message fail.
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        let smarthost = Smarthost::start().await?;
        let gw = TestGateway::start(backend, &smarthost).await?;
        gw.member_json(
            "alice",
            &json!({"email": ALICE, "name": "Alice", "other_emails": [ALICE_WORK]}),
        )
        .await?;
        gw.member_json(
            "bob",
            &json!({"email": BOB, "name": "Bob", "other_emails": [BOB_HOME]}),
        )
        .await?;
        let (status, created) = gw
            .call(
                Method::POST,
                "/v1/messages",
                Some(&json!({
                    "from": "alice", "to": "bob", "subject": "Tennis?",
                    "text": format!("Hi Bob, write to me at {ALICE} or {ALICE_WORK}."),
                })),
            )
            .await?;
        anyhow::ensure!(status == 202, "{created}");
        let first = smarthost.wait_for(1, WAIT).await?.remove(0);
        let m = parse(&first.data)?;
        let bob_relay = m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            id: created["conversation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            alice_relay: from_address(&m),
            bob_relay,
            first,
            smarthost,
            gw,
        })
    }

    /// Bob's client sends `raw` to `rcpts`; returns the server's final reply text.
    ///
    /// # Errors
    /// The SMTP error if the server refuses.
    pub async fn bob_sends(&self, rcpts: &[&str], raw: &str) -> anyhow::Result<String> {
        send_mail_to(self.gw.smtp_addr(), Some(BOB), rcpts, raw.as_bytes()).await
    }

    /// The headers of a reply from Bob to Alice, up to and including `MIME-Version`;
    /// the caller adds the content headers, a blank line and the body.
    pub fn reply_headers(&self, subject: &str) -> String {
        format!(
            "From: Bob Smith <{BOB}>\r\nTo: {}\r\nSubject: {subject}\r\n\
             Date: Tue, 3 Mar 2026 10:02:00 +0100\r\nMIME-Version: 1.0\r\n",
            self.alice_relay
        )
    }

    /// Bob's client sends `raw` to Alice's relay address, which must accept it;
    /// returns the `n`th delivery (0 is the first, to Bob), which should be it.
    ///
    /// # Errors
    /// If the reply is refused or nothing arrives in time.
    pub async fn relayed(&self, raw: &str, n: usize) -> anyhow::Result<Delivered> {
        let answer = self.bob_sends(&[&self.alice_relay], raw).await?;
        anyhow::ensure!(answer.contains("accepted"), "{answer}");
        self.delivered(n).await
    }

    /// Bob's client sends `raw` to Alice's relay address; the refusal (`"550 5.7.1
    /// …"`), or `"accepted"`.
    pub async fn bob_refused(&self, raw: &str) -> String {
        crate::gateway::smtp_refusal(self.bob_sends(&[&self.alice_relay], raw).await.map(|_| ()))
    }

    /// Shows that nothing was relayed after the `n`th delivery (0 is the first, to
    /// Bob): a plain reply sent now must be the next message Alice gets.
    ///
    /// # Errors
    /// If something else arrives first, or the plain reply does not arrive.
    pub async fn nothing_relayed_after(&self, n: usize) -> anyhow::Result<()> {
        let marker = format!("marker {}", crate::db::unique("m"));
        let raw = format!(
            "{}Content-Type: text/plain\r\n\r\n{marker}\r\n",
            self.reply_headers("Re: Tennis?")
        );
        let answer = self.bob_sends(&[&self.alice_relay], &raw).await?;
        anyhow::ensure!(answer.contains("accepted"), "{answer}");
        let next = self.delivered(n + 1).await?;
        anyhow::ensure!(
            next.text().contains(&marker),
            "something else was relayed:\n{}",
            next.text()
        );
        Ok(())
    }

    /// The conversation's metadata, as the organisation sees it.
    ///
    /// # Errors
    /// If the API does not answer 200.
    pub async fn metadata(&self) -> anyhow::Result<serde_json::Value> {
        let path = format!("/v1/conversations/{}", self.id);
        let (status, conv) = self.gw.call(Method::GET, &path, None).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {conv}");
        Ok(conv)
    }

    /// The `n`th delivered message (0 is the first, to Bob).
    ///
    /// # Errors
    /// If it does not arrive in time.
    pub async fn delivered(&self, n: usize) -> anyhow::Result<Delivered> {
        Ok(self.smarthost.wait_for(n + 1, WAIT).await?.remove(n))
    }
}

/// Everything a reader could see, decoded and joined.
pub fn visible(raw: &[u8]) -> String {
    decoded_views(raw)
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n")
}
