//! Errors of building a policy set: each names its source, policy id, line
//! and column, and renders with the offending text underlined through miette.

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Serialize;

/// What kind of problem a [`PolicyError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The text is not Cedar.
    Parse,
    /// The policy does not validate against the datamesh schema (strict mode).
    Validation,
    /// The policy has no `@id("...")` annotation.
    MissingId,
    /// The policy has no `@reason("...")` annotation.
    MissingReason,
    /// Two policies have the same `@id`.
    DuplicateId,
    /// Templates (policies with `?principal`/`?resource` slots) are not supported.
    Template,
    /// The shipped schema itself does not parse (a build defect).
    Schema,
}

impl PolicyErrorKind {
    /// Name used in machine-readable output.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyErrorKind::Parse => "parse",
            PolicyErrorKind::Validation => "validation",
            PolicyErrorKind::MissingId => "missingId",
            PolicyErrorKind::MissingReason => "missingReason",
            PolicyErrorKind::DuplicateId => "duplicateId",
            PolicyErrorKind::Template => "template",
            PolicyErrorKind::Schema => "schema",
        }
    }
}

/// One problem found in one policy source.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{source_name}:{line}:{column}: {message}")]
#[non_exhaustive]
pub struct PolicyError {
    /// What kind of problem it is.
    pub kind: PolicyErrorKind,
    /// The source the policy came from (file path or `GovernancePolicy/<name>`).
    pub source_name: String,
    /// The policy's `@id`, when it has one.
    pub policy_id: Option<String>,
    /// 1-based line in the source text.
    pub line: u32,
    /// 1-based column (in characters) in the source text.
    pub column: u32,
    /// What is wrong, in words.
    pub message: String,
    /// How to fix it, when we know.
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl PolicyError {
    pub(crate) fn new(
        kind: PolicyErrorKind,
        source_name: &str,
        text: &str,
        offset: usize,
        len: usize,
        policy_id: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let offset = offset.min(text.len());
        let (line, column) = line_column(text, offset);
        PolicyError {
            kind,
            source_name: source_name.to_string(),
            policy_id,
            line,
            column,
            message: message.into(),
            help: None,
            src: NamedSource::new(source_name, text.to_string()),
            span: SourceSpan::new(offset.into(), len.min(text.len() - offset)),
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The error as recorded in a GovernancePolicy's status.
    pub fn to_record(&self) -> datamesh_crds::policy::PolicyError {
        datamesh_crds::policy::PolicyError {
            policy_id: self.policy_id.clone(),
            line: Some(self.line),
            column: Some(self.column),
            message: match &self.help {
                Some(help) => format!("{} ({help})", self.message),
                None => self.message.clone(),
            },
        }
    }
}

/// A policy set that was refused as a whole, with every problem found.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("policy set refused: {} error(s)", errors.len())]
pub struct PolicySetError {
    /// Every problem, in source order.
    #[related]
    pub errors: Vec<PolicyError>,
}

impl PolicySetError {
    /// The errors found in one source, e.g. to report on that GovernancePolicy.
    pub fn for_source<'a>(
        &'a self,
        source_name: &'a str,
    ) -> impl Iterator<Item = &'a PolicyError> + 'a {
        self.errors
            .iter()
            .filter(move |e| e.source_name == source_name)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (to_u32(line), to_u32(column))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
    }
}
