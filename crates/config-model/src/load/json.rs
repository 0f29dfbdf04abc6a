//! JSON texts: one value, or several one after another.

use serde_json::Value;

/// A top-level value, its first line and its text, or a syntax error, its
/// line and message.
pub(super) type Parsed<'a> = Result<(u32, Value, &'a str), (Option<u32>, String)>;

/// Each top-level value with the 1-based line it starts on, or a syntax
/// error with its line. Stops at the first error: the JSON parser cannot
/// resynchronise.
pub(super) fn parse(text: &str) -> Vec<Parsed<'_>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut consumed = 0usize;
    // Lines are counted incrementally: many small values stay linear.
    let (mut counted, mut line) = (0usize, 1u32);
    loop {
        let start = consumed
            + text[consumed..]
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(text.len() - consumed);
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                line = line.saturating_add(newlines(&text[counted..start]));
                counted = start;
                consumed = stream.byte_offset();
                out.push(Ok((line, value, text.get(start..consumed).unwrap_or(""))));
            }
            Some(Err(e)) => {
                let line = u32::try_from(e.line()).ok().filter(|&l| l > 0);
                out.push(Err((line, e.to_string())));
                break;
            }
        }
    }
    out
}

fn newlines(text: &str) -> u32 {
    u32::try_from(text.bytes().filter(|&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lines() {
        let parsed = parse("{\"a\": 1}\n\n  {\"b\": 2}\n{");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].as_ref().unwrap().0, 1);
        assert_eq!(parsed[1].as_ref().unwrap().0, 3);
        assert_eq!(parsed[2].as_ref().unwrap_err().0, Some(4));
    }
}
