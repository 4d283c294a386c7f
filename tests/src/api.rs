//! The HTTP API as a directory calls it: one organisation's key, JSON in and out.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

/// A client of one gateway's HTTP API, authenticated as one organisation.
#[derive(Clone)]
pub struct Api {
    /// API key of the organisation.
    pub api_key: String,
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the API at `addr` using `api_key`.
    pub fn new(addr: SocketAddr, api_key: String) -> Self {
        Self {
            api_key,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends an API request with the organisation's key; returns status and JSON body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.call_with(method, path, body, &self.api_key, &[]).await
    }

    /// Sends an API request; returns status, the `Retry-After` header and JSON body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call_retry_after(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Option<u64>, Value)> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((status, retry_after, response.json().await?))
    }

    /// Fetches a URL without the API key, as a member's browser does; returns status
    /// and body text.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn browse(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> anyhow::Result<(u16, String)> {
        let response = self.http.request(method, url).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Sends an API request with a chosen key and extra headers.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, json))
    }

    /// Registers a member; panics on anything but 200/201, since tests rely on it.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn member(&self, id: &str, email: &str, name: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/members/{id}"),
                Some(&json!({"email": email, "name": name})),
            )
            .await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "PUT member {id}: {status} {body}"
        );
        Ok(())
    }

    /// Registers a member with a full JSON body.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn member_json(&self, id: &str, body: &Value) -> anyhow::Result<()> {
        let (status, answer) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/members/{id}"),
                Some(body),
            )
            .await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "PUT member {id}: {status} {answer}"
        );
        Ok(())
    }

    /// Changes organisation settings.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn settings(&self, settings: &Value) -> anyhow::Result<()> {
        let (status, answer) = self
            .call(reqwest::Method::PATCH, "/v1/organisation", Some(settings))
            .await?;
        anyhow::ensure!(status == 200, "PATCH organisation: {status} {answer}");
        Ok(())
    }

    /// Sends a message through the API; returns status and body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn message(
        &self,
        from: &str,
        to: &str,
        subject: &str,
        text: &str,
    ) -> anyhow::Result<(u16, Value)> {
        self.call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&json!({"from": from, "to": to, "subject": subject, "text": text})),
        )
        .await
    }

    /// Polls a message's delivery status until it is `want`.
    ///
    /// # Errors
    /// If it does not get there within ten seconds.
    pub async fn wait_status(&self, message_id: &str, want: &str) -> anyhow::Result<Value> {
        self.wait_status_within(message_id, want, Duration::from_secs(10))
            .await
    }

    /// Polls a message's delivery status until it is `want`, for up to `patience`.
    ///
    /// # Errors
    /// If it does not get there in time.
    pub async fn wait_status_within(
        &self,
        message_id: &str,
        want: &str,
        patience: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            let (_, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages/{message_id}"),
                    None,
                )
                .await?;
            if body["status"] == want {
                return Ok(body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("message {message_id} never reached status {want}")
    }

    /// The value of `maskrelay_<name>` at `GET /metrics`.
    ///
    /// # Errors
    /// If the request fails or the metric is missing.
    pub async fn metric(&self, name: &str) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let wanted = format!("maskrelay_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no metric {name} in:\n{text}"))
    }

    /// Polls `GET /metrics` until `maskrelay_<name>` satisfies `done`.
    ///
    /// # Errors
    /// If it does not within `bound`.
    pub async fn wait_metric(
        &self,
        name: &str,
        bound: Duration,
        done: impl Fn(u64) -> bool,
    ) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let value = self.metric(name).await?;
            if done(value) {
                return Ok(value);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "metric {name} stayed at {value} for {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
