//! Reading YAML input (the service catalog file, YAML request bodies) as JSON,
//! keeping the source line of every node so that any error — a YAML syntax
//! error, a type error found by serde, or a semantic error found later by the
//! caller — can name the line it is about.
//!
//! The document is read with the `saphyr-parser` event parser and converted
//! straight into a [`serde_json::Value`]; plain scalars are resolved with the
//! YAML 1.2 core schema exactly as `saphyr` resolves them
//! ([`saphyr::Scalar::parse_from_cow_and_metadata`]).
//!
//! Deliberately refused, each with an error naming the line:
//! - more than one document in a file, and an empty file;
//! - duplicate keys in one mapping (also `1:` next to `"1":`, as both become the JSON key `"1"`);
//! - anchors (`&name`) and aliases (`*name`): write the value out instead;
//! - tags (`!foo`), except the core-schema ones (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`
//!   on scalars, `!!map` on mappings, `!!seq` on sequences);
//! - mapping and sequence keys (keys must be scalars; a plain key such as `1` or `true` becomes
//!   the string of its source text, `"1"`, `"true"`);
//! - integers that do not fit in an `i64`, and non-finite floats (`.inf`, `.nan`, `1e999`);
//! - nesting deeper than [`MAX_DEPTH`] and documents of more than [`MAX_NODES`] nodes.
//!
//! # Paths
//!
//! A node's path is written the way `serde_path_to_error` prints its `Path`: mapping keys joined
//! by `.`, sequence indexes as `[i]`, the root as the empty string — `services[2].depends_on[0]`,
//! `roles.admin`, `[0].name` for a root sequence. Keys are used verbatim, not escaped, even when
//! they contain `.` or `[` (`versions.2.5` is the key `2.5` of `versions`); [`YamlDoc::line_of`]
//! then prefers the longest key that matches, which is right unless a mapping has both `a` and
//! `a.b`-style keys.
//!
//! The line of a mapping value is the line of its key (for `owner:` followed by an indented
//! block, the `owner:` line); the line of a sequence item or of the root is the line where that
//! node starts.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::{Marker, Scalar, ScalarStyle, ScanError, Tag};
use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;

/// Most nodes (keys, scalars, mappings and sequences) accepted in one document.
pub const MAX_NODES: usize = 100_000;

/// Why a YAML text could not be read, or why its content is invalid.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum YamlError {
    /// Not well-formed YAML, or YAML using a feature this reader refuses (duplicate keys,
    /// anchors, aliases, tags, several documents, limits). `line` and `column` are 1-based.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Well-formed YAML whose content is wrong at `path` (see the module docs for the format; the
    /// empty string is the whole document), which is on `line` (1 when no line is known).
    /// Displayed as `line {line}: {path}: {message}`, or `line {line}: {message}` for the root.
    #[error("line {line}: {}{message}", path_prefix(path))]
    Invalid {
        /// 1-based line of the node at `path`, or of its nearest existing ancestor.
        line: usize,
        /// Path of the node at fault, e.g. `services[1].depends_on[0]`; empty for the root.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// `"path: "`, or nothing for the root, so that a root error reads `line 1: missing field ...`.
fn path_prefix(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}: ") }
}

/// A YAML document converted to JSON, with the source line of every node.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlDoc {
    /// The document as JSON.
    pub value: Value,
    /// The line of every node, in the shape of `value`.
    lines: Lines,
}

