//! Lines of fields in a document, found by a light scan of its text,
//! because neither the YAML nor the JSON parser reports positions of
//! values.
//!
//! For YAML the scan understands block mappings and sequences (the style
//! every Istio config uses); values written in flow style (`{a: 1}`) get the
//! line of the nearest enclosing field. JSON is scanned token by token. A
//! wrong guess costs only a less precise line in an error message, never a
//! wrong decision.

use std::collections::HashMap;

use crate::model::Segment;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Name(String),
    Index(usize),
}

impl From<&Segment> for Step {
    fn from(segment: &Segment) -> Step {
        match segment {
            Segment::Field(name) | Segment::Key(name) => Step::Name(name.clone()),
            Segment::Index(i) => Step::Index(*i),
        }
    }
}

/// The line of every field and list element of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    lines: HashMap<Vec<Step>, u32>,
}

struct Frame {
    /// Column of the key or dash that opened this node; -1 for the root.
    indent: isize,
    path: Vec<Step>,
    is_item: bool,
    next_index: usize,
}

impl LineIndex {
    /// Scans `text`, whose first line is line `first_line` of its file.
    pub(crate) fn scan(text: &str, first_line: u32) -> LineIndex {
        let mut scan = Scan {
            index: LineIndex::default(),
            stack: vec![Frame {
                indent: -1,
                path: Vec::new(),
                is_item: false,
                next_index: 0,
            }],
            block_scalar: None,
        };
        for (n, line) in text.lines().enumerate() {
            let line_no = first_line.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            let content = line.trim_start_matches(' ');
            let indent = (line.len() - content.len()) as isize;
            if let Some(block) = scan.block_scalar {
                if content.trim().is_empty() || indent > block {
                    continue;
                }
                scan.block_scalar = None;
            }
            if content.trim().is_empty() || content.starts_with('#') {
                continue;
            }
            scan.node(indent, content, line_no);
        }
        scan.index
    }

    /// Scans one JSON value (already known to be well-formed), whose first
    /// line is line `first_line` of its file.
    pub(crate) fn scan_json(text: &str, first_line: u32) -> LineIndex {
        enum Frame {
            Object {
                path: Vec<Step>,
                key: Option<String>,
            },
            Array {
                path: Vec<Step>,
                next: usize,
            },
        }
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut line = first_line;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\n' => line = line.saturating_add(1),
                b'}' | b']' => {
                    stack.pop();
                }
                b'"' if matches!(stack.last(), Some(Frame::Object { key: None, .. })) => {
                    let end = json_string_end(bytes, i);
                    let key = unescape_double(text.get(i + 1..end - 1).unwrap_or(""));
                    if let Some(Frame::Object { key: slot, .. }) = stack.last_mut() {
                        *slot = Some(key);
                    }
                    i = end;
                    continue;
                }
                b' ' | b'\t' | b'\r' | b',' | b':' => {}
                _ => {
                    // A value starts: find its path.
                    let path = match stack.last_mut() {
                        Some(Frame::Object { path, key }) => key.take().map(|k| {
                            let mut p = path.clone();
                            p.push(Step::Name(k));
                            p
                        }),
                        Some(Frame::Array { path, next }) => {
                            let mut p = path.clone();
                            p.push(Step::Index(*next));
                            *next += 1;
                            Some(p)
                        }
                        None => Some(Vec::new()),
                    };
                    let path = path.unwrap_or_default();
                    if !path.is_empty() {
                        index.lines.entry(path.clone()).or_insert(line);
                    }
                    match b {
                        b'{' => stack.push(Frame::Object { path, key: None }),
                        b'[' => stack.push(Frame::Array { path, next: 0 }),
                        b'"' => {
                            i = json_string_end(bytes, i);
                            continue;
                        }
                        _ => {
                            while i < bytes.len()
                                && !matches!(
                                    bytes[i],
                                    b',' | b'}' | b']' | b'\n' | b' ' | b'\t' | b'\r'
                                )
                            {
                                i += 1;
                            }
                            continue;
                        }
                    }
                }
            }
            i += 1;
        }
        index
    }

    /// The line of `path`, or of its deepest ancestor the scan recorded.
    pub(crate) fn line_of(&self, path: &[Segment]) -> Option<u32> {
        let steps: Vec<Step> = path.iter().map(Step::from).collect();
        (1..=steps.len())
            .rev()
            .find_map(|n| self.lines.get(&steps[..n]).copied())
    }
}

struct Scan {
    index: LineIndex,
    stack: Vec<Frame>,
    /// Set while inside a `|` or `>` block scalar opened by a key at this
    /// column: its lines are text, not structure.
    block_scalar: Option<isize>,
}

