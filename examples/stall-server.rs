//! `stall-server`: a tiny HTTP/1.1 server for proving a load generator honest. It answers every
//! request at once with 204 (an OpenRTB no-bid), except that once every `--every-ms` its whole
//! process freezes for `--stall-ms`, as a stop-the-world pause would: requests arriving then wait.
//! With `--stall-ms 0` it is a bare server, for measuring what a generator itself can do and as
//! the HTTP floor precis is compared with (`loadtest/throughput.sh`): then it runs its connections
//! as precis does ([`precis::serve::cores::Cores`], one runtime per core). That is why it is an example of
//! the bidder's package rather than a program of the load generator, which does not link the
//! bidder. It never looks at what it is sent.
//!
//! Built with `cargo build --release --example stall-server` (`target/release/examples/`). It logs
//! `listening on ADDR` on stderr once it accepts connections.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// How long each stall lasts, in milliseconds (0: never stall).
    #[arg(long, default_value_t = 100)]
    stall_ms: u64,
    /// How often a stall begins, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
    /// Threads serving connections when it never stalls, as precis' `--workers`: 0, one per core.
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.stall_ms < args.every_ms,
        "--stall-ms must be shorter than --every-ms"
    );
    // One thread: a stall blocks it, so nothing is answered until the stall ends.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("listening on {}", listener.local_addr()?);
    if args.stall_ms > 0 {
        let (stall, every) = (
            Duration::from_millis(args.stall_ms),
            Duration::from_millis(args.every_ms),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every - stall).await;
                // Deliberately blocking: this freezes the whole (single-threaded) server.
                std::thread::sleep(stall);
            }
        });
    }
    // A bare server is served the way precis serves (one runtime per core, connections dealt in
    // turn), so that comparing the two compares what they do, not how they are threaded. A
    // stalling one keeps every connection on this one thread, which the stall freezes.
    let cores = match args.stall_ms {
        0 => Some(
            precis::serve::cores::Cores::start(args.workers, None)
                .context("cannot start the per-core runtimes")?,
        ),
        _ => None,
    };
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        stream.set_nodelay(true).context("nodelay")?;
        match &cores {
            Some(cores) => cores.deal(stream, answer),
            None => drop(tokio::spawn(answer(stream))),
        }
    }
}

/// Serves one connection: every request gets 204 once its body is read.
async fn answer(stream: TcpStream) {
    let service = service_fn(|request: Request<Incoming>| async move {
        // Read the body so the connection can be reused; its content does not matter.
        let _ = request.into_body().collect().await;
        let mut response = Response::new(Empty::<Bytes>::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok::<_, Infallible>(response)
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