impl YamlDoc {
    /// Parses `text`, which must hold exactly one YAML document.
    ///
    /// # Errors
    /// [`YamlError::Syntax`] for malformed YAML and refused features, [`YamlError::Invalid`] for
    /// scalars that have no JSON equivalent (integer overflow, non-finite float, a value that
    /// does not match its core-schema tag).
    pub fn parse(text: &str) -> Result<YamlDoc, YamlError> {
        let mut builder = Builder::default();
        let mut documents = 0usize;
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| scan_error(&e))?;
            let mark = span.start;
            match event {
                Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(syntax(mark, "one YAML document per file: a second document starts here"));
                    }
                }
                Event::Alias(_) => {
                    return Err(syntax(mark, "aliases (`*name`) are not supported; write the value out"));
                }
                Event::Scalar(text, style, anchor, tag) => {
                    builder.count(mark)?;
                    refuse_anchor(anchor, mark)?;
                    builder.scalar(text, style, tag.as_ref(), mark)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    builder.count(mark)?;
                    refuse_anchor(anchor, mark)?;
                    check_collection_tag(tag.as_deref(), "seq", mark)?;
                    builder.open(Container::Seq { items: Vec::new(), lines: Vec::new() }, mark)?;
                }
                Event::MappingStart(anchor, tag) => {
                    builder.count(mark)?;
                    refuse_anchor(anchor, mark)?;
                    check_collection_tag(tag.as_deref(), "map", mark)?;
                    builder.open(Container::Map { map: Map::new(), lines: HashMap::new(), key: None }, mark)?;
                }
                Event::SequenceEnd | Event::MappingEnd => builder.close(mark)?,
            }
        }
        match builder.root {
            Some((value, lines)) if builder.stack.is_empty() => Ok(YamlDoc { value, lines }),
            _ => Err(YamlError::Syntax { line: 1, column: 1, message: "the file is empty".to_owned() }),
        }
    }

    /// The 1-based line of the node at `path` (e.g. `services[2].depends_on[0]`, `roles.admin`,
    /// `""` for the root). If that exact path has no node (a missing field, a path serde could not
    /// follow), the line of its nearest existing ancestor.
    ///
    /// Always `Some` for a parsed document (the root has a line).
    #[must_use]
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let (mut node, mut rest, mut root) = (&self.lines, path, true);
        while let Some((child, tail)) = node.child(rest, root) {
            (node, rest, root) = (child, tail, false);
        }
        Some(node.line)
    }

    /// Deserializes [`Self::value`] into `T`.
    ///
    /// # Errors
    /// [`YamlError::Invalid`] with the path serde was at (for a missing field, the path of the
    /// mapping that lacks it) and that node's line.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, YamlError> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| {
            let path = e.path().to_string();
            // `serde_path_to_error` prints the root as ".".
            let path = if path == "." { String::new() } else { path };
            self.error_at(&path, e.into_inner().to_string())
        })
    }

    /// A [`YamlError::Invalid`] for a problem the caller found at `path` (e.g. an unknown service
    /// in `services[2].depends_on[0]`), with the line of that node.
    #[must_use]
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> YamlError {
        YamlError::Invalid { line: self.line_of(path).unwrap_or(1), path: path.to_owned(), message: message.into() }
    }
}

/// The line of a node and those of its children: a tree in the shape of the JSON value. (A map
/// from every node's full path to its line would not stay proportional to the document: a few
/// long keys nested deep above many leaves would be repeated in every leaf's path.)
#[derive(Debug, Clone, PartialEq)]
struct Lines {
    line: usize,
    children: Children,
}

/// The children of a [`Lines`] node.
#[derive(Debug, Clone, PartialEq)]
enum Children {
    /// A scalar.
    None,
    /// A sequence's items.
    Seq(Vec<Lines>),
    /// A mapping's values, by key.
    Map(HashMap<String, Lines>),
}

impl Lines {
    /// The child that non-empty `path` starts with (`[3]…` in a sequence; `key…` in a mapping,
    /// after a `.` unless at the `root`), and the rest of `path`. A key that itself contains `.`
    /// or `[` is found too: the longest key that matches wins.
    fn child<'p>(&self, path: &'p str, root: bool) -> Option<(&Lines, &'p str)> {
        if path.is_empty() {
            return None;
        }
        match &self.children {
            Children::None => None,
            Children::Seq(items) => {
                let (index, rest) = path.strip_prefix('[')?.split_once(']')?;
                Some((items.get(index.parse::<usize>().ok()?)?, rest))
            }
            Children::Map(map) => {
                let path = if root { path } else { path.strip_prefix('.')? };
                let ends: Vec<usize> = path.match_indices(['.', '[']).map(|(at, _)| at).chain([path.len()]).collect();
                ends.iter().rev().find_map(|&end| Some((map.get(path.get(..end)?)?, path.get(end..)?)))
            }
        }
    }

    /// Every line in the tree.
    #[cfg(test)]
    fn all(&self) -> Vec<usize> {
        let mut out = vec![self.line];
        match &self.children {
            Children::None => {}
            Children::Seq(items) => out.extend(items.iter().flat_map(Lines::all)),
            Children::Map(map) => out.extend(map.values().flat_map(Lines::all)),
        }
        out
    }
}

/// A collection being built, with the lines of its children.
enum Container {
    /// A sequence and its items so far.
    Seq { items: Vec<Value>, lines: Vec<Lines> },
    /// A mapping, its entries so far, and the key (with its line) whose value comes next.
    Map { map: Map<String, Value>, lines: HashMap<String, Lines>, key: Option<(String, usize)> },
}

