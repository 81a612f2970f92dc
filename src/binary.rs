//! The binary files precis writes for itself to read back at its next start (the profile
//! snapshot, the state snapshot): an 8-byte magic, a u32 version, then the body in little-endian
//! numbers and length-prefixed strings ([`Le`], [`put_str`], [`get_str`]), and last the CRC-32
//! (`crc32fast`) of everything before it.
//!
//! A file is written whole through [`crate::files::replace`] (a crash leaves the last good one)
//! and read whole or refused: one that is not of its kind, of another version, ends early, does
//! not match its checksum or has bytes after it is a [`BinaryError`], and the reader is told so
//! before it keeps anything it read. Never on the bid path: it waits for the disk.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a precis {0} (bad magic)")]
    Magic(&'static str),
    #[error("{what} version {found}; this precis reads version {reads}")]
    Version {
        what: &'static str,
        found: u32,
        reads: u32,
    },
    #[error("the file is corrupt: {0}")]
    Corrupt(&'static str),
}

/// What a file is: its magic, its version, and its name in errors.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub magic: &'static [u8; 8],
    pub version: u32,
    pub what: &'static str,
}

/// The CRC-32 of everything written or read through it. Bytes are gathered into blocks before
/// they are summed: these files are written and read a few bytes at a time.
pub struct Summed<T> {
    inner: T,
    hasher: crc32fast::Hasher,
    block: Vec<u8>,
}

/// Bytes summed at a time.
const BLOCK: usize = 1 << 16;

impl<T> Summed<T> {
    fn new(inner: T) -> Summed<T> {
        Summed {
            inner,
            hasher: crc32fast::Hasher::new(),
            block: Vec::with_capacity(BLOCK),
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        if self.block.len() + bytes.len() > BLOCK {
            self.hasher.update(&self.block);
            self.block.clear();
        }
        if bytes.len() >= BLOCK {
            self.hasher.update(bytes);
        } else {
            self.block.extend_from_slice(bytes);
        }
    }

    /// The sum so far, and what it was summed over.
    fn finish(mut self) -> (T, u32) {
        self.hasher.update(&self.block);
        (self.inner, self.hasher.finalize())
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Where a body is written.
pub type Out<'a> = Summed<&'a mut BufWriter<File>>;
/// Where a body is read from.
pub type In = Summed<BufReader<File>>;

/// Writes `path` anew as a file of `kind` whose body `body` writes, atomically.
pub fn write<T>(
    path: &Path,
    kind: Kind,
    body: impl FnOnce(&mut Out) -> Result<T, BinaryError>,
) -> Result<T, BinaryError> {
    crate::files::replace(path, |file| {
        let mut out = Summed::new(file);
        out.write_all(kind.magic)?;
        kind.version.put(&mut out)?;
        let written = body(&mut out)?;
        let (file, sum) = out.finish();
        sum.put(file)?;
        Ok(written)
    })
}

/// Reads `path` as a file of `kind` with `body`, which gets the body: what it returns once the
/// whole file has been read and its checksum matched; `None` when there is no such file.
pub fn read<T>(
    path: &Path,
    kind: Kind,
    body: impl FnOnce(&mut In) -> Result<T, BinaryError>,
) -> Result<Option<T>, BinaryError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut input = Summed::new(BufReader::with_capacity(1 << 20, file));
    if &get_array::<8>(&mut input)? != kind.magic {
        return Err(BinaryError::Magic(kind.what));
    }
    let version = u32::get(&mut input)?;
    if version != kind.version {
        return Err(BinaryError::Version {
            what: kind.what,
            found: version,
            reads: kind.version,
        });
    }
    let read = body(&mut input)?;
    let (mut input, sum) = input.finish();
    let stored = u32::get(&mut input)?;
    let mut rest = [0u8; 1];
    if input.read(&mut rest)? != 0 {
        return Err(BinaryError::Corrupt("bytes after the checksum"));
    }
    if stored != sum {
        return Err(BinaryError::Corrupt("checksum mismatch"));
    }
    Ok(Some(read))
}

/// A number as these files hold it: little-endian, its own width.
pub trait Le: Sized {
    fn put(self, out: &mut impl Write) -> std::io::Result<()>;
    fn get(input: &mut impl Read) -> Result<Self, BinaryError>;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            fn put(self, out: &mut impl Write) -> std::io::Result<()> {
                out.write_all(&self.to_le_bytes())
            }
            fn get(input: &mut impl Read) -> Result<Self, BinaryError> {
                Ok(<$t>::from_le_bytes(get_array(input)?))
            }
        }
    )*};
}

le!(u8, u16, u32, u64, u128, i64, f64);

/// Writes `text` as a u32 length and its bytes.
pub fn put_str(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    u32::try_from(text.len())
        .map_err(|_| std::io::Error::other("a string over 4 GiB"))?
        .put(out)?;
    out.write_all(text.as_bytes())
}

/// Reads a string [`put_str`] wrote, refusing one longer than `max` bytes.
pub fn get_str(input: &mut impl Read, max: usize) -> Result<String, BinaryError> {
    let len = u32::get(input)? as usize;
    if len > max {
        return Err(BinaryError::Corrupt("a string is longer than any written"));
    }
    let mut bytes = vec![0; len];
    get_exact(input, &mut bytes)?;
    String::from_utf8(bytes).map_err(|_| BinaryError::Corrupt("a string is not UTF-8"))
}

/// Reads a count written as a u64, refusing one above `max`: a damaged count must not make a
/// reader reserve memory for it.
pub fn get_count(input: &mut impl Read, max: usize) -> Result<usize, BinaryError> {
    usize::try_from(u64::get(input)?)
        .ok()
        .filter(|n| *n <= max)
        .ok_or(BinaryError::Corrupt("a count is larger than any written"))
}

pub fn get_array<const N: usize>(input: &mut impl Read) -> Result<[u8; N], BinaryError> {
    let mut buf = [0; N];
    get_exact(input, &mut buf)?;
    Ok(buf)
}

pub fn get_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), BinaryError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => BinaryError::Corrupt("it ends too early"),
        _ => BinaryError::Io(e),
    })
}
