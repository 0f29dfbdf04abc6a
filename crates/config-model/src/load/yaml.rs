//! Multi-document YAML: splitting on `---` (so each document knows its first
//! line, and one broken document does not hide the others), parsing, and
//! conversion to `serde_json::Value`, the one tree the rest of the crate
//! reads.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// One document of a YAML stream.
pub(crate) struct Chunk<'a> {
    /// The document's text (a `---` sharing its first line is blanked out).
    pub(crate) text: Cow<'a, str>,
    /// The 1-based line of the chunk's first line in its file.
    pub(crate) first_line: u32,
    /// The line where the document's content starts (first line that is
    /// not blank or a comment).
    pub(crate) content_line: u32,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

fn push_chunk<'a>(chunks: &mut Vec<Chunk<'a>>, text: Cow<'a, str>, first_line: u32) {
    let content = text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if let Some(skip) = content {
        let content_line = first_line.saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));
        chunks.push(Chunk {
            text,
            first_line,
            content_line,
        });
    }
}

/// Splits a YAML stream into documents at `---` and `...` lines, dropping
/// `%` directives and documents holding nothing but blanks and comments.
pub(crate) fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut carried: Option<String> = None;
    let mut offset = 0usize;
    let mut line_no = 1u32;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator = is_marker(bare, "---") || is_marker(bare, "...");
        if separator || bare.starts_with('%') {
            let body = &text[start..offset];
            let chunk = match carried.take() {
                Some(mut first) => {
                    first.push_str(body);
                    Cow::Owned(first)
                }
                None => Cow::Borrowed(body),
            };
            push_chunk(&mut chunks, chunk, start_line);
            start = offset + line.len();
            start_line = line_no.saturating_add(1);
            if is_marker(bare, "---") && !bare[3..].trim().is_empty() {
                // `--- {a: 1}`: the document starts on the marker's line.
                carried = Some(format!("   {}", &line[3..]));
                start_line = line_no;
            }
        }
        offset += line.len();
        line_no = line_no.saturating_add(1);
    }
    let body = &text[start..];
    let chunk = match carried.take() {
        Some(mut first) => {
            first.push_str(body);
            Cow::Owned(first)
        }
        None => Cow::Borrowed(body),
    };
    push_chunk(&mut chunks, chunk, start_line);
    chunks
}

/// Parses one document. On a syntax error, returns the 1-based line of the
/// error in the file and the parser's message (whose positions are the
/// file's too).
pub(crate) fn parse(chunk: &Chunk<'_>) -> Result<Value, (Option<u32>, String)> {
    match yaml_serde::from_str::<yaml_serde::Value>(&chunk.text) {
        Ok(mut value) => {
            if let Err(e) = value.apply_merge() {
                return Err((Some(chunk.content_line), e.to_string()));
            }
            convert(value).map_err(|msg| (Some(chunk.content_line), msg))
        }
        Err(err) => {
            // The parser counts lines from the document's start; the
            // operator counts them from the file's.
            let offset = chunk.first_line.saturating_sub(1);
            let line = err
                .location()
                .and_then(|l| u32::try_from(l.line()).ok())
                .filter(|&l| l > 0)
                .map_or(chunk.content_line, |l| l.saturating_add(offset));
            Err((Some(line), shift_lines(&err.to_string(), offset)))
        }
    }
}

/// Adds `offset` to every `line N` of a parser message.
fn shift_lines(message: &str, offset: u32) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<u32>() {
            Ok(n) => out.push_str(&n.saturating_add(offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn convert(value: yaml_serde::Value) -> Result<Value, String> {
    use yaml_serde::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => number(&n),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        Y::Mapping(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => return Err("mapping keys must be scalars".to_owned()),
                };
                map.insert(key, convert(v)?);
            }
            Value::Object(map)
        }
        // Tags mean nothing in Istio config; the tagged value is what counts.
        Y::Tagged(tagged) => convert(tagged.value)?,
    })
}

fn number(n: &yaml_serde::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        // NaN and infinities have no JSON form; keep their YAML spelling so
        // that whoever reads the field reports a type error naming it.
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_their_lines() {
        let text =
            "# header\n---\na: 1\n---\n\n# c\nb: 2\n...\n--- {c: 3}\n---\n# only a comment\n";
        let chunks = split(text);
        let lines: Vec<_> = chunks
            .iter()
            .map(|c| (c.first_line, c.content_line))
            .collect();
        assert_eq!(lines, vec![(3, 3), (5, 7), (9, 9)]);
        let values: Vec<_> = chunks.iter().map(|c| parse(c).unwrap()).collect();
        assert_eq!(values[2], serde_json::json!({"c": 3}));
    }

    #[test]
    fn syntax_errors_carry_file_lines() {
        let text = "a: 1\n---\nb: 2\nc: [\n";
        let chunks = split(text);
        let (line, message) = parse(&chunks[1]).unwrap_err();
        assert_eq!(line, Some(5));
        assert!(message.contains("at line 5 column 1"), "{message}");
        // A context position, on another line, is shifted too.
        let text = "a: 1\n---\nb: 2\nc: {a: 1\n";
        let (_, message) = parse(&split(text)[1]).unwrap_err();
        assert!(message.contains("at line 4 column 4"), "{message}");
    }

    #[test]
    fn converts_scalar_keys_and_tags() {
        let chunks = split("1: a\ntrue: !foo b\nx: .nan\n");
        let value = parse(&chunks[0]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"1": "a", "true": "b", "x": ".nan"})
        );
    }
}