/// An open collection and its line.
struct Frame {
    line: usize,
    container: Container,
}

/// Where the next node goes.
enum Slot {
    /// It is a mapping key.
    Key,
    /// It is a value, and this is its line.
    Value(usize),
}

/// Builds the JSON value from parser events, without recursion.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<(Value, Lines)>,
    nodes: usize,
}

impl Builder {
    /// Counts one more node, refusing more than [`MAX_NODES`].
    fn count(&mut self, mark: Marker) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(syntax(mark, &format!("the document has more than {MAX_NODES} nodes")));
        }
        Ok(())
    }

    /// Where a node starting at `mark` goes. The line of a mapping value is its key's.
    fn slot(&self, mark: Marker) -> Result<Slot, YamlError> {
        match self.stack.last() {
            None if self.root.is_some() => Err(syntax(mark, "unexpected node after the document")),
            None | Some(Frame { container: Container::Seq { .. }, .. }) => Ok(Slot::Value(mark.line())),
            Some(Frame { container: Container::Map { key: None, .. }, .. }) => Ok(Slot::Key),
            Some(Frame { container: Container::Map { key: Some((_, line)), .. }, .. }) => Ok(Slot::Value(*line)),
        }
    }

    /// The path of the node about to be attached (only needed for errors).
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match &frame.container {
                Container::Seq { items, .. } => {
                    path.push('[');
                    path.push_str(&items.len().to_string());
                    path.push(']');
                }
                Container::Map { key: Some((key, _)), .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Container::Map { key: None, .. } => {}
            }
        }
        path
    }

    /// Handles a scalar event: a mapping key or a value.
    fn scalar<'a>(
        &mut self,
        text: Cow<'a, str>,
        style: ScalarStyle,
        tag: Option<&Cow<'a, Tag>>,
        mark: Marker,
    ) -> Result<(), YamlError> {
        if let Some(tag) = tag
            && !tag.is_yaml_core_schema()
        {
            return Err(syntax(mark, &format!("tag `{}` is not supported", tag_name(tag))));
        }
        match self.slot(mark)? {
            Slot::Key => self.key(text.into_owned(), mark),
            Slot::Value(line) => {
                if self.stack.is_empty() && style == ScalarStyle::Plain && text.is_empty() && tag.is_none() {
                    // The implicit empty node of a document with no content (`---` alone).
                    return Ok(());
                }
                let value = scalar_value(&text, style, tag).map_err(|message| YamlError::Invalid {
                    line,
                    path: self.path(),
                    message,
                })?;
                self.attach(value, Lines { line, children: Children::None }, mark)
            }
        }
    }

    /// Records `key` as the pending key of the innermost mapping, refusing duplicates.
    fn key(&mut self, key: String, mark: Marker) -> Result<(), YamlError> {
        let Some(Frame { container: Container::Map { lines, key: pending, .. }, .. }) = self.stack.last_mut() else {
            return Err(syntax(mark, "unexpected mapping key"));
        };
        if let Some(first) = lines.get(&key) {
            let message = format!("duplicate key `{}` (first defined on line {})", excerpt(&key), first.line);
            return Err(syntax(mark, &message));
        }
        *pending = Some((key, mark.line()));
        Ok(())
    }

    /// Opens a mapping or sequence starting at `mark`.
    fn open(&mut self, container: Container, mark: Marker) -> Result<(), YamlError> {
        let Slot::Value(line) = self.slot(mark)? else {
            return Err(syntax(mark, "mapping keys must be scalars, not mappings or sequences"));
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(syntax(mark, &format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.stack.push(Frame { line, container });
        Ok(())
    }

    /// Closes the innermost collection.
    fn close(&mut self, mark: Marker) -> Result<(), YamlError> {
        let (value, lines) = match self.stack.pop() {
            Some(Frame { line, container: Container::Seq { items, lines } }) => {
                (Value::Array(items), Lines { line, children: Children::Seq(lines) })
            }
            Some(Frame { line, container: Container::Map { map, lines, .. } }) => {
                (Value::Object(map), Lines { line, children: Children::Map(lines) })
            }
            None => return Err(syntax(mark, "unexpected end of a collection")),
        };
        self.attach(value, lines, mark)
    }

    /// Puts a finished value, and its lines, where they belong.
    fn attach(&mut self, value: Value, node: Lines, mark: Marker) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some((value, node)),
            Some(Frame { container: Container::Seq { items, lines }, .. }) => {
                items.push(value);
                lines.push(node);
            }
            Some(Frame { container: Container::Map { map, lines, key }, .. }) => match key.take() {
                Some((key, _)) => {
                    lines.insert(key.clone(), node);
                    map.insert(key, value);
                }
                None => return Err(syntax(mark, "mapping value without a key")),
            },
        }
        Ok(())
    }
}

