//! Where lines are written: a standard stream, a file, or a file rotated by
//! size and by age with a bounded number of rotated files kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mixer_attributes::Timestamp;

use crate::Clock;

use super::params::Rotation;

/// Lines are buffered (the standard streams too: the standard library's
/// stdout writes every line with its own syscall) and reach the stream on
/// [`flush`](Sink::flush), which the writer calls once per round of
/// pending lines.
pub(crate) enum Sink {
    Stdout(BufWriter<io::Stdout>),
    Stderr(BufWriter<io::Stderr>),
    File(Box<FileSink>),
}

/// How much a standard stream's buffer holds before it is written out
/// within a round.
const STD_BUFFER: usize = 64 << 10;

impl Sink {
    pub(crate) fn stdout() -> Sink {
        Sink::Stdout(BufWriter::with_capacity(STD_BUFFER, io::stdout()))
    }

    pub(crate) fn stderr() -> Sink {
        Sink::Stderr(BufWriter::with_capacity(STD_BUFFER, io::stderr()))
    }

    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.write_all(line),
            Sink::Stderr(s) => s.write_all(line),
            Sink::File(f) => f.write_line(line),
        }
    }

    /// Writes a round of whole lines (`ends`: where each ends in `bytes`),
    /// telling `done` how many lines each write held and how it went. A
    /// rotated file takes a line at a time, to be cut between lines; any
    /// other sink takes the round in one write, which a round bigger than
    /// the buffer makes without copying it.
    pub(crate) fn write_lines(
        &mut self,
        bytes: &[u8],
        ends: &[usize],
        mut done: impl FnMut(u64, io::Result<()>),
    ) {
        let Some(&last) = ends.last() else { return };
        match self {
            Sink::File(f) if f.rotation.is_some() => {
                let mut start = 0;
                for &end in ends {
                    done(1, f.write_line(bytes.get(start..end).unwrap_or_default()));
                    start = end;
                }
            }
            _ => {
                let all = bytes.get(..last).unwrap_or_default();
                done(ends.len() as u64, self.write_line(all));
            }
        }
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::Stderr(s) => s.flush(),
            Sink::File(f) => f.file.flush(),
        }
    }
}

/// A file appended to, rotated when `rotation` says so.
pub(crate) struct FileSink {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    opened_at: SystemTime,
    rotation: Option<Rotation>,
    clock: Arc<dyn Clock>,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl FileSink {
    pub(crate) fn open(
        path: PathBuf,
        rotation: Option<Rotation>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<FileSink> {
        let file = open(&path)?;
        let size = file.metadata()?.len();
        // A file left by an earlier run is as old as its first line, which
        // the creation time approximates; without one, it starts now.
        let opened_at = if size == 0 {
            clock.wall()
        } else {
            file.metadata()?.created().unwrap_or_else(|_| clock.wall())
        };
        Ok(FileSink {
            path,
            file: BufWriter::new(file),
            size,
            opened_at,
            rotation,
            clock,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(r) = self.rotation {
            let too_big = self.size + line.len() as u64 > r.max_bytes;
            let age = self
                .clock
                .wall()
                .duration_since(self.opened_at)
                .unwrap_or_default();
            if self.size > 0 && (too_big || age >= r.max_age) {
                self.rotate(r)?;
            }
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, r: Rotation) -> io::Result<()> {
        self.file.flush()?;
        let now = self.clock.wall();
        let (stem, ext) = stem_ext(&self.path);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut micros = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        // Names sort as they were made: on a clash (several rotations in
        // one microsecond), take the next free microsecond.
        let rotated = loop {
            let p = dir.join(format!("{stem}-{}{ext}", stamp(micros)));
            if !p.exists() {
                break p;
            }
            micros += 1;
        };
        fs::rename(&self.path, &rotated)?;
        self.file = BufWriter::new(open(&self.path)?);
        self.size = 0;
        self.opened_at = now;
        prune(dir, &stem, &ext, r.max_files)
    }
}

fn stem_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, ext)
}

/// `2026-11-22T01-30-00.123456`: fixed width, so names sort by time.
fn stamp(micros: u128) -> String {
    let secs = (micros / 1_000_000) as i64;
    let whole = Timestamp::new(secs, 0).unwrap_or_default().to_string();
    format!(
        "{}.{:06}",
        whole.trim_end_matches('Z').replace(':', "-"),
        micros % 1_000_000
    )
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 13 | 16 => *c == b'-',
            10 => *c == b'T',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// The rotated files of `stem`/`ext` in `dir`, oldest first.
pub(crate) fn rotated_files(dir: &Path, stem: &str, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        let middle = name
            .strip_prefix(stem)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(ext));
        if middle.is_some_and(is_stamp) {
            out.push(dir.join(name));
        }
    }
    out.sort();
    Ok(out)
}

fn prune(dir: &Path, stem: &str, ext: &str, keep: usize) -> io::Result<()> {
    let files = rotated_files(dir, stem, ext)?;
    let excess = files.len().saturating_sub(keep);
    for f in &files[..excess] {
        fs::remove_file(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::ManualClock;

    use super::*;

    #[test]
    fn stamps_are_fixed_width_and_recognised() {
        let s = stamp(1_500_000_000_123_456);
        assert_eq!(s, "2017-07-14T02-40-00.123456");
        assert!(is_stamp(&s));
        assert!(!is_stamp("2017-07-14T02-40-00.12345"));
        assert!(!is_stamp("2017-07-14T02:40:00.123456"));
    }

    #[test]
    fn rotates_by_size_and_age_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let clock = Arc::new(ManualClock::new());
        let r = Rotation {
            max_bytes: 10,
            max_age: Duration::from_secs(3600),
            max_files: 2,
        };
        let mut f = FileSink::open(path.clone(), Some(r), clock.clone()).unwrap();
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gg\n",
        ] {
            f.write_line(line.as_bytes()).unwrap();
        }
        f.file.flush().unwrap();
        let rotated = rotated_files(dir.path(), "out", ".log").unwrap();
        let contents: Vec<String> = rotated
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        // aaaa+bbbb went first and was pruned; two rotated files are kept.
        assert_eq!(contents, vec!["cccc\ndddd\n", "eeee\nffff\n"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "gg\n");

        // Age: an hour later the next line starts a new file, however small.
        clock.advance(Duration::from_secs(3600));
        f.write_line(b"h\n").unwrap();
        f.file.flush().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "h\n");
        let rotated = rotated_files(dir.path(), "out", ".log").unwrap();
        assert_eq!(fs::read_to_string(rotated.last().unwrap()).unwrap(), "gg\n");
        assert_eq!(rotated.len(), 2);
    }
}
