//! A raw SMTP client for protocol tests: sends exact bytes, reads whole replies, and
//! can switch to TLS after STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection speaking raw SMTP over `S`.
pub struct RawClient<S = TcpStream> {
    reader: BufReader<ReadHalf<S>>,
    writer: WriteHalf<S>,
}

impl RawClient<TcpStream> {
    /// Connects and returns the client with the greeting read.
    ///
    /// # Errors
    /// If the connection fails or no greeting arrives.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<(Self, String)> {
        let mut client = Self::over(TcpStream::connect(addr).await?);
        let greeting = client.reply().await?;
        Ok((client, greeting))
    }

    /// Sends `STARTTLS` (followed by `pipelined`, which a correct server ignores),
    /// expects `220`, and shakes hands. Any certificate is accepted: the test is about
    /// the protocol, and the development certificate is self-signed.
    ///
    /// # Errors
    /// If the server does not answer `220`, answers anything more in plain text, or
    /// the handshake fails.
    pub async fn starttls(
        mut self,
        pipelined: &str,
    ) -> anyhow::Result<RawClient<TlsStream<TcpStream>>> {
        self.send(&format!("STARTTLS\r\n{pipelined}")).await?;
        let ready = self.reply().await?;
        anyhow::ensure!(ready.starts_with("220"), "STARTTLS answered {ready}");
        anyhow::ensure!(
            self.reader.buffer().is_empty(),
            "the server said more in plain text after 220"
        );
        let stream = self.reader.into_inner().unsplit(self.writer);
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("relay.test")?, stream)
            .await?;
        Ok(RawClient::over(tls))
    }
}

impl<S: AsyncRead + AsyncWrite> RawClient<S> {
    fn over(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self {
            reader: BufReader::new(read),
            writer: write,
        }
    }

    /// Sends bytes as they are.
    ///
    /// # Errors
    /// If the write fails.
    pub async fn send(&mut self, bytes: &str) -> anyhow::Result<()> {
        self.writer.write_all(bytes.as_bytes()).await?;
        self.writer.flush().await?;
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

/// Accepts any server certificate (tests only).
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