/// Converts a scalar to JSON, or says why it has no JSON equivalent.
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Result<Value, String> {
    let plain_untagged = style == ScalarStyle::Plain && tag.is_none();
    let Some(scalar) = Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag) else {
        let tag = tag.map_or_else(String::new, |tag| tag_name(tag));
        return Err(format!("`{}` is not a valid {tag} value", excerpt(text)));
    };
    if plain_untagged && looks_like_integer(text) && !matches!(scalar, Scalar::Integer(_)) {
        return Err(format!("integer `{}` does not fit in a signed 64-bit integer", excerpt(text)));
    }
    Ok(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(b),
        Scalar::Integer(i) => Value::Number(i.into()),
        Scalar::FloatingPoint(f) => match Number::from_f64(f.0) {
            Some(n) => Value::Number(n),
            None => return Err(format!("`{}` is not a finite number", excerpt(text))),
        },
        Scalar::String(s) => Value::String(s.into_owned()),
    })
}

/// Whether `text` has the form of a core-schema integer: `[-+]?[0-9]+`, `0o[0-7]+` or
/// `0x[0-9a-fA-F]+`. saphyr turns such a scalar that overflows `i64` into a float or a string.
fn looks_like_integer(text: &str) -> bool {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex, 16);
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return digits(octal, 8);
    }
    digits(text.strip_prefix(['-', '+']).unwrap_or(text), 10)
}

/// A tag as written: `!!str`, `!foo`.
fn tag_name(tag: &Tag) -> String {
    let name =
        if tag.is_yaml_core_schema() { format!("!!{}", tag.suffix) } else { format!("{}{}", tag.handle, tag.suffix) };
    excerpt(&name)
}

/// `text` as quoted in an error message: at most 60 characters.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// Refuses anchors (`&name`), which only exist to be aliased.
fn refuse_anchor(anchor: usize, mark: Marker) -> Result<(), YamlError> {
    if anchor == 0 {
        Ok(())
    } else {
        Err(syntax(mark, "anchors (`&name`) and aliases (`*name`) are not supported; write the value out"))
    }
}

/// Accepts no tag, or the core-schema tag `!!{kind}` on a collection.
fn check_collection_tag(tag: Option<&Tag>, kind: &str, mark: Marker) -> Result<(), YamlError> {
    match tag {
        Some(tag) if !(tag.is_yaml_core_schema() && tag.suffix == kind) => {
            Err(syntax(mark, &format!("tag `{}` is not supported here", tag_name(tag))))
        }
        _ => Ok(()),
    }
}

/// A [`YamlError::Syntax`] at `mark`.
fn syntax(mark: Marker, message: &str) -> YamlError {
    YamlError::Syntax { line: mark.line(), column: mark.col() + 1, message: message.to_owned() }
}

