//! TLS on the bid port, when `tls_cert` and `tls_key` are configured: rustls (with the `ring`
//! provider), TLS 1.2 and 1.3, HTTP/1.1 inside.
//!
//! Owns reading the certificate chain and key (PEM) into an acceptor at start; a file that cannot
//! be read stops the start with what is wrong, never a bidder that silently serves plain text. The
//! handshake runs on the connection's own core within `header_timeout_ms`; a failed one closes the
//! connection and is counted, never taking the bidder down.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Why TLS could not be set up from the configured files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
}

/// The acceptor for the certificate chain in `cert` and the private key in `key` (both PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certificates = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Certificates {
            path: cert.display().to_string(),
            reason: "no certificate in it".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    // ring builds with a C compiler alone (aws-lc-rs needs cmake); it lacks only the
    // post-quantum key exchanges, for which rustls deprecates its default provider.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    /// The error `acceptor` gives for these files, in words (`ok` when it gives none).
    fn refusal(cert: &str, key: &str) -> String {
        match acceptor(&fixture(cert), &fixture(key)) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn files_that_do_not_make_a_certificate_and_key_stop_the_start_with_what_is_wrong() {
        assert_eq!(refusal("cert.pem", "key.pem"), "ok");
        let missing = refusal("nothing.pem", "key.pem");
        assert!(
            missing.starts_with("cannot read the TLS certificate chain"),
            "{missing}"
        );
        let key_as_cert = refusal("key.pem", "key.pem");
        assert!(
            key_as_cert.ends_with("no certificate in it"),
            "{key_as_cert}"
        );
        let cert_as_key = refusal("cert.pem", "cert.pem");
        assert!(
            cert_as_key.starts_with("cannot read the TLS private key"),
            "{cert_as_key}"
        );
        // A key that is not the certificate's.
        let other = refusal("ca.pem", "key.pem");
        assert!(
            other.starts_with("the TLS certificate and key do not make"),
            "{other}"
        );
    }
}