impl Scan {
    fn node(&mut self, indent: isize, content: &str, line: u32) {
        if content == "-" || content.starts_with("- ") || content.starts_with("-\t") {
            // A sequence may sit at the same column as its key; a previous
            // item at this column is a sibling, not a parent.
            while self.stack.len() > 1 {
                let top = &self.stack[self.stack.len() - 1];
                if top.indent > indent || (top.indent == indent && top.is_item) {
                    self.stack.pop();
                } else {
                    break;
                }
            }
            let Some(parent) = self.stack.last_mut() else {
                return;
            };
            let mut path = parent.path.clone();
            path.push(Step::Index(parent.next_index));
            parent.next_index += 1;
            self.index.lines.entry(path.clone()).or_insert(line);
            self.stack.push(Frame {
                indent,
                path,
                is_item: true,
                next_index: 0,
            });
            let rest = &content[1..];
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                let column = indent + 1 + (rest.len() - trimmed.len()) as isize;
                self.node(column, trimmed, line);
            }
        } else if let Some((key, value)) = split_key(content) {
            while self.stack.len() > 1 && self.stack[self.stack.len() - 1].indent >= indent {
                self.stack.pop();
            }
            let Some(parent) = self.stack.last() else {
                return;
            };
            let mut path = parent.path.clone();
            path.push(Step::Name(key));
            self.index.lines.entry(path.clone()).or_insert(line);
            self.stack.push(Frame {
                indent,
                path,
                is_item: false,
                next_index: 0,
            });
            let value = value.trim_start();
            if value.starts_with('|') || value.starts_with('>') {
                self.block_scalar = Some(indent);
            }
        }
    }
}

/// Splits `key: value` (or `key:`), with plain or quoted keys; `None` for
/// anything else (a scalar, a flow collection, a continuation line).
fn split_key(content: &str) -> Option<(String, &str)> {
    let (key, rest) = match content.chars().next()? {
        '"' => {
            let end = closing_quote(content, '"')?;
            (unescape_double(&content[1..end]), &content[end + 1..])
        }
        '\'' => {
            let end = closing_quote(content, '\'')?;
            (content[1..end].replace("''", "'"), &content[end + 1..])
        }
        '{' | '[' | '&' | '*' | '!' | '|' | '>' | '%' | '@' | '`' | '?' | '#' => return None,
        _ => {
            let colon = find_key_colon(content)?;
            (content[..colon].trim_end().to_owned(), &content[colon..])
        }
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let value = rest.strip_prefix(':')?;
    if value.is_empty() || value.starts_with([' ', '\t']) {
        Some((key, value))
    } else {
        None
    }
}

fn find_key_colon(content: &str) -> Option<usize> {
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        if b == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) {
            return Some(i);
        }
    }
    None
}

fn closing_quote(content: &str, quote: char) -> Option<usize> {
    let bytes = content.as_bytes();
    let q = quote as u8;
    let mut i = 1;
    while i < bytes.len() {
        if q == b'"' && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == q {
            if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The index just past the JSON string starting at `start` (a `"`).
fn json_string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn unescape_double(s: &str) -> String {
    // Keys with escapes other than \" and \\ are rare enough that an
    // approximate key (hence a less precise line) is acceptable.
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FieldPath;

    const DOC: &str = "\
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata:
  name: deny
spec:
  match: a == \"b\" &&
    c == \"d\"
  actions:
  - handler: h1
    instances:
    - i1
    - i2
  -
    handler: h2
    instances: [x]
  responseHeaderOperations:
    - name: \"x-a: b\"
      values: |
        not: a key
      operation: REPLACE
";

    fn line(index: &LineIndex, path: FieldPath) -> Option<u32> {
        index.line_of(path.segments())
    }

    #[test]
    fn finds_block_fields_and_items() {
        let index = LineIndex::scan(DOC, 10);
        let spec = FieldPath::spec();
        assert_eq!(line(&index, spec.field("match")), Some(15));
        let actions = spec.field("actions");
        assert_eq!(line(&index, actions.index(0).field("handler")), Some(18));
        assert_eq!(
            line(&index, actions.index(0).field("instances").index(1)),
            Some(21)
        );
        assert_eq!(line(&index, actions.index(1)), Some(22));
        assert_eq!(line(&index, actions.index(1).field("handler")), Some(23));
        // Flow style: the enclosing field's line.
        assert_eq!(
            line(&index, actions.index(1).field("instances").index(0)),
            Some(24)
        );
        let ops = spec.field("responseHeaderOperations").index(0);
        assert_eq!(line(&index, ops.field("name")), Some(26));
        // A block scalar's text is not structure: `not:` is no key.
        assert_eq!(line(&index, ops.field("values").field("not")), Some(27));
        assert_eq!(line(&index, ops.field("operation")), Some(29));
        assert_eq!(
            line(&index, FieldPath::root().field("metadata").field("name")),
            Some(13)
        );
    }

    #[test]
    fn finds_json_fields_and_items() {
        let json = "{\n  \"kind\": \"rule\",\n  \"spec\": {\n    \"match\": \"a == \\\"}\\\"\",\n    \"actions\": [\n      {\"handler\": \"h\",\n       \"instances\": [\"i\", 2]}\n    ]\n  }\n}";
        let index = LineIndex::scan_json(json, 5);
        let spec = FieldPath::spec();
        assert_eq!(line(&index, FieldPath::root().field("kind")), Some(6));
        assert_eq!(line(&index, spec.field("match")), Some(8));
        assert_eq!(
            line(&index, spec.field("actions").index(0).field("handler")),
            Some(10)
        );
        assert_eq!(
            line(
                &index,
                spec.field("actions").index(0).field("instances").index(1)
            ),
            Some(11)
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in ["{\"a", "[[[", "}}]]", "{\"\\", "\"é\": ü", "{\"é", "{\""] {
            let _ = LineIndex::scan_json(text, 1);
        }
        for text in [
            "- - - a",
            ": : :",
            "\"unterminated: x",
            "'a''b': 1\n  - x",
            "é: ü\n  ß",
        ] {
            let _ = LineIndex::scan(text, 1);
        }
    }
}
