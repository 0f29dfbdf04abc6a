//! Watching a config directory: poll, debounce, reload, keep the old
//! configuration when the new one is rejected.
//!
//! Polling (every [`Options::config_poll_interval`](crate::Options)) needs
//! no platform notification API and sees through the symlink swaps with
//! which Kubernetes updates a mounted ConfigMap. A change is the set of
//! config files (`*.yaml`, `*.yml`, `*.json`, hidden entries skipped, as
//! the loader reads them) or any one's size or modification time changing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, ReloadSummary};

use crate::error::Error;
use crate::shared::Shared;

/// What identifies a directory's content cheaply.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    scan(dir, 0, &mut out);
    out.sort();
    out
}

fn scan(dir: &Path, depth: usize, out: &mut Fingerprint) {
    if depth > mixer_config::load::MAX_DIR_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            scan(&path, depth + 1, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
}

/// Loads every config file under `dir` into `dispatcher`: the whole
/// directory is the configuration (a file removed is config removed).
pub fn load_dir(dispatcher: &Dispatcher, dir: &Path) -> Result<ReloadSummary, Error> {
    let mut docs = Documents::new();
    docs.add_dir(dir).map_err(|source| Error::ConfigRead {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(dispatcher.load(docs)?)
}

/// Polls `dir` until shutdown, reloading on every settled change.
pub(crate) async fn watch(dir: PathBuf, shared: Arc<Shared>) {
    let poll = shared.options.config_poll_interval;
    let debounce = shared.options.config_debounce;
    let stop = shared.shutdown_signal();
    tokio::pin!(stop);
    let scan = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || fingerprint(&dir))
            .await
            .unwrap_or_default()
    };
    let mut seen = scan(dir.clone()).await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(poll) => {}
        }
        let mut now = scan(dir.clone()).await;
        if now == seen {
            continue;
        }
        // Settle: a tool writing several files triggers one reload.
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(debounce) => {}
            }
            let again = scan(dir.clone()).await;
            if again == now {
                break;
            }
            now = again;
        }
        seen = now;
        let (d, s) = (dir.clone(), shared.clone());
        let result = tokio::task::spawn_blocking(move || load_dir(&s.dispatcher, &d)).await;
        match result {
            Ok(Ok(summary)) => {
                shared
                    .stats
                    .config_reloads_ok
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    dir = %dir.display(),
                    generation = summary.generation,
                    rules = summary.rules,
                    "config directory reloaded"
                );
            }
            Ok(Err(e)) => {
                shared
                    .stats
                    .config_reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    dir = %dir.display(),
                    "config directory changed but was rejected; the running configuration stays: {e}"
                );
            }
            Err(join) => {
                shared
                    .stats
                    .config_reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(dir = %dir.display(), "config reload panicked: {join}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_config_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let before = fingerprint(dir.path());
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "x").unwrap();
        assert_eq!(fingerprint(dir.path()), before);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.yml"), "x").unwrap();
        let one = fingerprint(dir.path());
        assert_eq!(one.len(), 1);
        std::fs::write(dir.path().join("sub/a.yml"), "xy").unwrap();
        assert_ne!(fingerprint(dir.path()), one);
    }
}
