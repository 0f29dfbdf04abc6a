//! Field paths inside a config document, as printed in errors
//! (`actions[0].handler`, `params.dimensions[response_code]`).

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A field of a structure: printed `.name`.
    Field(String),
    /// An entry of a user-keyed map (dimensions, attributes): printed `[key]`,
    /// because such keys may themselves contain dots.
    Key(String),
    /// An element of a list: printed `[3]`.
    Index(usize),
}

impl Segment {
    /// The name of a field or map key; `None` for a list index.
    pub fn name(&self) -> Option<&str> {
        match self {
            Segment::Field(s) | Segment::Key(s) => Some(s),
            Segment::Index(_) => None,
        }
    }
}

/// Where a value sits in a document, from the document's root.
///
/// Printed relative to `spec` (the part operators write), so
/// `spec.actions[0].handler` reads `actions[0].handler`; paths outside `spec`
/// (`metadata.name`) print in full.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// The path of the `spec` of a document.
    pub fn spec() -> FieldPath {
        FieldPath::root().field("spec")
    }

    /// This path, then the structure field `name`.
    pub fn field(&self, name: &str) -> FieldPath {
        self.with(Segment::Field(name.to_owned()))
    }

    /// This path, then the map key `key`.
    pub fn key(&self, key: &str) -> FieldPath {
        self.with(Segment::Key(key.to_owned()))
    }

    /// This path, then the list element `index`.
    pub fn index(&self, index: usize) -> FieldPath {
        self.with(Segment::Index(index))
    }

    /// This path, then `relative` written as printed: fields separated by
    /// `.`, list indexes as `[3]`, map keys as `[key]` (keys may hold dots).
    /// For adapters' messages about params (`metrics[0].labelNames`).
    pub fn join(&self, relative: &str) -> FieldPath {
        let mut segments = self.0.clone();
        let mut rest = relative;
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('[') {
                let end = inner.find(']').unwrap_or(inner.len());
                let key = &inner[..end];
                segments.push(match key.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(key.to_owned()),
                });
                rest = inner.get(end + 1..).unwrap_or("");
            } else {
                let rest_field = rest.strip_prefix('.').unwrap_or(rest);
                let end = rest_field.find(['.', '[']).unwrap_or(rest_field.len());
                if end > 0 {
                    segments.push(Segment::Field(rest_field[..end].to_owned()));
                }
                rest = &rest_field[end..];
                if end == 0 && rest.starts_with('.') {
                    rest = &rest[1..];
                }
            }
        }
        FieldPath(segments)
    }

    /// The steps of this path.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn with(&self, segment: Segment) -> FieldPath {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend_from_slice(&self.0);
        segments.push(segment);
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = self.0.as_slice();
        if let [Segment::Field(spec), rest @ ..] = segments
            && spec == "spec"
            && !rest.is_empty()
        {
            segments = rest;
        }
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Key(key) => write!(f, "[{key}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_relative_to_spec() {
        let p = FieldPath::spec().field("actions").index(0).field("handler");
        assert_eq!(p.to_string(), "actions[0].handler");
        let p = FieldPath::spec()
            .field("params")
            .field("dimensions")
            .key("response.code");
        assert_eq!(p.to_string(), "params.dimensions[response.code]");
        assert_eq!(FieldPath::spec().to_string(), "spec");
        let p = FieldPath::root().field("metadata").field("name");
        assert_eq!(p.to_string(), "metadata.name");
    }

    #[test]
    fn join_reads_printed_paths() {
        let params = FieldPath::spec().field("params");
        let p = params.join("metrics[0].labelNames[2]");
        assert_eq!(
            p,
            params
                .field("metrics")
                .index(0)
                .field("labelNames")
                .index(2)
        );
        let p = params.join("severityLevels[a.b].x");
        assert_eq!(p, params.field("severityLevels").key("a.b").field("x"));
        assert_eq!(p.to_string(), "params.severityLevels[a.b].x");
        for odd in ["", ".", "..", "[", "]", "[x", "a..b", "[1]]"] {
            let _ = params.join(odd);
        }
    }
}
