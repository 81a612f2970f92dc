//! Watching: directories whose files people edit (campaigns, audience packages, bulk profiles)
//! turned into reloads, one per burst of changes.
//!
//! A [`Trigger`] asks for a reload; pokes in quick succession become one run of its work, on a
//! blocking thread, never two at once. [`spawn`] starts the store's reload task and one file
//! watcher for all the directories, including ones made after start; when a reload leaves files
//! pending (changed, not settled yet), the task runs again when they should have settled, without
//! waiting for another change. Nothing here runs on the request path or reads a file itself: it
//! only says when to read again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::store::{Snapshot, Store};

/// Asks for a reload; many asks in quick succession become one reload.
#[derive(Clone)]
pub struct Trigger(mpsc::Sender<()>);

impl Trigger {
    pub fn poke(&self) {
        // Full means a reload is already pending, which will see this change too.
        let _ = self.0.try_send(());
    }
}

/// How long to wait for a burst of file events (an editor's write, rename and chmod) to settle.
const SETTLE: Duration = Duration::from_millis(100);

/// Starts the reload task and a watcher on the campaign and audience directories. `after` is told
/// about each reload (for metrics and logs). The same watcher also watches each directory of
/// `others`, poking its trigger instead when something changes in it. A watched directory that
/// does not exist yet (or is deleted and made again) is watched from its parent: when it
/// appears it is watched too and its trigger poked, so `audiences/` or `profiles/` made after
/// start work live. Watching lasts as long as the process (the returned [`Watch`] shows what).
pub fn spawn(
    store: Arc<Store>,
    after: impl Fn(&std::io::Result<Arc<Snapshot>>) + Send + Sync + 'static,
    others: Vec<(PathBuf, Trigger)>,
) -> notify::Result<(Trigger, Watch)> {
    let campaigns = store.dir().to_owned();
    let audiences = store.audience_dir().to_owned();
    let first = store.snapshot().recheck;
    let trigger = rescheduling(first, move || {
        let result = store.reload();
        after(&result);
        result.ok().and_then(|snapshot| snapshot.recheck)
    });
    let mut wanted = vec![(campaigns, trigger.clone()), (audiences, trigger.clone())];
    wanted.extend(others);
    // Canonical, as the watcher reports the paths of what changed under them.
    let wanted: Arc<[(PathBuf, Trigger)]> = wanted
        .into_iter()
        .filter_map(|(dir, trigger)| Some((canonical(&dir)?, trigger)))
        .collect();
    let (to_arm, mut arming) = mpsc::channel::<()>(1);
    let told = wanted.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Some(event) = event.ok().filter(|e| !e.kind.is_access()) else {
            return;
        };
        for (dir, trigger) in told.iter() {
            if event.paths.iter().any(|p| p.starts_with(dir)) {
                trigger.poke();
            }
            if event.paths.iter().any(|p| p == dir) {
                // Made (or removed): watched from another thread, as the watcher cannot be
                // told to watch from inside its own event handler.
                let _ = to_arm.try_send(());
            }
        }
    })?;
    let campaigns_watched = wanted.first().is_some_and(|(dir, _)| dir.is_dir());
    let watch = Watch(Arc::new(Mutex::new(Armed {
        watcher,
        wanted,
        armed: Vec::new(),
    })));
    watch.arm(false)?;
    if !campaigns_watched {
        return Err(notify::Error::path_not_found());
    }
    let rearm = watch.clone();
    tokio::spawn(async move {
        while arming.recv().await.is_some() {
            let rearm = rearm.clone();
            let armed = tokio::task::spawn_blocking(move || rearm.arm(true)).await;
            if let Ok(Err(e)) = armed {
                tracing::warn!("cannot watch a directory: {e}");
            }
        }
    });
    Ok((trigger, watch))
}

/// `dir` made absolute and canonical, or, while it does not exist, its parent's canonical path
/// joined with its name.
fn canonical(dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(dir).ok().or_else(|| {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        Some(
            std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
                .ok()?
                .join(dir.file_name()?),
        )
    })
}

/// The watcher and what it watches.
struct Armed {
    watcher: notify::RecommendedWatcher,
    /// The directories wanted (the campaign directory first) and what to poke when they change.
    wanted: Arc<[(PathBuf, Trigger)]>,
    /// Those watched (the wanted ones that exist, and their parents).
    armed: Vec<PathBuf>,
}

/// The directory watch [`spawn`] started.
#[derive(Clone)]
pub struct Watch(Arc<Mutex<Armed>>);

impl Watch {
    /// Watches each wanted directory that exists and is not watched yet, poking its trigger when
    /// `poke` (its files may have been written before the watch began), and the parent of each
    /// (so that one made later is seen). A directory deleted is forgotten, to be watched again
    /// when made again.
    fn arm(&self, poke: bool) -> notify::Result<()> {
        use notify::Watcher;

        let mut armed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Armed {
            watcher,
            wanted,
            armed,
        } = &mut *armed;
        armed.retain(|dir| dir.is_dir());
        let parents = wanted
            .iter()
            .filter_map(|(dir, _)| Some((dir.parent()?, None)));
        let dirs = wanted
            .iter()
            .map(|(dir, trigger)| (dir.as_path(), Some(trigger)));
        for (dir, trigger) in dirs.chain(parents) {
            if dir.is_dir() && !armed.iter().any(|a| a == dir) {
                watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
                armed.push(dir.to_owned());
                if let Some(trigger) = trigger.filter(|_| poke) {
                    trigger.poke();
                }
            }
        }
        Ok(())
    }
}

/// A trigger that runs `work` on a blocking thread when poked, once per burst of pokes (waiting
/// `SETTLE` for the burst to end), never two at once.
pub fn debounced(work: impl Fn() + Send + Sync + 'static) -> Trigger {
    rescheduling(None, move || {
        work();
        None
    })
}

/// [`debounced`], whose `work` may also ask to run again at an instant (as may `first`) unless a
/// poke runs it sooner.
fn rescheduling(
    first: Option<Instant>,
    work: impl Fn() -> Option<Instant> + Send + Sync + 'static,
) -> Trigger {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let work = Arc::new(work);
    tokio::spawn(async move {
        let mut due = first;
        loop {
            let woken = match due {
                Some(at) => tokio::select! {
                    poke = rx.recv() => poke.is_some(),
                    () = tokio::time::sleep_until(at.into()) => true,
                },
                None => rx.recv().await.is_some(),
            };
            if !woken {
                break;
            }
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let work = work.clone();
            due = match tokio::task::spawn_blocking(move || work()).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!("reload task failed: {e}");
                    None
                }
            };
        }
    });
    Trigger(tx)
}
