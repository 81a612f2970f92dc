//! Request body content codings: `Content-Encoding: gzip` (many exchanges compress) and `deflate`.
//!
//! Owns turning a received body back into the bytes that were sent, with the decompressed size
//! bounded by the same limit as a plain body: a small compressed body that would inflate past it
//! (a zip bomb) is refused after at most `limit` bytes were produced, never inflated whole. It
//! never looks at what the bytes mean.

use std::io::Read;

use bytes::Bytes;
use flate2::read::{MultiGzDecoder, ZlibDecoder};

/// How a body was encoded, from its `Content-Encoding` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    /// HTTP's `deflate`: the zlib format (RFC 9110 8.4.1.2).
    Deflate,
}

#[derive(Debug, thiserror::Error)]
pub enum CodingError {
    #[error("Content-Encoding `{0}` is not supported (gzip, deflate or identity)")]
    Unsupported(String),
    #[error("body over {0} bytes once decompressed")]
    TooLarge(usize),
    #[error("cannot decompress the body: {0}")]
    Corrupt(std::io::Error),
}

impl Coding {
    /// The coding a `Content-Encoding` value names (absent: identity). One coding only: a
    /// body compressed twice is not something an exchange sends.
    pub fn parse(header: Option<&[u8]>) -> Result<Coding, CodingError> {
        let Some(header) = header else {
            return Ok(Coding::Identity);
        };
        let name = String::from_utf8_lossy(header).trim().to_ascii_lowercase();
        match name.as_str() {
            "" | "identity" => Ok(Coding::Identity),
            "gzip" | "x-gzip" => Ok(Coding::Gzip),
            "deflate" => Ok(Coding::Deflate),
            _ => Err(CodingError::Unsupported(name.chars().take(64).collect())),
        }
    }

    /// `body` decoded, at most `limit` bytes of it.
    pub fn decode(self, body: Bytes, limit: usize) -> Result<Bytes, CodingError> {
        match self {
            Coding::Identity => Ok(body),
            Coding::Gzip => inflate(MultiGzDecoder::new(&body[..]), limit),
            Coding::Deflate => inflate(ZlibDecoder::new(&body[..]), limit),
        }
    }
}

/// Reads `decoder` to its end, refusing it once it has given more than `limit` bytes.
fn inflate(decoder: impl Read, limit: usize) -> Result<Bytes, CodingError> {
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(CodingError::Corrupt)?;
    if out.len() > limit {
        return Err(CodingError::TooLarge(limit));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    use super::*;

    fn gzip(bytes: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap().into()
    }

    #[test]
    fn gzip_and_deflate_bodies_come_back_as_sent() {
        let sent = br#"{"id": "r", "imp": [{"id": "1"}]}"#;
        let coding = Coding::parse(Some(b" GZIP ")).unwrap();
        assert_eq!(coding.decode(gzip(sent), 1024).unwrap(), &sent[..]);
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(sent).unwrap();
        let deflated = zlib.finish().unwrap().into();
        let coding = Coding::parse(Some(b"deflate")).unwrap();
        assert_eq!(coding.decode(deflated, 1024).unwrap(), &sent[..]);
        assert_eq!(Coding::parse(None).unwrap(), Coding::Identity);
        assert_eq!(Coding::parse(Some(b"identity")).unwrap(), Coding::Identity);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_junk_or_unknown_codings_are_refused() {
        // 10 MB of zeros compress to about 10 KB.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            Coding::Gzip.decode(bomb, 256 << 10),
            Err(CodingError::TooLarge(_))
        ));
        assert!(matches!(
            Coding::Gzip.decode(Bytes::from_static(b"not gzip"), 1024),
            Err(CodingError::Corrupt(_))
        ));
        for unknown in [&b"br"[..], b"gzip, gzip", b"compress"] {
            assert!(matches!(
                Coding::parse(Some(unknown)),
                Err(CodingError::Unsupported(_))
            ));
        }
    }
}