/// A [`YamlError::Syntax`] from the parser's error.
fn scan_error(error: &ScanError) -> YamlError {
    syntax(*error.marker(), error.info())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Catalog {
        services: Vec<Service>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Service {
        name: String,
        #[serde(default)]
        tier: Option<u8>,
        #[serde(default)]
        depends_on: Vec<String>,
    }

    const CATALOG: &str = "\
# service catalog
services:
  - name: ledger
    tier: 1
  - name: payments
    depends_on: [ledgr]
    tier: high
";

    fn invalid(line: usize, path: &str, message: &str) -> YamlError {
        YamlError::Invalid { line, path: path.to_owned(), message: message.to_owned() }
    }

    fn syntax_line(result: Result<YamlDoc, YamlError>) -> (usize, String) {
        match result {
            Err(YamlError::Syntax { line, message, .. }) => (line, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn type_error_reports_its_line_and_path() {
        let doc = YamlDoc::parse(CATALOG).unwrap();
        let err = doc.deserialize::<Catalog>().unwrap_err();
        assert_eq!(err, invalid(7, "services[1].tier", "invalid type: string \"high\", expected u8"));
        assert_eq!(err.to_string(), "line 7: services[1].tier: invalid type: string \"high\", expected u8");
    }

    #[test]
    fn missing_field_reports_the_line_of_the_enclosing_mapping() {
        #[derive(Debug, Deserialize)]
        struct Root {
            #[allow(dead_code)]
            services: Vec<u8>,
        }
        let doc = YamlDoc::parse("services:\n  - name: a\n  -\n    tier: 2\n").unwrap();
        let err = doc.deserialize::<Catalog>().unwrap_err();
        assert_eq!(err, invalid(4, "services[1]", "missing field `name`"));
        let doc = YamlDoc::parse("# nothing here\nother: 1\n").unwrap();
        let err = YamlDoc::deserialize::<HashMap<String, Vec<u8>>>(&doc).unwrap_err();
        assert_eq!(err, invalid(2, "other", "invalid type: integer `1`, expected a sequence"));
        let err = YamlDoc::parse("\n\nname: x\n").unwrap().deserialize::<Root>().unwrap_err();
        assert_eq!(err, invalid(3, "", "missing field `services`"));
        assert_eq!(err.to_string(), "line 3: missing field `services`");
    }

    #[test]
    fn unknown_field_reports_its_line() {
        let doc = YamlDoc::parse("services:\n  - name: a\n\n    owner: team-x\n").unwrap();
        let err = doc.deserialize::<Catalog>().unwrap_err();
        let YamlError::Invalid { line, path, message } = err else { panic!("{err:?}") };
        assert_eq!((line, path.as_str()), (4, "services[0].owner"));
        assert!(message.starts_with("unknown field `owner`"), "{message}");
    }

    #[test]
    fn semantic_error_via_error_at_reports_the_exact_line() {
        let text = "services:\n  - name: ledger\n  - name: payments\n    depends_on:\n      - ledgr\n      - ledger\n";
        let doc = YamlDoc::parse(text).unwrap();
        let catalog: Catalog = doc.deserialize().unwrap();
        assert_eq!((catalog.services[1].name.as_str(), catalog.services[1].tier), ("payments", None));
        assert_eq!(catalog.services[1].depends_on, ["ledgr", "ledger"]);
        let err = doc.error_at("services[1].depends_on[0]", "service `payments` depends on unknown service `ledgr`");
        assert_eq!(
            err.to_string(),
            "line 5: services[1].depends_on[0]: service `payments` depends on unknown service `ledgr`"
        );
        assert_eq!(doc.line_of("services[1].depends_on[1]"), Some(6));
        assert_eq!(doc.line_of("services[1].depends_on"), Some(4));
        assert_eq!(doc.line_of("services[1]"), Some(3));
        assert_eq!(doc.line_of("services"), Some(1));
        assert_eq!(doc.line_of(""), Some(1));
    }

    #[test]
    fn line_of_a_missing_path_is_its_nearest_ancestor() {
        let doc = YamlDoc::parse("a: 1\nroles:\n  admin:\n    - x\n").unwrap();
        assert_eq!(doc.line_of("roles.admin"), Some(3));
        assert_eq!(doc.line_of("roles.admin[7].name"), Some(3));
        assert_eq!(doc.line_of("roles.viewer"), Some(2));
        assert_eq!(doc.line_of("nope.deeper[3]"), Some(1));
        assert_eq!(doc.error_at("roles.viewer", "unknown role"), invalid(2, "roles.viewer", "unknown role"));
    }

    #[test]
    fn syntax_error_reports_line_and_column() {
        let err = YamlDoc::parse("services:\n  - name: a\n    tier: 1\n   owner: x\n").unwrap_err();
        let YamlError::Syntax { line, column, .. } = err else { panic!("{err:?}") };
        assert_eq!(line, 4);
        assert!(column > 1, "{err}");
        let err = YamlDoc::parse("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 3: mapping values are not allowed in this context");
        let err = YamlDoc::parse("a: [1, 2\n").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn duplicate_key_is_refused_with_the_second_keys_line() {
        let err = YamlDoc::parse("services:\n  - name: a\n    tier: 1\n    name: b\n").unwrap_err();
        assert_eq!(
            err,
            YamlError::Syntax {
                line: 4,
                column: 5,
                message: "duplicate key `name` (first defined on line 2)".to_owned()
            }
        );
        // Different in YAML, the same key in JSON.
        let (line, message) = syntax_line(YamlDoc::parse("1: a\n\"1\": b\n"));
        assert_eq!((line, message.as_str()), (2, "duplicate key `1` (first defined on line 1)"));
        assert_eq!(syntax_line(YamlDoc::parse("{a: 1, b: 2,\n a: 3}")).0, 2);
        // The same key in different mappings is fine.
        assert!(YamlDoc::parse("a: {x: 1}\nb: {x: 1}\n").is_ok());
    }

    #[test]
    fn quoted_number_stays_a_string() {
        let doc = YamlDoc::parse("a: \"4\"\nb: '4'\nc: 4\nd: !!str 4\ne: \"true\"\nf: |\n  4\n").unwrap();
        assert_eq!(doc.value, json!({"a": "4", "b": "4", "c": 4, "d": "4", "e": "true", "f": "4\n"}));
    }

    #[test]
    fn multiple_documents_are_refused() {
        let (line, message) = syntax_line(YamlDoc::parse("a: 1\n---\nb: 2\n"));
        assert_eq!(line, 2);
        assert!(message.contains("one YAML document"), "{message}");
        // A leading `---` and a closing `...` are one document.
        assert_eq!(YamlDoc::parse("---\na: 1\n...\n").unwrap().value, json!({"a": 1}));
    }

    #[test]
    fn anchors_and_aliases_are_refused() {
        let (line, message) = syntax_line(YamlDoc::parse("base: &b\n  x: 1\nother: *b\n"));
        assert_eq!(line, 1);
        assert!(message.contains("anchors"), "{message}");
        let (line, message) = syntax_line(YamlDoc::parse("a: 1\nb: [*x]\n"));
        assert_eq!(line, 2);
        assert!(message.contains("unknown anchor") || message.contains("alias"), "{message}");
        assert_eq!(syntax_line(YamlDoc::parse("a: 1\nb: &x 2\n")).0, 2);
    }

    #[test]
    fn tags_are_refused_except_core_schema_ones() {
        let (line, message) = syntax_line(YamlDoc::parse("a: 1\nb: !secret x\n"));
        assert_eq!((line, message.as_str()), (2, "tag `!secret` is not supported"));
        assert_eq!(syntax_line(YamlDoc::parse("a: !!set {x: 1}\n")).0, 1);
        assert_eq!(syntax_line(YamlDoc::parse("a:\n  - !!map [1]\n")).0, 2);
        let doc =
            YamlDoc::parse("a: !!int 3\nb: !!float 3\nc: !!map {x: !!null null}\nd: !!seq [!!bool true]\n").unwrap();
        assert_eq!(doc.value, json!({"a": 3, "b": 3.0, "c": {"x": null}, "d": [true]}));
        let err = YamlDoc::parse("a:\n  b: !!int x\n").unwrap_err();
        assert_eq!(err, invalid(2, "a.b", "`x` is not a valid !!int value"));
    }

    #[test]
    fn the_empty_file_is_refused() {
        for text in ["", "\n\n", "# just a comment\n", "---\n", "--- # nothing\n...\n"] {
            let err = YamlDoc::parse(text).unwrap_err();
            assert_eq!(
                err,
                YamlError::Syntax { line: 1, column: 1, message: "the file is empty".to_owned() },
                "{text:?}"
            );
        }
        assert_eq!(YamlDoc::parse("~\n").unwrap().value, Value::Null);
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_their_line() {
        let doc =
            YamlDoc::parse("a: 9223372036854775807\nb: -9223372036854775808\nc: 0x10\nd: 0o17\ne: 1.5\n").unwrap();
        assert_eq!(doc.value, json!({"a": i64::MAX, "b": i64::MIN, "c": 16, "d": 15, "e": 1.5}));
        for (text, message) in [
            (
                "x: 1\ny: [9223372036854775808]\n",
                "integer `9223372036854775808` does not fit in a signed 64-bit integer",
            ),
            (
                "x: 1\ny: [0x1FFFFFFFFFFFFFFFF]\n",
                "integer `0x1FFFFFFFFFFFFFFFF` does not fit in a signed 64-bit integer",
            ),
            ("x: 1\ny: [.inf]\n", "`.inf` is not a finite number"),
            ("x: 1\ny: [.nan]\n", "`.nan` is not a finite number"),
            ("x: 1\ny: [1e999]\n", "`1e999` is not a finite number"),
        ] {
            assert_eq!(YamlDoc::parse(text).unwrap_err(), invalid(2, "y[0]", message), "{text:?}");
        }
        // Quoted, it is just a string.
        assert_eq!(YamlDoc::parse("a: '9223372036854775808'\n").unwrap().value, json!({"a": "9223372036854775808"}));
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let digits = "9".repeat(1000);
        let err = YamlDoc::parse(&format!("a: {digits}\n")).unwrap_err();
        let expected = format!("integer `{}…` does not fit in a signed 64-bit integer", "9".repeat(60));
        assert_eq!(err, invalid(1, "a", &expected));
        assert_eq!(excerpt("ééé"), "ééé");
    }

    #[test]
    fn keys_must_be_scalars_and_become_strings() {
        let doc = YamlDoc::parse("1: a\ntrue: b\n2.50: c\n").unwrap();
        assert_eq!(doc.value, json!({"1": "a", "true": "b", "2.50": "c"}));
        assert_eq!(doc.line_of("2.50"), Some(3)); // a key with a dot is used verbatim
        let (line, message) = syntax_line(YamlDoc::parse("a: 1\n? [x, y]\n: 2\n"));
        assert_eq!((line, message.as_str()), (2, "mapping keys must be scalars, not mappings or sequences"));
        assert_eq!(syntax_line(YamlDoc::parse("a: 1\n{x: 1}: 2\n")).0, 2);
    }

    #[test]
    fn json_value_equals_the_expected_json() {
        let text = "\
services:
  - name: ledger
    tier: 1
    owner: {team: core, oncall: null}
    enabled: true
    ratio: 0.5
    tags: []
  - name: payments
    depends_on:
      - ledger
    description: >
      Takes money.
    empty:
top: [1, -2, \"x\", ~]
";
        let doc = YamlDoc::parse(text).unwrap();
        let expected = json!({
            "services": [
                {"name": "ledger", "tier": 1, "owner": {"team": "core", "oncall": null}, "enabled": true, "ratio": 0.5, "tags": []},
                {"name": "payments", "depends_on": ["ledger"], "description": "Takes money.\n", "empty": null},
            ],
            "top": [1, -2, "x", null],
        });
        assert_eq!(doc.value, expected);
        assert_eq!(doc.line_of("services[0].owner.oncall"), Some(4));
        assert_eq!(doc.line_of("services[1].description"), Some(11));
        assert_eq!(doc.line_of("services[1].empty"), Some(13));
        assert_eq!(doc.line_of("top[3]"), Some(14));
    }

    #[test]
    fn line_of_follows_verbatim_keys_and_stops_at_scalars() {
        let doc = YamlDoc::parse("versions:\n  2: old\n  2.5: new\n  a[0]: odd\nname: x\n").unwrap();
        assert_eq!(doc.line_of("versions.2.5"), Some(3));
        assert_eq!(doc.line_of("versions.2"), Some(2));
        assert_eq!(doc.line_of("versions.a[0]"), Some(4));
        assert_eq!(doc.line_of("name.first[0]"), Some(5));
        assert_eq!(doc.line_of("versions[0]"), Some(1));
        assert_eq!(doc.line_of(".versions"), Some(1));
    }

    #[test]
    fn long_keys_nested_deep_above_many_leaves_parse() {
        let mut text = String::new();
        for depth in 0..MAX_DEPTH - 2 {
            text.push_str(&format!("{}{}{depth}:\n", " ".repeat(depth), "k".repeat(1000)));
        }
        let leaves = vec!["1"; MAX_NODES - 2 * MAX_DEPTH].join(",");
        text.push_str(&format!("{}leaves: [{leaves}]\n", " ".repeat(MAX_DEPTH - 2)));
        let doc = YamlDoc::parse(&text).unwrap();
        let path = (0..MAX_DEPTH - 2).map(|depth| format!("{}{depth}", "k".repeat(1000))).collect::<Vec<_>>().join(".");
        assert_eq!(doc.line_of(&format!("{path}.leaves[5]")), Some(MAX_DEPTH - 1));
    }

    #[test]
    fn crlf_line_breaks_count_as_one_line() {
        let doc = YamlDoc::parse("a: 1\r\nb:\r\n  - x\r\n  - y\r\n").unwrap();
        assert_eq!(doc.line_of("b[1]"), Some(4));
    }

    #[test]
    fn a_root_sequence_has_index_paths() {
        let doc = YamlDoc::parse("- name: a\n- name: b\n  tier: x\n").unwrap();
        let err = doc.deserialize::<Vec<Service>>().unwrap_err();
        assert_eq!(err, invalid(3, "[1].tier", "invalid type: string \"x\", expected u8"));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(YamlDoc::parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(syntax_line(YamlDoc::parse(&deep)).1.contains("nesting deeper than 64"));
        // Block nesting is not bounded by the scanner; it must not overflow the stack either.
        let block = "- ".repeat(200_000);
        assert!(syntax_line(YamlDoc::parse(&block)).1.contains("nesting deeper than 64"));
        let mut indented = String::new();
        for depth in 0..1000 {
            indented.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        assert!(syntax_line(YamlDoc::parse(&indented)).1.contains("nesting deeper than 64"));
    }

    #[test]
    fn more_nodes_than_the_limit_are_refused() {
        let fits = format!("[{}]", vec!["1"; MAX_NODES - 1].join(","));
        assert_eq!(YamlDoc::parse(&fits).unwrap().value.as_array().map(Vec::len), Some(MAX_NODES - 1));
        let too_many = format!("[{}]", vec!["1"; MAX_NODES].join(","));
        assert!(syntax_line(YamlDoc::parse(&too_many)).1.contains("more than 100000 nodes"));
    }

    /// Edits applied to a valid document by the mutation property test.
    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, char),
        InsertText(usize, String),
        Delete(usize, usize),
        DuplicateLine(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let special = prop::sample::select(vec![
            ' ', '\n', '\t', ':', '-', '?', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
            '`', '\\', '\r', '\u{feff}', 'é',
        ]);
        prop_oneof![
            (any::<usize>(), special).prop_map(|(at, c)| Edit::Insert(at, c)),
            (any::<usize>(), any::<char>()).prop_map(|(at, c)| Edit::Insert(at, c)),
            (any::<usize>(), "(\\PC|[\\n :\\-\\[\\]{}&*!|>#'\"]){0,12}").prop_map(|(at, s)| Edit::InsertText(at, s)),
            (any::<usize>(), 0..8usize).prop_map(|(at, n)| Edit::Delete(at, n)),
            any::<usize>().prop_map(Edit::DuplicateLine),
        ]
    }

    fn apply(text: &str, edit: &Edit) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        let at = |i: usize| if chars.is_empty() { 0 } else { i % (chars.len() + 1) };
        match edit {
            Edit::Insert(i, c) => {
                let i = at(*i);
                chars.insert(i, *c);
            }
            Edit::InsertText(i, s) => {
                let i = at(*i);
                chars.splice(i..i, s.chars());
            }
            Edit::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(chars.len());
                chars.drain(i..end);
            }
            Edit::DuplicateLine(i) => {
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                if lines.is_empty() {
                    return text.to_owned();
                }
                let n = i % lines.len();
                let mut out = String::new();
                for (k, line) in lines.iter().enumerate() {
                    out.push_str(line);
                    if k == n {
                        out.push_str(line);
                    }
                }
                return out;
            }
        }
        chars.into_iter().collect()
    }

    /// Whatever the input, parsing returns, and a success is self-consistent.
    fn check(text: &str) {
        // An implicit empty node at the very end (`?\n#`) may be placed on the line after the last.
        let line_count = text.chars().filter(|c| matches!(c, '\n' | '\r')).count() + 2;
        match YamlDoc::parse(text) {
            Ok(doc) => {
                assert!(doc.lines.all().iter().all(|line| (1..=line_count).contains(line)), "{text:?}");
                assert!(doc.line_of("").is_some());
                let _ = doc.deserialize::<Catalog>().map_err(|e| e.to_string());
                let again: Value = doc.deserialize().unwrap_or(Value::Null);
                assert_eq!(again, doc.value);
            }
            Err(YamlError::Syntax { line, column, .. }) => assert!(line >= 1 && column >= 1, "{text:?}"),
            Err(YamlError::Invalid { line, .. }) => assert!(line >= 1, "{text:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            check(&text);
        }

        #[test]
        fn yaml_like_text_never_panics(text in "([ \\n\\t:\\-?,#&*!|>'\"%@\\[\\]{}~.]|[a-c0-9]){0,80}") {
            check(&text);
        }

        #[test]
        fn line_of_never_panics(path in "([a-z0-9.\\[\\]_]|é|services|depends_on){0,40}") {
            let doc = YamlDoc::parse(CATALOG).unwrap();
            prop_assert!(doc.line_of(&path).is_some_and(|line| (1..=7).contains(&line)));
        }

        #[test]
        fn mutated_documents_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
            let text = edits.iter().fold(CATALOG.to_owned(), |text, e| apply(&text, e));
            check(&text);
        }
    }
}
