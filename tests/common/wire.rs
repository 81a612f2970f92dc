//! HTTP/1.1 driven by hand, for the tests that send what a polite client never would: a
//! connection written and read byte by byte ([`Raw`]), the requests put on it, and gzip bodies.
//! It parses only what those tests read off the wire (status, head, a `Content-Length` body);
//! it must never stand in for a real HTTP client where [`Server`]'s requests would do.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{DEADLINE, Server};

/// One HTTP/1.1 connection driven by hand, to send what a polite client never would.
pub struct Raw {
    pub read: OwnedReadHalf,
    /// `None` once handed to a writer task ([`Raw::streaming`]).
    pub write: Option<OwnedWriteHalf>,
    buffer: Vec<u8>,
}

/// One response as read off the wire; `head` is lower-cased.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub async fn connect(server: &Server) -> Raw {
        Raw::connect_to(server.addr).await
    }

    pub async fn connect_to(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, write) = stream.into_split();
        Raw {
            read,
            write: Some(write),
            buffer: Vec::new(),
        }
    }

    /// A new connection with `bytes` written on it by a task of their own, so that the answer
    /// can be read while they are still being sent (a server may answer a huge body early).
    pub async fn streaming(server: &Server, bytes: Vec<u8>) -> Raw {
        let mut raw = Raw::connect(server).await;
        if let Some(mut write) = raw.write.take() {
            tokio::spawn(async move {
                let _ = write.write_all(&bytes).await;
                write
            });
        }
        raw
    }

    /// A new connection with `bytes` sent on it.
    pub async fn sending(server: &Server, bytes: &[u8]) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.send(bytes).await;
        raw
    }

    /// Writes `bytes`. A server that has already answered may stop reading, so a failed write is
    /// not an error here: the answer (or the closed connection) is what the tests look at.
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Some(write) = &mut self.write {
            let _ = write.write_all(bytes).await;
        }
    }

    /// Reads one response; `None` when the server closes the connection before a whole response
    /// head. Fails the test when the server does neither within [`DEADLINE`].
    pub async fn answer(&mut self) -> Option<Answer> {
        self.answer_with_body(true).await
    }

    /// Reads one response to a `HEAD` request: its head only, whatever its `Content-Length` says
    /// (what follows belongs to the next response). `None` as [`Raw::answer`].
    pub async fn answer_to_head(&mut self) -> Option<Answer> {
        self.answer_with_body(false).await
    }

    async fn answer_with_body(&mut self, with_body: bool) -> Option<Answer> {
        let read = tokio::time::timeout(DEADLINE, self.read_answer(with_body)).await;
        read.unwrap_or_else(|_| {
            panic!(
                "the server neither answered nor closed the connection; read: {:?}",
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    async fn read_answer(&mut self, with_body: bool) -> Option<Answer> {
        let end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
        let status = head
            .strip_prefix("http/1.1 ")
            .or_else(|| head.strip_prefix("http/1.0 "))
            .and_then(|s| s.get(..3)?.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.x response: {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().expect("content-length"))
            * usize::from(with_body);
        while self.buffer.len() < end + length {
            assert!(self.fill().await, "response body cut short: {head:?}");
        }
        let body = String::from_utf8_lossy(&self.buffer[end..end + length]).into_owned();
        self.buffer.drain(..end + length);
        Some(Answer { status, head, body })
    }

    /// Reads more; false at the end of the stream (or a reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.read.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// The start of every POST to the bid route sent here: the request line and the headers all of
/// them have.
const BID_START: &str =
    "POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";

/// A POST to the bid route announcing a body of `length` bytes.
pub fn bid_head(length: usize) -> String {
    format!("{BID_START}Content-Length: {length}\r\n\r\n")
}

/// A bid request head with extra header lines (each ending in `\r\n`), then `body`.
pub fn bid_bytes(extra_headers: impl AsRef<[u8]>, body: &[u8]) -> Vec<u8> {
    let mut bytes = BID_START.as_bytes().to_vec();
    bytes.extend_from_slice(extra_headers.as_ref());
    bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}
