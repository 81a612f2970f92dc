//! Where accepted connections run: one single-threaded tokio runtime per core, each on its own
//! thread pinned to its own core, with connections dealt to them in turn.
//!
//! A connection then lives on one thread from its first byte to its last: no work stealing, no
//! cross-thread wake-ups between hyper reading a request and the handler answering it; and the
//! thread stays on one core with its caches (measured with the load generator on the same two
//! cores: 38,600 -> 42,600 req/s for one pinned thread, the generator on the other core). The accept
//! loop stays on the caller's runtime and only hands sockets over. What runs on a core must never
//! block it (no disk, no locks held across an await): it is the only thread its connections have.
//! Work that may block goes to `spawn_blocking`, as anywhere in tokio.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The per-core runtimes. Their threads run until this is dropped: each runtime then stops, and
/// the connections still on it are closed.
pub struct Cores {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped with `Cores`, which ends each runtime's wait on its receiver.
    _running: Vec<oneshot::Sender<()>>,
}

impl Cores {
    /// Starts `workers` runtimes, or with 0 one for each core the process may use; the n-th is
    /// pinned to the n-th of those cores (round the cores again when there are more runtimes than
    /// cores; unpinned where the system does not say which cores those are). With a `seed`, the
    /// n-th thread's `fastrand` generator (what pacing draws from) starts from `seed + n`.
    pub fn start(workers: usize, seed: Option<u64>) -> io::Result<Cores> {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let count = match workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            workers => workers,
        };
        let (handles, running) = (0..count)
            .map(|n| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (running, stopped) = oneshot::channel::<()>();
                let core = cores.get(n % cores.len().max(1)).copied();
                std::thread::Builder::new()
                    .name(format!("core-{n}"))
                    .spawn(move || {
                        if let Some(core) = core
                            && !core_affinity::set_for_current(core)
                        {
                            tracing::warn!("cannot pin request thread {n} to core {}", core.id);
                        }
                        if let Some(seed) = seed {
                            fastrand::seed(seed.wrapping_add(n as u64));
                        }
                        let _ = runtime.block_on(stopped);
                    })?;
                Ok((handle, running))
            })
            .collect::<io::Result<(Vec<_>, Vec<_>)>>()?;
        Ok(Cores {
            handles,
            next: AtomicUsize::new(0),
            _running: running,
        })
    }

    /// How many runtimes there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `serve` on the next runtime in turn with `stream`, moved over to that runtime's
    /// reactor. A socket that cannot be moved is dropped (closed) and logged.
    pub fn deal<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        let (Some(handle), Ok(stream)) = (self.handles.get(turn), stream.into_std()) else {
            return tracing::warn!("cannot hand a connection over");
        };
        handle.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!("cannot take a connection over: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_starts_request_thread_n_from_seed_plus_n() {
        let cores = Cores::start(2, Some(7)).expect("request threads");
        for (n, handle) in cores.handles.iter().enumerate() {
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move { tx.send(fastrand::u64(..)) });
            let drawn = rx.recv().expect("a draw on the thread");
            let replayed = fastrand::Rng::with_seed(7 + n as u64).u64(..);
            assert_eq!(drawn, replayed, "thread {n}");
        }
    }
}
