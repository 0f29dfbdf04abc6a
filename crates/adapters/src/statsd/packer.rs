//! Packing statsd lines into datagrams no larger than `flushBytes`.

/// Lines joined by `\n` into one datagram buffer.
#[derive(Debug)]
pub(crate) struct Packer {
    buf: Vec<u8>,
    lines: usize,
    max: usize,
}

impl Packer {
    pub(crate) fn new(max: usize) -> Packer {
        Packer {
            buf: Vec::with_capacity(max),
            lines: 0,
            max,
        }
    }

    /// Adds `line` (one statsd line, or several that must travel in one
    /// datagram, joined by `\n`). When it does not fit beside what is
    /// buffered, the buffer goes to `send` first (with its line count).
    /// Returns false, adding nothing, for a line longer than a datagram.
    pub(crate) fn push(
        &mut self,
        line: &[u8],
        lines: usize,
        send: impl FnMut(&[u8], usize),
    ) -> bool {
        if line.len() > self.max {
            return false;
        }
        if !self.buf.is_empty() && self.buf.len() + 1 + line.len() > self.max {
            self.flush(send);
        }
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(line);
        self.lines += lines;
        true
    }

    /// Hands what is buffered to `send`, if anything.
    pub(crate) fn flush(&mut self, mut send: impl FnMut(&[u8], usize)) {
        if !self.buf.is_empty() {
            send(&self.buf, self.lines);
            self.buf.clear();
            self.lines = 0;
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn datagrams_never_exceed_max_and_keep_every_line_in_order(
            lines in proptest::collection::vec("[a-z]{1,40}", 0..60),
            max in 1usize..120,
        ) {
            let mut p = Packer::new(max);
            let mut sent: Vec<Vec<u8>> = Vec::new();
            let mut kept = Vec::new();
            for l in &lines {
                if p.push(l.as_bytes(), 1, |d, _| sent.push(d.to_vec())) {
                    kept.push(l.clone());
                } else {
                    prop_assert!(l.len() > max);
                }
            }
            p.flush(|d, _| sent.push(d.to_vec()));
            prop_assert!(sent.iter().all(|d| d.len() <= max && !d.is_empty()));
            let got: Vec<String> = sent
                .iter()
                .flat_map(|d| String::from_utf8(d.clone()).unwrap().split('\n').map(str::to_string).collect::<Vec<_>>())
                .collect();
            prop_assert_eq!(got, kept);
        }
    }

    #[test]
    fn counts_lines_per_datagram() {
        let mut p = Packer::new(10);
        let mut sent = Vec::new();
        assert!(p.push(b"aaaa", 1, |d, n| sent.push((d.to_vec(), n))));
        assert!(p.push(b"b\nc", 2, |d, n| sent.push((d.to_vec(), n))));
        assert!(p.push(b"dddd", 1, |d, n| sent.push((d.to_vec(), n))));
        assert!(!p.push(b"elevenbytes", 1, |d, n| sent.push((d.to_vec(), n))));
        p.flush(|d, n| sent.push((d.to_vec(), n)));
        assert!(p.is_empty());
        assert_eq!(
            sent,
            vec![(b"aaaa\nb\nc".to_vec(), 3), (b"dddd".to_vec(), 1)]
        );
    }
}
