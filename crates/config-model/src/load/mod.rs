//! Reading config documents from YAML and JSON strings, files and
//! directories, before any validation.
//!
//! Loading never stops at a broken document: syntax errors are kept as
//! [`Problem`]s and reported with everything validation finds. Only an
//! unreadable path is an immediate error.

mod json;
mod lines;
mod walk;
mod yaml;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Problem};
use crate::model::{FieldPath, Origin};
use lines::LineIndex;

/// The largest source (file or string) loaded: 16 MiB. Larger ones are
/// reported as a problem and not parsed, so a stray file cannot exhaust
/// memory.
pub const MAX_SOURCE_BYTES: usize = 16 << 20;

/// How deep [`Documents::add_dir`] descends into subdirectories (also the
/// guard against symbolic-link loops).
pub const MAX_DIR_DEPTH: usize = 16;

/// Finds the line of any field of one document, for messages about it
/// (including those the adapters raise about handler params later).
#[derive(Clone)]
pub struct Locator {
    origin: Origin,
    lines: Option<Arc<LineIndex>>,
    /// Where the document sits in its YAML tree (`items[3]` in a `List`).
    base: FieldPath,
}

impl Locator {
    /// A locator that knows only where the document starts.
    pub fn new(origin: Origin) -> Locator {
        Locator {
            origin,
            lines: None,
            base: FieldPath::root(),
        }
    }

    /// Where the document starts.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Where the field at `path` (from the document root) is: its own line
    /// when the scan found it, else the nearest enclosing field's, else the
    /// document's.
    pub fn origin_of(&self, path: &FieldPath) -> Origin {
        let line = self.lines.as_ref().and_then(|lines| {
            let full: Vec<_> = self
                .base
                .segments()
                .iter()
                .chain(path.segments())
                .cloned()
                .collect();
            lines.line_of(&full)
        });
        self.origin.at(line)
    }
}

impl std::fmt::Debug for Locator {
    // The line index is large and says nothing a reader needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Locator")
            .field(&self.origin.to_string())
            .finish()
    }
}

/// One config document, parsed but not validated.
#[derive(Debug)]
pub struct Document {
    locator: Locator,
    value: Value,
}

impl Document {
    /// Where the document starts.
    pub fn origin(&self) -> &Origin {
        &self.locator.origin
    }

    /// The parsed document.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Where the field at `path` (from the document root) is.
    pub fn origin_of(&self, path: &FieldPath) -> Origin {
        self.locator.origin_of(path)
    }

    /// Finds the lines of this document's fields.
    pub fn locator(&self) -> &Locator {
        &self.locator
    }
}

/// Config documents gathered from any number of sources, in the order they
/// were added, with the syntax problems met on the way.
///
/// ```
/// use mixer_config::load::Documents;
///
/// let mut docs = Documents::new();
/// docs.add_yaml("inline.yaml", "kind: rule\nmetadata: {name: a}\n---\nkind: rule\nmetadata: {name: b}\n");
/// docs.add_json("inline.json", r#"{"kind": "rule", "metadata": {"name": "c"}}"#);
/// assert_eq!(docs.documents().len(), 3);
/// assert_eq!(docs.documents()[1].origin().to_string(), "inline.yaml:4");
/// assert!(docs.problems().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Documents {
    docs: Vec<Document>,
    problems: Vec<Problem>,
}

impl Documents {
    /// No documents yet.
    pub fn new() -> Documents {
        Documents::default()
    }

    /// Adds the documents of a YAML stream (`---`-separated). `source`
    /// names it in messages.
    pub fn add_yaml(&mut self, source: &str, text: &str) {
        let source: Arc<str> = source.into();
        if self.over_limit(&source, text.len()) {
            return;
        }
        for chunk in yaml::split(text) {
            match yaml::parse(&chunk) {
                Ok(value) => {
                    let lines = Arc::new(LineIndex::scan(&chunk.text, chunk.first_line));
                    let origin = Origin::new(source.clone(), Some(chunk.content_line));
                    self.push(origin, value, Some(lines), FieldPath::root());
                }
                Err((line, message)) => self.problems.push(Problem {
                    origin: Some(Origin::new(source.clone(), line)),
                    subject: None,
                    field: None,
                    error: Error::Syntax {
                        format: "YAML",
                        message,
                    },
                }),
            }
        }
    }

