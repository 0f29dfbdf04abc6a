//! A small flag parser: `--name value` and `--name=value`, flags before or
//! after positional arguments.

use std::collections::VecDeque;
use std::str::FromStr;

/// The arguments of one command, consumed flag by flag.
pub(crate) struct Args {
    rest: VecDeque<String>,
    positional: Vec<String>,
}

impl Args {
    pub(crate) fn new(argv: Vec<String>) -> Args {
        Args {
            rest: argv.into(),
            positional: Vec::new(),
        }
    }

    /// The next flag (`--name`) and its inline value, collecting positional
    /// arguments on the way; `None` at the end.
    pub(crate) fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        while let Some(a) = self.rest.pop_front() {
            if a == "--" {
                self.positional.extend(self.rest.drain(..));
                return None;
            }
            if let Some(flag) = a.strip_prefix("--") {
                return Some(match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (flag.to_string(), None),
                });
            }
            self.positional.push(a);
        }
        None
    }

    /// The value of flag `name`: inline, or the next argument.
    pub(crate) fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, String> {
        inline
            .or_else(|| self.rest.pop_front())
            .ok_or_else(|| format!("--{name} needs a value"))
    }

    /// The value of flag `name`, parsed.
    pub(crate) fn parsed<T: FromStr>(
        &mut self,
        name: &str,
        inline: Option<String>,
    ) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let v = self.value(name, inline)?;
        v.parse().map_err(|e| format!("--{name} {v:?}: {e}"))
    }

    /// The positional arguments seen.
    pub(crate) fn positional(self) -> Vec<String> {
        self.positional
    }
}
