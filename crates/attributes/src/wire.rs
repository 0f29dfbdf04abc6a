//! A minimal protobuf reader for the `Attributes` message.
//!
//! prost's generated structs allocate a `HashMap` per map field and a
//! `String` per value; the stream decoder instead reads the wire bytes in
//! place (validate on one pass, apply on the next), so that a steady-state
//! update allocates only for the string values it stores.
//!
//! Semantics follow prost's decoder: `int32` varints are truncated, `bool` is
//! any non-zero varint, missing map keys and values take their defaults,
//! unknown fields are skipped, packed and unpacked repeated scalars are both
//! accepted, and strings must be UTF-8.

use crate::error::Error;

/// One field's payload, borrowed from the input.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Payload<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A fixed32 (no field of `Attributes` has one; skipped).
    Fixed32,
    /// Bytes and the absolute offset where they start.
    Len(&'a [u8], usize),
}

/// Reads fields one after another from a message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` within the outermost message, for errors.
    base: usize,
    /// The field being read, for errors.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize, what: &'static str) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    #[cold]
    #[inline(never)]
    fn err(&self, reason: &'static str) -> Error {
        Error::Malformed {
            field: self.what,
            offset: self.base + self.pos,
            reason,
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Error> {
        // Keys, lengths and most values of this message fit one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, Error> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 64 bits"))
    }

    fn take(&mut self, n: usize) -> Result<(&'a [u8], usize), Error> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err("length runs past the end of the message"))?;
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    /// The next varint of a packed repeated field, or `None` at the end.
    pub(crate) fn packed_varint(&mut self) -> Result<Option<u64>, Error> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        self.varint().map(Some)
    }

    /// The next field: its number and payload, or `None` at the end.
    #[inline(always)]
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Payload<'a>)>, Error> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.err("invalid field number"));
        }
        let payload = match key & 7 {
            0 => Payload::Varint(self.varint()?),
            1 => {
                let (b, _) = self.take(8)?;
                Payload::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or_default()))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
                let (b, at) = self.take(len)?;
                Payload::Len(b, at)
            }
            5 => {
                self.take(4)?;
                Payload::Fixed32
            }
            3 | 4 => return Err(self.err("groups are not supported")),
            _ => return Err(self.err("invalid wire type")),
        };
        Ok(Some((number as u32, payload)))
    }
}

/// The error for a known field carrying the wrong wire type.
pub(crate) fn wrong_type(what: &'static str, offset: usize) -> Error {
    Error::Malformed {
        field: what,
        offset,
        reason: "wrong wire type for this field",
    }
}

/// Checks UTF-8 like prost does for `string` fields.
#[inline]
pub(crate) fn utf8<'a>(b: &'a [u8], what: &'static str, offset: usize) -> Result<&'a str, Error> {
    std::str::from_utf8(b).map_err(|_| Error::Malformed {
        field: what,
        offset,
        reason: "string is not valid UTF-8",
    })
}

/// A map entry's raw key and value: `(key, value)` with the key as the
/// int32 every map of `Attributes` uses and the value as its payload (or
/// `None` when absent, meaning the type's default).
#[inline]
pub(crate) fn map_entry<'a>(
    entry: &'a [u8],
    at: usize,
    what: &'static str,
) -> Result<(i32, Option<Payload<'a>>), Error> {
    let mut r = Reader::new(entry, at, what);
    let mut key = 0i32;
    let mut value = None;
    while let Some((n, p)) = r.next_field()? {
        match (n, p) {
            (1, Payload::Varint(v)) => key = v as i32,
            (1, _) => return Err(wrong_type(what, at)),
            (2, p) => value = Some(p),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Reads a `google.protobuf.Timestamp` or `Duration`: `(seconds, nanos)`.
pub(crate) fn seconds_nanos(b: &[u8], at: usize, what: &'static str) -> Result<(i64, i32), Error> {
    let mut r = Reader::new(b, at, what);
    let (mut s, mut n) = (0i64, 0i32);
    while let Some((f, p)) = r.next_field()? {
        match (f, p) {
            (1, Payload::Varint(v)) => s = v as i64,
            (2, Payload::Varint(v)) => n = v as i32,
            (1 | 2, _) => return Err(wrong_type(what, at)),
            _ => {}
        }
    }
    Ok((s, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_rejects_truncation() {
        // field 2 varint 300, field 4 len 2 "hi", field 6 fixed64.
        let mut b = vec![0x10, 0xac, 0x02, 0x22, 2, b'h', b'i', 0x31];
        b.extend_from_slice(&1.5f64.to_le_bytes());
        let mut r = Reader::new(&b, 0, "Attributes");
        assert!(matches!(
            r.next_field(),
            Ok(Some((2, Payload::Varint(300))))
        ));
        assert!(matches!(
            r.next_field(),
            Ok(Some((4, Payload::Len(b"hi", 5))))
        ));
        match r.next_field() {
            Ok(Some((6, Payload::Fixed64(v)))) => assert_eq!(f64::from_bits(v), 1.5),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.next_field(), Ok(None)));

        let e = Reader::new(&[0x22, 5, b'a'], 0, "Attributes")
            .next_field()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed Attributes message: length runs past the end of the message (in Attributes at byte 2)"
        );
        let e = Reader::new(&[0x10, 0xff], 0, "Attributes")
            .next_field()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed Attributes message: truncated varint (in Attributes at byte 2)"
        );
        let e = Reader::new(&[0x13], 0, "Attributes")
            .next_field()
            .unwrap_err();
        assert!(e.to_string().contains("groups are not supported"), "{e}");
        let mut long = vec![0x10];
        long.extend_from_slice(&[0xff; 10]);
        long.push(0);
        let e = Reader::new(&long, 0, "Attributes")
            .next_field()
            .unwrap_err();
        assert!(e.to_string().contains("longer than 64 bits"), "{e}");
    }
}
