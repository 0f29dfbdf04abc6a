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
    use std::time::{Duration, Instant};

    use mixer_adapters::Registry;

    use super::*;
    use crate::options::Options;

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

    /// A file with its own denier, instance and rule, so that any subset
    /// of such files is a valid configuration (a watcher reloading early
    /// would succeed, and be counted).
    fn rule_file(i: usize) -> String {
        let api = "apiVersion: config.istio.io/v1alpha2";
        format!(
            "{api}
kind: handler
metadata: {{name: deny-{i}, namespace: istio-system}}
spec: {{compiledAdapter: denier, params: {{status: {{code: 7, message: no {i}}}}}}}
---
{api}
kind: instance
metadata: {{name: nothing-{i}, namespace: istio-system}}
spec: {{compiledTemplate: checknothing}}
---
{api}
kind: rule
metadata: {{name: deny-{i}, namespace: istio-system}}
spec:
  match: request.path == \"/{i}\"
  actions: [{{handler: deny-{i}, instances: [nothing-{i}]}}]
"
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_written_within_the_debounce_cause_one_reload() {
        const FILES: usize = 4;
        // The writes below span 3 x 5 polls = 300 ms: several scans see a
        // partial directory, and all of it lands well within the debounce,
        // so one settled reload is the only correct outcome.
        let poll = Duration::from_millis(20);
        let dir = tempfile::tempdir().unwrap();
        let dispatcher = Dispatcher::new(
            Registry::builtin(),
            tokio::runtime::Handle::current(),
            mixer_dispatch::Options::default(),
        );
        load_dir(&dispatcher, dir.path()).unwrap();
        let options = Options {
            config_poll_interval: poll,
            config_debounce: Duration::from_secs(3),
            ..Options::default()
        };
        let shared = Arc::new(Shared::new(dispatcher, options));
        let generation = shared.dispatcher.generation();
        let watcher = tokio::spawn(watch(dir.path().to_path_buf(), shared.clone()));

        for i in 0..FILES {
            if i > 0 {
                tokio::time::sleep(poll * 5).await;
            }
            let path = dir.path().join(format!("rule-{i}.yaml"));
            std::fs::write(path, rule_file(i)).unwrap();
        }

        // Wait for every file's rule to serve and for its reload to be
        // counted (the new snapshot serves just before the count).
        let stats = &shared.stats;
        let serving = |i: usize| {
            let name = format!("deny-{i}.handler.istio-system");
            shared.dispatcher.handler(&name).is_some()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !((0..FILES).all(serving) && stats.config_reloads_ok.load(Ordering::Relaxed) > 0) {
            assert!(Instant::now() < deadline, "the files were never loaded");
            tokio::time::sleep(poll).await;
        }
        assert_eq!(stats.config_reloads_ok.load(Ordering::Relaxed), 1);
        assert_eq!(stats.config_reloads_failed.load(Ordering::Relaxed), 0);
        assert_eq!(shared.dispatcher.generation(), generation + 1);

        shared.begin_shutdown();
        watcher.await.unwrap();
    }
}
