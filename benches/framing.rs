//! What following each connection's framing costs a bid request (`serve::framing`, which finds
//! requests with both `Content-Length` and `Transfer-Encoding`): the same keep-alive stream of
//! exchange bid requests read through the bare connection and through [`Watched`], one request a
//! read as an exchange that waits for each answer sends them, with `Content-Length` bodies and
//! with chunked ones. The difference between the two is the per-request cost; bodies are skipped
//! by count, so it grows with the head's lines, not the body's bytes.
//! Run with `cargo bench --bench framing`.

use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncRead, ReadBuf};

use precis::serve::framing::{Conflict, Watched};

/// Requests on one connection.
const REQUESTS: usize = 1_000;

/// A bid body of the corpus' median size (1,152 bytes): its content does not matter, only its
/// length does.
const BODY: usize = 1_152;

/// The head an exchange sends with each bid request, `framing` its body's framing header.
fn head(framing: &str) -> String {
    format!(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: bidder.example.com\r\nUser-Agent: exchange/2.6\r\n\
         Content-Type: application/json\r\nAccept-Encoding: gzip\r\nX-Openrtb-Version: 2.6\r\n\
         {framing}\r\n\r\n"
    )
}

/// [`REQUESTS`] requests, each with a [`BODY`]-byte body, framed by `Content-Length` or chunked
/// (in two chunks, as a streaming client writes it).
fn requests(chunked: bool) -> Vec<Vec<u8>> {
    let body = "x".repeat(BODY);
    let request = if chunked {
        let (first, rest) = body.split_at(BODY / 2);
        let chunks = format!(
            "{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
            first.len(),
            rest.len()
        );
        format!("{}{chunks}", head("Transfer-Encoding: chunked"))
    } else {
        format!("{}{body}", head(&format!("Content-Length: {BODY}")))
    };
    vec![request.into_bytes(); REQUESTS]
}

/// A connection on which each read gives one whole request, as from an exchange that sends the
/// next only once answered.
struct OnePerRead<'a> {
    requests: &'a [Vec<u8>],
    next: usize,
}

impl AsyncRead for OnePerRead<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(request) = self.requests.get(self.next) {
            buf.put_slice(request);
            self.next += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads `connection` to its end as hyper does, into an 8 KiB buffer: the bytes read.
fn drain(mut connection: impl AsyncRead + Unpin) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut space = [0u8; 8 * 1024];
    let mut total = 0;
    loop {
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut connection).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return total,
            Poll::Ready(Ok(())) => total += black_box(buf.filled()).len(),
            other => panic!("an in-memory read: {other:?}"),
        }
    }
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Elements(REQUESTS as u64));
    for (name, chunked) in [("content-length", false), ("chunked", true)] {
        let requests = requests(chunked);
        let connection = || OnePerRead {
            requests: &requests,
            next: 0,
        };
        group.bench_function(format!("{name}/bare"), |b| b.iter(|| drain(connection())));
        group.bench_function(format!("{name}/watched"), |b| {
            b.iter(|| {
                let conflict = Arc::new(Conflict::default());
                let read = drain(Watched::new(connection(), conflict.clone()));
                assert!(!conflict.take_next(), "nothing marked");
                read
            })
        });
    }
    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
