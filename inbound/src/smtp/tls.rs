//! STARTTLS: the server certificate, from files or, for development, self-signed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::InboundError;

/// The acceptor for STARTTLS: the certificate chain and key in PEM files, or, when
/// neither is given, a certificate for `hostname` signed by itself (senders that
/// insist on a trusted certificate then fall back to plain text or give up, so
/// production needs real files).
///
/// # Errors
/// [`InboundError::Tls`] naming the file or step that failed.
pub fn acceptor(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    hostname: &str,
) -> Result<TlsAcceptor, InboundError> {
    let tls = |what: String| InboundError::Tls(what);
    let (chain, key) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    tls(format!(
                        "cannot read certificates from {}: {e}",
                        cert.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(tls(format!("{} holds no certificate", cert.display())));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                tls(format!(
                    "cannot read the private key from {}: {e}",
                    key.display()
                ))
            })?;
            (chain, key)
        }
        (None, None) => {
            let generated = rcgen::generate_simple_self_signed(vec![hostname.to_owned()])
                .map_err(|e| tls(format!("cannot generate a self-signed certificate: {e}")))?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                generated.signing_key.serialize_der(),
            ));
            (vec![generated.cert.der().clone()], key)
        }
        _ => {
            return Err(tls(
                "smtp.tls_cert_file and smtp.tls_key_file must be given together".into(),
            ));
        }
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| tls(format!("certificate and key do not match: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
