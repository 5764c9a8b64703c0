//! A small walker over `serde_json::Value` that knows where it is, so every
//! error names the JSON path (`$.vulnerabilities[2].scores[0].cvss_v3`) and
//! what was expected there. The parsers of this crate are written with it
//! rather than with derived serde structs because the real feeds are messy:
//! a derived struct fails on the first surprise with a message about a Rust
//! type, whereas here each field decides whether a surprise is an error or a
//! warning.

use serde_json::Value;

/// The largest document any parser of this crate accepts. The biggest real
/// file in the test data (the KEV catalog) is 1.3 MB; an advisory feed a
/// hundred times that size is hostile or a mistake.
pub const MAX_DOCUMENT_BYTES: usize = 128 * 1024 * 1024;

/// Why a document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not JSON (or not UTF-8); the message carries line and column.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A value has the wrong shape.
    #[error("{path}: expected {expected}, found {found}")]
    Shape {
        /// JSON path of the value, from `$`.
        path: String,
        /// What the format requires there.
        expected: String,
        /// A short description of what is there instead.
        found: String,
    },
    /// A value has the right shape but an unacceptable content.
    #[error("{path}: {message}")]
    Invalid {
        /// JSON path (or `line N` for line-based formats).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The input is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("input of {len} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Something a parser accepted but that a person should know about (an
/// unknown product id, an unknown status list, a score without a version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// JSON path of the offending value.
    pub path: String,
    /// What was odd and what the parser did about it.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Parses bytes as JSON with the crate's size limit.
pub fn parse_bytes(bytes: &[u8]) -> Result<Value, ParseError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge {
            len: bytes.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    // A UTF-8 byte-order mark is legal in files written on Windows.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // serde_json refuses nesting deeper than 128 levels, so hostile depth is an
    // error here rather than a stack overflow.
    serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))
}

/// At most 40 characters of `s` (and "…" when cut), for messages that quote
/// input: a 10 MB string must not end up in a log line.
pub fn excerpt(s: &str) -> String {
    let mut t: String = s.chars().take(40).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// A short description of a JSON value for error messages (never the whole
/// value: a 10 MB string must not end up in a log line).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {:?}", excerpt(s)),
        Value::Array(a) => format!("an array of {} item(s)", a.len()),
        Value::Object(o) => format!("an object with {} key(s)", o.len()),
    }
}

/// A JSON value and its path.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The value.
    pub value: &'a Value,
    path: &'a PathBuf,
}

/// An owned path, shared by a node and its children through references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathBuf(String);

impl PathBuf {
    /// The root path `$`.
    pub fn root() -> Self {
        PathBuf("$".into())
    }
    /// The path of a key below this one.
    pub fn key(&self, k: &str) -> Self {
        if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            PathBuf(format!("{}.{k}", self.0))
        } else {
            PathBuf(format!("{}[{k:?}]", self.0))
        }
    }
    /// The path of an array index below this one.
    pub fn index(&self, i: usize) -> Self {
        PathBuf(format!("{}[{i}]", self.0))
    }
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> Node<'a> {
    /// Wraps a value found at `path`.
    pub fn new(value: &'a Value, path: &'a PathBuf) -> Self {
        Node { value, path }
    }

    /// This node's path.
    pub fn path(&self) -> &'a PathBuf {
        self.path
    }

    /// A shape error at this node.
    pub fn expected(&self, what: &str) -> ParseError {
        ParseError::Shape {
            path: self.path.0.clone(),
            expected: what.into(),
            found: describe(self.value),
        }
    }

    /// An "invalid content" error at this node.
    pub fn invalid(&self, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            path: self.path.0.clone(),
            message: message.into(),
        }
    }

    /// A warning at this node.
    pub fn warning(&self, message: impl Into<String>) -> Warning {
        Warning {
            path: self.path.0.clone(),
            message: message.into(),
        }
    }

    /// The object's map, or a shape error.
    pub fn object(&self) -> Result<&'a serde_json::Map<String, Value>, ParseError> {
        self.value
            .as_object()
            .ok_or_else(|| self.expected("an object"))
    }

    /// The array's items, or a shape error.
    pub fn array(&self) -> Result<&'a [Value], ParseError> {
        self.value
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| self.expected("an array"))
    }

    /// The string, or a shape error.
    pub fn str(&self) -> Result<&'a str, ParseError> {
        self.value.as_str().ok_or_else(|| self.expected("a string"))
    }

    /// The number, or a shape error. Numbers written as strings ("7.5") are
    /// accepted because some feeds quote them.
    pub fn f64(&self) -> Result<f64, ParseError> {
        match self.value {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.expected("a number")),
            Value::String(s) => s.trim().parse().map_err(|_| self.expected("a number")),
            _ => Err(self.expected("a number")),
        }
    }

    /// The boolean, or a shape error.
    pub fn bool(&self) -> Result<bool, ParseError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.expected("a boolean"))
    }

    /// Whether the value is JSON null.
    pub fn is_null(&self) -> bool {
        self.value.is_null()
    }
}

