//! Files and directories.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a file of at most `limit` bytes; `Ok(Err(size))` when it is
/// larger (read no further than the limit, so a huge file costs nothing).
pub(super) fn read(path: &Path, limit: usize) -> Result<Result<Vec<u8>, usize>, Error> {
    let file = fs::File::open(path).map_err(|e| io(path, e))?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| io(path, e))?;
    if bytes.len() > limit {
        let size = fs::metadata(path).map_or(bytes.len(), |m| {
            usize::try_from(m.len()).unwrap_or(usize::MAX)
        });
        return Ok(Err(size));
    }
    Ok(Ok(bytes))
}

pub(super) fn is_json(path: &Path) -> bool {
    has_extension(path, &["json"])
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Collects the config files under `dir` depth-first, each directory's
/// entries in name order. `Ok(Err(dir))` names a directory left unread
/// because it is deeper than `depth`.
pub(super) fn config_files(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<Result<(), PathBuf>, Error> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort();
    let mut result = Ok(());
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            if depth == 0 {
                result = Err(path);
                continue;
            }
            if let Err(deep) = config_files(&path, depth - 1, out)? {
                result = Err(deep);
            }
        } else if has_extension(&path, &["yaml", "yml", "json"]) {
            out.push(path);
        }
    }
    Ok(result)
}