    /// Adds the documents of a JSON text: one object, an array of objects,
    /// or several objects one after another. `source` names it in messages.
    pub fn add_json(&mut self, source: &str, text: &str) {
        let source: Arc<str> = source.into();
        if self.over_limit(&source, text.len()) {
            return;
        }
        for item in json::parse(text) {
            match item {
                Ok((line, value, text)) => {
                    let lines = Arc::new(LineIndex::scan_json(text, line));
                    let origin = Origin::new(source.clone(), Some(line));
                    if let Value::Array(values) = value {
                        // An array of documents: each its own, like `List` items.
                        for (i, value) in values.into_iter().enumerate() {
                            let base = FieldPath::root().index(i);
                            let line = lines.line_of(base.segments());
                            self.push(origin.at(line), value, Some(lines.clone()), base);
                        }
                    } else {
                        self.push(origin, value, Some(lines), FieldPath::root());
                    }
                }
                Err((line, message)) => self.problems.push(Problem {
                    origin: Some(Origin::new(source.clone(), line)),
                    subject: None,
                    field: None,
                    error: Error::Syntax {
                        format: "JSON",
                        message,
                    },
                }),
            }
        }
    }

    /// Adds a file: JSON if its name ends in `.json`, YAML otherwise.
    pub fn add_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let json = walk::is_json(path);
        let bytes = match walk::read(path, MAX_SOURCE_BYTES)? {
            Ok(bytes) => bytes,
            Err(size) => {
                self.over_limit(&source.into(), size);
                return Ok(());
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                self.problems.push(Problem {
                    origin: Some(Origin::new(source.into(), None)),
                    subject: None,
                    field: None,
                    error: Error::Syntax {
                        format: if json { "JSON" } else { "YAML" },
                        message: format!("not UTF-8 text ({})", e.utf8_error()),
                    },
                });
                return Ok(());
            }
        };
        if json {
            self.add_json(&source, &text);
        } else {
            self.add_yaml(&source, &text);
        }
        Ok(())
    }

    /// Adds every `*.yaml`, `*.yml` and `*.json` file under `dir`,
    /// recursively, in sorted order. Hidden entries (names starting with
    /// `.`) are skipped: Kubernetes mounts a ConfigMap with hidden
    /// `..data` directories holding a second copy of every file.
    pub fn add_dir(&mut self, dir: impl AsRef<Path>) -> Result<(), Error> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        if let Err(too_deep) = walk::config_files(dir, MAX_DIR_DEPTH, &mut files)? {
            self.problems.push(Problem {
                origin: Some(Origin::new(too_deep.display().to_string().into(), None)),
                subject: None,
                field: None,
                error: Error::TooDeep {
                    limit: MAX_DIR_DEPTH,
                },
            });
        }
        for file in files {
            self.add_file(file)?;
        }
        Ok(())
    }

    /// Adds a directory ([`add_dir`](Self::add_dir)) or a file
    /// ([`add_file`](Self::add_file)).
    pub fn add_path(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        if path.is_dir() {
            self.add_dir(path)
        } else {
            self.add_file(path)
        }
    }

    /// The documents loaded so far.
    pub fn documents(&self) -> &[Document] {
        &self.docs
    }

    /// The syntax problems met so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub(crate) fn into_parts(self) -> (Vec<Document>, Vec<Problem>) {
        (self.docs, self.problems)
    }

    fn over_limit(&mut self, source: &Arc<str>, size: usize) -> bool {
        if size <= MAX_SOURCE_BYTES {
            return false;
        }
        self.problems.push(Problem {
            origin: Some(Origin::new(source.clone(), None)),
            subject: None,
            field: None,
            error: Error::TooLarge {
                size: size as u64,
                limit: MAX_SOURCE_BYTES as u64,
            },
        });
        true
    }

    /// Adds a parsed document, unwrapping a Kubernetes `kind: List`.
    fn push(
        &mut self,
        origin: Origin,
        value: Value,
        lines: Option<Arc<LineIndex>>,
        base: FieldPath,
    ) {
        if value.is_null() {
            return;
        }
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("items").is_some_and(Value::is_array);
        if !is_list {
            let locator = Locator {
                origin,
                lines,
                base,
            };
            self.docs.push(Document { locator, value });
            return;
        }
        let Value::Object(mut map) = value else {
            return;
        };
        let Some(Value::Array(items)) = map.remove("items") else {
            return;
        };
        for (i, item) in items.into_iter().enumerate() {
            if item.is_null() {
                continue;
            }
            let base = base.field("items").index(i);
            let line = lines.as_ref().and_then(|l| l.line_of(base.segments()));
            let locator = Locator {
                origin: origin.at(line),
                lines: lines.clone(),
                base,
            };
            self.docs.push(Document {
                locator,
                value: item,
            });
        }
    }
}