/// Children need owned paths that outlive the call, so the walk is written
/// with closures that receive a child [`Node`].
pub trait Walk<'a> {
    /// Runs `f` on the member `key` when it is present and not null.
    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ParseError>;
    /// Runs `f` on the member `key`, which must be present and not null.
    fn with_req<T>(
        &self,
        key: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ParseError>,
    ) -> Result<T, ParseError>;
    /// Runs `f` on each item of the array member `key` (absent or null: none).
    fn each<T>(
        &self,
        key: &str,
        f: impl FnMut(usize, Node<'_>) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError>;
    /// The string member `key` when present and not null.
    fn opt_string(&self, key: &str) -> Result<Option<String>, ParseError>;
    /// The string member `key`, required.
    fn req_string(&self, key: &str) -> Result<String, ParseError>;
    /// The array-of-strings member `key` (absent or null: empty).
    fn strings(&self, key: &str) -> Result<Vec<String>, ParseError>;
}

impl<'a> Walk<'a> for Node<'a> {
    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ParseError> {
        let obj = self.object()?;
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let p = self.path.key(key);
                f(Node::new(v, &p)).map(Some)
            }
        }
    }

    fn with_req<T>(
        &self,
        key: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let obj = self.object()?;
        match obj.get(key) {
            None | Some(Value::Null) => Err(ParseError::Shape {
                path: self.path.key(key).0,
                expected: "a value (the member is required)".into(),
                found: if obj.contains_key(key) {
                    "null".into()
                } else {
                    "nothing".into()
                },
            }),
            Some(v) => {
                let p = self.path.key(key);
                f(Node::new(v, &p))
            }
        }
    }

    fn each<T>(
        &self,
        key: &str,
        mut f: impl FnMut(usize, Node<'_>) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        self.with(key, |arr| {
            let items = arr.array()?;
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                let p = arr.path().index(i);
                out.push(f(i, Node::new(v, &p))?);
            }
            Ok(out)
        })
        .map(Option::unwrap_or_default)
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, ParseError> {
        self.with(key, |n| n.str().map(str::to_owned))
    }

    fn req_string(&self, key: &str) -> Result<String, ParseError> {
        self.with_req(key, |n| n.str().map(str::to_owned))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ParseError> {
        self.each(key, |_, n| n.str().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path_and_the_expectation() {
        let v: Value = serde_json::json!({"a": [{"b": 3}], "weird key": 1});
        let root = PathBuf::root();
        let n = Node::new(&v, &root);
        let e = n
            .each("a", |_, item| item.req_string("b"))
            .expect_err("b is a number");
        assert_eq!(e.to_string(), "$.a[0].b: expected a string, found number 3");
        let e = n.with_req("weird key", |x| x.str().map(str::to_owned));
        assert!(e.unwrap_err().to_string().starts_with("$[\"weird key\"]:"));
        let e = n.req_string("missing").unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.missing: expected a value (the member is required), found nothing"
        );
    }

    #[test]
    fn long_strings_are_not_copied_into_errors() {
        let v = Value::String("x".repeat(10_000_000));
        assert!(describe(&v).len() < 60);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_bytes(deep.as_bytes()),
            Err(ParseError::Json(_))
        ));
    }
}
