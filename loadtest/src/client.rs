//! The bid connections: where the bid endpoint is, one HTTP/1.1 keep-alive connection per
//! connection worker (hyper's connection-level client: measured faster than the pooled one),
//! and sending one bid request on it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::recording::Outcome;

/// A bid connection; `None` until made, and again after it broke.
pub type Connection = Option<SendRequest<Full<Bytes>>>;

/// The bid endpoint.
pub struct Target {
    addr: SocketAddr,
    authority: HeaderValue,
    path: Uri,
    timeout: Duration,
}

impl Target {
    /// The endpoint at `url` (plain `http://` only), its host resolved once; each request is
    /// given `timeout` to be answered, connecting included.
    pub async fn resolve(url: &str, timeout: Duration) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("bad --url {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must start with http:// (TLS is not supported): {url}");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("no host in --url {url}"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {}", authority.host()))?
            .next()
            .with_context(|| format!("no address for {}", authority.host()))?;
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .context("bad path in --url")?;
        Ok(Target {
            addr,
            authority: HeaderValue::from_str(authority.as_str()).context("bad host in --url")?,
            path,
            timeout,
        })
    }

    /// Opens a connection, whose driver runs as its own task.
    pub async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, std::io::Error> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// `GET path` on a connection of its own: the status and body, or `None` without an answer
    /// in time.
    pub async fn get(&self, path: &str) -> Option<(u16, Bytes)> {
        let exchange = async {
            let mut sender = self.connect().await.ok()?;
            let request = Request::get(path)
                .header(HOST, self.authority.clone())
                .body(Full::new(Bytes::new()))
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?;
            Some((status, body.to_bytes()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .ok()
            .flatten()
    }

    /// Posts `body` on `connection` (reconnecting first when it is closed) and reads the whole
    /// answer. A connection that failed or timed out is dropped, to be made again next time.
    pub async fn send(&self, connection: &mut Connection, body: Bytes) -> (Outcome, Bytes) {
        let exchange = async {
            let ready = match connection.as_mut() {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !ready {
                *connection = Some(self.connect().await.map_err(|_| ())?);
            }
            let Some(sender) = connection.as_mut() else {
                return Err(());
            };
            let request = Request::post(self.path.clone())
                .header(HOST, self.authority.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("x-openrtb-version", "2.6")
                .body(Full::new(body))
                .map_err(|_| ())?;
            let response = sender.send_request(request).await.map_err(|_| ())?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|_| ())?;
            Ok::<_, ()>((status, body.to_bytes()))
        };
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, body))) => return (Outcome::Status(status), body),
            Ok(Err(())) => Outcome::ConnectionError,
            Err(_) => Outcome::Timeout,
        };
        *connection = None;
        (outcome, Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_http_urls_with_a_host_are_targets() {
        let second = Duration::from_secs(1);
        let target = Target::resolve("http://127.0.0.1:8080/openrtb2/bid?x=1", second)
            .await
            .expect("a good url");
        assert_eq!(target.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(target.path, "/openrtb2/bid?x=1");
        assert_eq!(target.authority, "127.0.0.1:8080");
        for bad in ["https://127.0.0.1/", "127.0.0.1:8080/bid", "http:///bid"] {
            assert!(Target::resolve(bad, second).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_error() {
        // Bind then drop a listener: its port is very likely closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let target = Target::resolve(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .expect("target");
        let mut connection = None;
        let (outcome, _) = target
            .send(&mut connection, Bytes::from_static(b"{}"))
            .await;
        assert_eq!(outcome, Outcome::ConnectionError);
        assert!(connection.is_none());
    }
}
