//! Input validation errors that name the field at fault.

use serde::Serialize;
use std::fmt;

/// One invalid field, named by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Most problems one check of a document lists; any more are only counted.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// Every invalid field of a document checked whole, in the order found:
/// never empty. Displayed as the first, and how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldErrors {
    listed: Vec<FieldError>,
    /// Problems found beyond [`MAX_LISTED_PROBLEMS`].
    unlisted: usize,
}

impl FieldErrors {
    /// The first problem: the one an answer with a single `field` names.
    pub fn first(&self) -> &FieldError {
        // `listed` is never empty: `Problems::finish` and `From<FieldError>` build it.
        &self.listed[0]
    }

    /// The problems listed (at most [`MAX_LISTED_PROBLEMS`]).
    pub fn listed(&self) -> &[FieldError] {
        &self.listed
    }

    /// Every problem found, listed or not.
    pub fn total(&self) -> usize {
        self.listed.len() + self.unlisted
    }

    /// The first problem's message, and how many more there are.
    pub fn summary(&self) -> String {
        match self.total() - 1 {
            0 => self.first().message.clone(),
            1 => format!("{} (and 1 more problem)", self.first().message),
            more => format!("{} (and {more} more problems)", self.first().message),
        }
    }

    /// The same problems, each rewritten by `f` (to prefix a path, or add a line).
    pub fn map(self, f: impl FnMut(FieldError) -> FieldError) -> Self {
        Self { listed: self.listed.into_iter().map(f).collect(), unlisted: self.unlisted }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        Self { listed: vec![e], unlisted: 0 }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.first().field, self.summary())
    }
}

/// The problems found so far while checking a document whole.
#[derive(Debug, Default)]
pub struct Problems {
    listed: Vec<FieldError>,
    unlisted: usize,
}

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(FieldError::new(field, message));
    }

    pub fn push(&mut self, e: FieldError) {
        if self.listed.len() < MAX_LISTED_PROBLEMS { self.listed.push(e) } else { self.unlisted += 1 }
    }

    /// Records the error of a check that stops at its first problem.
    pub fn check(&mut self, result: Result<(), FieldError>) {
        if let Err(e) = result {
            self.push(e);
        }
    }

    /// `Ok` when nothing was found, else every problem.
    pub fn finish(self) -> Result<(), FieldErrors> {
        let Problems { listed, unlisted } = self;
        if listed.is_empty() { Ok(()) } else { Err(FieldErrors { listed, unlisted }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_kept_in_order_and_counted_past_the_listing_limit() {
        assert_eq!(Problems::default().finish(), Ok(()));
        let mut p = Problems::default();
        p.add("a", "first");
        p.check(Ok(()));
        p.check(Err(FieldError::new("b", "second")));
        let errors = p.finish().expect_err("two problems");
        assert_eq!(errors.listed().iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(errors.to_string(), "a: first (and 1 more problem)");
        let mut p = Problems::default();
        for i in 0..MAX_LISTED_PROBLEMS + 5 {
            p.add(format!("f{i}"), "bad");
        }
        let errors = p.finish().expect_err("many");
        assert_eq!((errors.listed().len(), errors.total()), (MAX_LISTED_PROBLEMS, MAX_LISTED_PROBLEMS + 5));
        assert_eq!(errors.to_string(), format!("f0: bad (and {} more problems)", MAX_LISTED_PROBLEMS + 4));
        assert_eq!(FieldErrors::from(FieldError::new("x", "y")).to_string(), "x: y");
    }
}
