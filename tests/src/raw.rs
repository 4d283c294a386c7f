//! A raw SMTP client for protocol tests: sends exact bytes, reads whole replies.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A connection speaking raw SMTP.
pub struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    /// Connects and returns the client with the greeting read.
    ///
    /// # Errors
    /// If the connection fails or no greeting arrives.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<(Self, String)> {
        let (read, write) = TcpStream::connect(addr).await?.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer: write,
        };
        let greeting = client.reply().await?;
        Ok((client, greeting))
    }

    /// Sends bytes as they are.
    ///
    /// # Errors
    /// If the write fails.
    pub async fn send(&mut self, bytes: &str) -> anyhow::Result<()> {
        self.writer.write_all(bytes.as_bytes()).await?;
        Ok(())
    }

    /// Reads one reply, all its lines joined by `\n`.
    ///
    /// # Errors
    /// If the server closes or stays silent for five seconds.
    pub async fn reply(&mut self) -> anyhow::Result<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
                .await??;
            anyhow::ensure!(n > 0, "connection closed after {lines:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok(lines.join("\n"));
            }
        }
    }

    /// Sends a command line and reads its reply.
    ///
    /// # Errors
    /// As [`RawClient::send`] and [`RawClient::reply`].
    pub async fn command(&mut self, line: &str) -> anyhow::Result<String> {
        self.send(&format!("{line}\r\n")).await?;
        self.reply().await
    }

    /// True once the server has closed the connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
