//! Metric name templates over dimensions: the `{{.name}}` subset of Go's
//! text/template that statsd `nameTemplate`s use, parsed once at
//! validation.

use std::fmt::Write as _;

use mixer_attributes::{Value, ValueRef};

use crate::template::Dimensions;

/// A parsed name template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Dimension(String),
}

impl NameTemplate {
    /// Parses `{{.apiMethod}}-{{.responseCode}}`: text with actions that
    /// each name one dimension (`{{ .name }}`, spaces allowed). Anything
    /// else inside `{{ }}` is an error saying where.
    pub fn parse(s: &str) -> Result<NameTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "unclosed `{{{{` at offset {} of {s:?}",
                    offset + open
                ));
            };
            let action = after[..close].trim();
            let name = action
                .strip_prefix('.')
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
                .ok_or_else(|| {
                    format!(
                        "`{{{{{}}}}}` at offset {} of {s:?}: only `{{{{.dimensionName}}}}` is supported",
                        &after[..close],
                        offset + open
                    )
                })?;
            parts.push(Part::Dimension(name.to_string()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if rest.contains("}}") {
            return Err(format!("`}}}}` without `{{{{` in {s:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(NameTemplate { parts })
    }

    /// Appends the name for these dimensions to `out`; a missing dimension
    /// renders as nothing.
    pub fn render(&self, dims: &Dimensions, out: &mut String) {
        self.render_by(|k| dims.get(k).map(Value::as_ref), out);
    }

    /// As [`render`](NameTemplate::render), reading each dimension through
    /// `get`: what owned and borrowed instances share.
    pub(crate) fn render_by<'a>(
        &self,
        get: impl Fn(&str) -> Option<ValueRef<'a>>,
        out: &mut String,
    ) {
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Dimension(d) => {
                    if let Some(v) = get(d) {
                        let _ = write!(out, "{v}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn renders_dimensions_into_text() {
        let t = NameTemplate::parse("{{.apiMethod}}-{{ .responseCode }}.count").unwrap();
        let dims: Dimensions = [
            (Arc::from("apiMethod"), Value::String("GetShelf".into())),
            (Arc::from("responseCode"), Value::Int64(200)),
        ]
        .into_iter()
        .collect();
        let mut out = String::new();
        t.render(&dims, &mut out);
        assert_eq!(out, "GetShelf-200.count");
        out.clear();
        t.render(&Dimensions::new(), &mut out);
        assert_eq!(out, "-.count");
        let plain = NameTemplate::parse("plain").unwrap();
        out.clear();
        plain.render(&dims, &mut out);
        assert_eq!(out, "plain");
    }

    #[test]
    fn bad_templates_say_where() {
        for (t, msg) in [
            ("a{{.b", "unclosed `{{` at offset 1"),
            ("{{b}}", "`{{b}}` at offset 0"),
            ("x{{.}}", "`{{.}}` at offset 1"),
            ("{{.a}}{{ .b | printf }}", "at offset 6"),
            ("a}}", "`}}` without `{{`"),
        ] {
            let e = NameTemplate::parse(t).unwrap_err();
            assert!(e.contains(msg), "{t}: {e}");
        }
    }
}
