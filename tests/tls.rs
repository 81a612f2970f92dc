//! HTTPS on the bid port (`tls_cert`, `tls_key`), against the real binary: a bid request over TLS
//! gets its bid, a client that speaks plain HTTP to it is closed and counted, and the admin port
//! stays plain on loopback. The certificates in tests/fixtures/tls are for tests only: a CA
//! (`ca.pem`, its key discarded) and the certificate it signed for 127.0.0.1 and localhost.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Campaign, Server, Setup};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The test certificate and key.
fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name);
    path.display().to_string()
}

fn server() -> Server {
    Setup::default()
        .arg("--tls-cert")
        .arg(&fixture("cert.pem"))
        .arg("--tls-key")
        .arg(&fixture("key.pem"))
        .campaign("a.toml", Campaign::cpm(2.0).banner(300, 250))
        .start()
}

/// `request` sent over TLS to the bid port, trusting only the test CA: the whole answer.
async fn over_tls(server: &Server, request: &[u8]) -> String {
    let mut roots = RootCertStore::empty();
    let cert = CertificateDer::from_pem_file(fixture("ca.pem")).expect("the test CA");
    roots.add(cert).expect("a root");
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let name = ServerName::IpAddress(server.addr.ip().into());
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with the test certificate");
    tls.write_all(request).await.expect("sent");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_bid_request_over_tls_gets_its_bid_and_plain_http_is_closed_and_counted() {
    let server = server();
    let body = common::banner_request(300, 250).to_string();
    let request = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = over_tls(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"cid\":\"a\""), "{answer}");
    // Its notices point back at the HTTPS port.
    let https = format!("\"nurl\":\"https://{}/win?", server.addr);
    assert!(answer.contains(&https), "{answer}");

    // Plain HTTP to the TLS port: no answer, the connection closed, the failure counted.
    let mut plain = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let _ = plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await;
    let mut read = Vec::new();
    let _ = plain.read_to_end(&mut read).await;
    assert!(
        !String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200"),
        "{read:?}"
    );
    let counted = r#"precis_connections_closed_total{reason="tls_handshake"}"#;
    assert_eq!(server.metric(counted).await, 1.0);
    // The admin port is plain HTTP on loopback, as without TLS.
    let (status, _, _) = server.admin_get("/status").await;
    assert_eq!(status, hyper::StatusCode::OK);
}
