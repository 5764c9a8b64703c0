//! Custom rules: a small, sandboxed expression language over event fields,
//! with an optional windowed count.
//!
//! ```text
//! kind == "auth_failure" and source == "gateway" with count(by asset within 5m) >= 5
//! ```
//!
//! Grammar (EBNF; keywords are lowercase, whitespace is free):
//!
//! ```text
//! rule     = expr [ "with" count ] ;
//! count    = "count" "(" [ "by" field { "," field } ] "within" DURATION ")" ">=" INT ;
//! expr     = conj { "or" conj } ;
//! conj     = unary { "and" unary } ;
//! unary    = "not" unary | primary ;
//! primary  = "(" expr ")" | "true" | "false"
//!          | field [ CMP literal | "in" "[" literal { "," literal } "]" ] ;
//! CMP      = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
//! literal  = STRING | INT | "true" | "false" ;
//! field    = IDENT ;                       (* one of FIELDS below *)
//! STRING   = '"' { char | '\"' | '\\' } '"' ;
//! INT      = digit { digit } ;
//! DURATION = INT ( "s" | "m" | "h" | "d" ) ;
//! ```
//!
//! A bare field is allowed only for a boolean field (`success`, `kev`,
//! `device_zone`). Every field has a type (string, integer, boolean or IP
//! address) and a comparison must match it; ordering (`<` …) is for
//! integers only. A field the event does not carry (e.g. `drug` on an alarm)
//! makes every comparison on it false, `!=` included.
//!
//! Safety: a rule is checked when it is compiled: unknown fields, unknown
//! `kind`/`source` values and type mismatches are refused with their
//! line:column and a caret excerpt. The text, the nesting depth and the
//! number of nodes are bounded ([`MAX_RULE_LEN`], [`MAX_DEPTH`],
//! [`MAX_NODES`]), and evaluation is one walk of the tree: no loops, no
//! calls, no I/O, so a rule's cost per event is bounded by its size.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::{parse_duration, Severity};
use crate::event::{Body, BodyKind, Event, Source};
use pumpward_proto::message::{AlarmKind, LibraryRejectReason, LoginMethod};

/// Bytes of a rule's text.
pub const MAX_RULE_LEN: usize = 4096;
/// Nesting depth of `not`, `and`/`or` chains and parentheses.
pub const MAX_DEPTH: usize = 32;
/// Nodes of a rule's tree.
pub const MAX_NODES: usize = 256;
/// Values in one `in [...]` list.
pub const MAX_IN_LIST: usize = 64;
/// Fields in a `count(by ...)`.
pub const MAX_GROUP_FIELDS: usize = 4;

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Str,
    Int,
    Bool,
    Ip,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Str => "a string",
            Type::Int => "an integer",
            Type::Bool => "a boolean",
            Type::Ip => "an IP address (written as a string)",
        }
    }
}

macro_rules! fields {
    ($($variant:ident = $name:literal : $ty:ident),* $(,)?) => {
        /// An event field a rule can name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Field { $($variant),* }

        impl Field {
            /// Every field.
            pub const ALL: &'static [Field] = &[$(Field::$variant),*];

            /// Its name in rules.
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name),* }
            }

            /// Its type.
            pub fn ty(self) -> Type {
                match self { $(Field::$variant => Type::$ty),* }
            }

            fn from_name(s: &str) -> Option<Field> {
                match s { $($name => Some(Field::$variant),)* _ => None }
            }
        }
    };
}

fields! {
    Kind = "kind": Str,
    Source = "source": Str,
    Asset = "asset": Str,
    CareArea = "care_area": Str,
    Drug = "drug": Str,
    Result = "result": Str,
    OverrideReason = "override_reason": Str,
    Alarm = "alarm": Str,
    Version = "version": Str,
    Digest = "digest": Str,
    Model = "model": Str,
    Reason = "reason": Str,
    Method = "method": Str,
    Success = "success": Bool,
    Account = "account": Str,
    Peer = "peer": Ip,
    Certificate = "certificate": Str,
    Anomaly = "anomaly": Str,
    Rule = "rule": Str,
    Violation = "violation": Str,
    OrigAddr = "orig_addr": Ip,
    RespAddr = "resp_addr": Ip,
    OrigPort = "orig_port": Int,
    RespPort = "resp_port": Int,
    OrigBytes = "orig_bytes": Int,
    RespBytes = "resp_bytes": Int,
    Zone = "zone": Str,
    DeviceZone = "device_zone": Bool,
    Actor = "actor": Str,
    Action = "action": Str,
    Outcome = "outcome": Str,
    Vulnerability = "vulnerability": Str,
    Kev = "kev": Bool,
}

/// A field's value in one event, borrowed: reading a field never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
}

fn alarm_name(a: AlarmKind) -> &'static str {
    match a {
        AlarmKind::Occlusion => "occlusion",
        AlarmKind::AirInLine => "air_in_line",
        AlarmKind::BatteryLow => "battery_low",
        AlarmKind::BatteryDepleted => "battery_depleted",
        AlarmKind::DoorOpen => "door_open",
        AlarmKind::InfusionComplete => "infusion_complete",
        AlarmKind::DeviceFault => "device_fault",
        AlarmKind::Other => "other",
    }
}

fn reject_name(r: LibraryRejectReason) -> &'static str {
    match r {
        LibraryRejectReason::SignatureInvalid => "signature_invalid",
        LibraryRejectReason::DigestMismatch => "digest_mismatch",
        LibraryRejectReason::VersionRollback => "version_rollback",
        LibraryRejectReason::Incompatible => "incompatible",
        LibraryRejectReason::DownloadFailed => "download_failed",
        LibraryRejectReason::UntrustedKey => "untrusted_key",
        LibraryRejectReason::MalformedEnvelope => "malformed_envelope",
        LibraryRejectReason::InvalidLibrary => "invalid_library",
        LibraryRejectReason::WrongCareArea => "wrong_care_area",
        LibraryRejectReason::Other => "other",
    }
}

fn method_name(m: LoginMethod) -> &'static str {
    match m {
        LoginMethod::Local => "local",
        LoginMethod::Remote => "remote",
        LoginMethod::ServicePort => "service_port",
        LoginMethod::Other => "other",
    }
}

fn int(n: u64) -> Value<'static> {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Field {
    /// The field's value in `ev`, if the event carries it.
    pub fn get(self, ev: &Event) -> Option<Value<'_>> {
        use Value::*;
        let b = &ev.body;
        Some(match (self, b) {
            (Field::Kind, _) => Str(b.kind().as_str()),
            (Field::Source, _) => Str(ev.source.as_str()),
            (Field::Asset, _) => Str(ev.asset_id.as_ref()?.as_str()),
            (Field::CareArea, _) => Str(ev.care_area.as_deref()?),
            (Field::Drug, Body::DoseCheck { drug, .. }) => Str(drug.as_deref()?),
            (Field::Drug, Body::InfusionProgrammed { infusion }) => {
                Str(infusion.drug.as_deref()?)
            }
            (Field::Result, Body::DoseCheck { result, .. }) => Str(result.as_str()),
            (
                Field::OverrideReason,
                Body::DoseCheck {
                    override_reason, ..
                },
            ) => Str(override_reason.as_deref()?),
            (Field::Alarm, Body::Alarm { alarm }) => Str(alarm_name(*alarm)),
            (Field::Version, Body::LibraryInstalled { version, .. })
            | (Field::Version, Body::FirmwareChanged { version, .. }) => Str(version),
            (Field::Version, Body::LibraryRejected { version, .. }) => Str(version.as_deref()?),
            (Field::Digest, Body::LibraryInstalled { digest, .. })
            | (Field::Digest, Body::FirmwareChanged { digest, .. }) => Str(digest),
            (Field::Digest, Body::LibraryRejected { digest, .. }) => Str(digest.as_deref()?),
            (Field::Model, Body::FirmwareChanged { model, .. }) => Str(model),
            (Field::Reason, Body::LibraryRejected { reason, .. }) => Str(reject_name(*reason)),
            (Field::Reason, Body::AuthFailure { reason, .. }) => Str(reason),
            (Field::Method, Body::MaintenanceLogin { method, .. }) => Str(method_name(*method)),
            (Field::Success, Body::MaintenanceLogin { success, .. }) => Bool(*success),
            (Field::Account, Body::MaintenanceLogin { account, .. }) => Str(account.as_deref()?),
            (Field::Peer, Body::GatewayConnection { peer, .. })
            | (Field::Peer, Body::AuthFailure { peer, .. }) => Ip(*peer),
            (Field::Certificate, Body::GatewayConnection { certificate, .. })
            | (Field::Certificate, Body::CertificateAnomaly { certificate, .. }) => {
                Str(certificate)
            }
            (Field::Certificate, Body::AuthFailure { certificate, .. }) => {
                Str(certificate.as_deref()?)
            }
            (Field::Anomaly, Body::CertificateAnomaly { anomaly, .. }) => Str(anomaly.as_str()),
            (Field::Rule, Body::PolicyViolation { rule, .. }) => Str(rule),
            (Field::Violation, Body::PolicyViolation { violation, .. }) => Str(violation.as_str()),
            (Field::OrigAddr, Body::PolicyViolation { flow, .. })
            | (Field::OrigAddr, Body::FlowObserved { flow }) => Ip(flow.orig_addr),
            (Field::OrigAddr, Body::UnknownDevice { ip, .. }) => Ip((*ip)?),
            (Field::RespAddr, Body::PolicyViolation { flow, .. })
            | (Field::RespAddr, Body::FlowObserved { flow }) => Ip(flow.resp_addr),
            (Field::OrigPort, Body::PolicyViolation { flow, .. })
            | (Field::OrigPort, Body::FlowObserved { flow }) => Int(i64::from(flow.orig_port)),
            (Field::RespPort, Body::PolicyViolation { flow, .. })
            | (Field::RespPort, Body::FlowObserved { flow }) => Int(i64::from(flow.resp_port)),
            (Field::OrigBytes, Body::PolicyViolation { flow, .. })
            | (Field::OrigBytes, Body::FlowObserved { flow }) => int(flow.orig_bytes),
            (Field::RespBytes, Body::PolicyViolation { flow, .. })
            | (Field::RespBytes, Body::FlowObserved { flow }) => int(flow.resp_bytes),
            (Field::Zone, Body::UnknownDevice { zone, .. }) => Str(zone),
            (Field::DeviceZone, Body::UnknownDevice { device_zone, .. }) => Bool(*device_zone),
            (Field::Actor, Body::AdminAudit { record }) => Str(&record.entry.actor),
            (Field::Action, Body::AdminAudit { record }) => Str(&record.entry.action),
            (Field::Outcome, Body::AdminAudit { record }) => Str(record.entry.outcome.as_str()),
            (Field::Vulnerability, Body::VulnerabilityAffected { vulnerability, .. })
            | (Field::Vulnerability, Body::KevAdded { vulnerability }) => Str(vulnerability),
            (Field::Kev, Body::VulnerabilityAffected { kev, .. }) => Bool(*kev),
            _ => return None,
        })
    }
}

/// A literal in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    /// A string literal compared with an IP field, parsed at compile time.
    Ip(IpAddr),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A checked rule condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Const(bool),
    /// A boolean field on its own.
    Flag(Field),
    Cmp(Field, CmpOp, Lit),
    In(Field, Vec<Lit>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// `with count(by ... within ...) >= N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountClause {
    /// Fields whose values together name the counted subject (none: one
    /// count for all matching events).
    pub by: Vec<Field>,
    /// The window, in seconds.
    pub within_s: u64,
    /// Matching events needed within the window.
    pub at_least: u32,
}

/// A parsed and checked rule: a condition and an optional windowed count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleExpr {
    /// The condition an event must meet.
    pub when: Expr,
    /// The count, if the rule fires on bursts rather than on single events.
    pub count: Option<CountClause>,
}

impl Expr {
    /// Whether `ev` meets the condition.
    pub fn eval(&self, ev: &Event) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Flag(f) => matches!(f.get(ev), Some(Value::Bool(true))),
            Expr::Cmp(f, op, lit) => match f.get(ev) {
                Some(v) => compare(v, *op, lit),
                None => false,
            },
            Expr::In(f, lits) => match f.get(ev) {
                Some(v) => lits.iter().any(|l| compare(v, CmpOp::Eq, l)),
                None => false,
            },
            Expr::Not(e) => !e.eval(ev),
            Expr::And(a, b) => a.eval(ev) && b.eval(ev),
            Expr::Or(a, b) => a.eval(ev) || b.eval(ev),
        }
    }

    fn nodes(&self) -> usize {
        match self {
            Expr::Const(_) | Expr::Flag(_) | Expr::Cmp(..) => 1,
            Expr::In(_, l) => 1 + l.len(),
            Expr::Not(e) => 1 + e.nodes(),
            Expr::And(a, b) | Expr::Or(a, b) => 1 + a.nodes() + b.nodes(),
        }
    }
}

fn compare(v: Value<'_>, op: CmpOp, lit: &Lit) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match (v, lit) {
        (Value::Str(a), Lit::Str(b)) => a.cmp(b.as_str()),
        (Value::Int(a), Lit::Int(b)) => a.cmp(b),
        (Value::Bool(a), Lit::Bool(b)) => a.cmp(b),
        (Value::Ip(a), Lit::Ip(b)) => a.cmp(b),
        // Compile-time checks make this unreachable; false is the safe answer.
        _ => return false,
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

// ---------------------------------------------------------------------------
// Printing (canonical form: parses back to the same tree)
// ---------------------------------------------------------------------------

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Lit::Int(n) => write!(f, "{n}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Ip(ip) => write!(f, "\"{ip}\""),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Const(b) => write!(f, "{b}"),
            Expr::Flag(fl) => f.write_str(fl.name()),
            Expr::Cmp(fl, op, lit) => write!(f, "{} {} {lit}", fl.name(), op.as_str()),
            Expr::In(fl, lits) => {
                write!(f, "{} in [", fl.name())?;
                for (i, l) in lits.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str("]")
            }
            Expr::Not(e) => write!(f, "not ({e})"),
            Expr::And(a, b) => write!(f, "({a}) and ({b})"),
            Expr::Or(a, b) => write!(f, "({a}) or ({b})"),
        }
    }
}

impl fmt::Display for RuleExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.when)?;
        if let Some(c) = &self.count {
            f.write_str(" with count(")?;
            if !c.by.is_empty() {
                f.write_str("by ")?;
                for (i, fl) in c.by.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(fl.name())?;
                }
                f.write_str(" ")?;
            }
            write!(f, "within {}s) >= {}", c.within_s, c.at_least)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A rule that does not compile: where and why, with the line and a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The offending line and a caret under the column.
    pub excerpt: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}\n{}",
            self.line, self.column, self.message, self.excerpt
        )
    }
}

impl std::error::Error for ParseError {}

fn error_at(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
    let (line, column) = crate::config::line_col(src, offset);
    let text = src.lines().nth(line - 1).unwrap_or("");
    let caret: String = " ".repeat(column.saturating_sub(1)) + "^";
    ParseError {
        line,
        column,
        message: message.into(),
        excerpt: format!("  {text}\n  {caret}"),
    }
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Duration(u64),
    Cmp(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Int(n) => format!("the number {n}"),
        Tok::Duration(s) => format!("the duration {s}s"),
        Tok::Cmp(op) => format!("{:?}", op.as_str()),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::LBracket => "\"[\"".into(),
        Tok::RBracket => "\"]\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::End => "the end of the rule".into(),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'[' => {
                i += 1;
                Tok::LBracket
            }
            b']' => {
                i += 1;
                Tok::RBracket
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(i + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', true) => CmpOp::Eq,
                    (b'!', true) => CmpOp::Ne,
                    (b'<', true) => CmpOp::Le,
                    (b'>', true) => CmpOp::Ge,
                    (b'<', false) => CmpOp::Lt,
                    (b'>', false) => CmpOp::Gt,
                    _ => {
                        return Err(error_at(
                            src,
                            start,
                            format!("{:?} is not an operator; use == or !=", char::from(c)),
                        ))
                    }
                };
                i += if two { 2 } else { 1 };
                Tok::Cmp(op)
            }
            b'"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(rest) = src.get(i..) else {
                        return Err(error_at(src, start, "this string is not closed"));
                    };
                    let mut chars = rest.chars();
                    match chars.next() {
                        None => return Err(error_at(src, start, "this string is not closed")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => {
                                s.push(e);
                                i += 2;
                            }
                            _ => {
                                return Err(error_at(
                                    src,
                                    i,
                                    "only \\\" and \\\\ are escapes in a string",
                                ))
                            }
                        },
                        Some(ch) if ch.is_control() => {
                            return Err(error_at(
                                src,
                                i,
                                "control characters are not allowed in a string",
                            ))
                        }
                        Some(ch) => {
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                Tok::Str(s)
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = &src[start..i];
                if i < b.len() && b[i].is_ascii_alphabetic() {
                    while i < b.len() && b[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    let secs =
                        parse_duration(&src[start..i]).map_err(|m| error_at(src, start, m))?;
                    Tok::Duration(secs)
                } else {
                    let n: i64 = digits.parse().map_err(|_| {
                        error_at(src, start, format!("{digits} is too large a number"))
                    })?;
                    Tok::Int(n)
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_owned())
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(error_at(src, start, format!("unexpected character {ch:?}")));
            }
        };
        out.push((tok, start));
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

// ---------------------------------------------------------------------------
// Parser (recursive descent, depth-bounded) with type checking
// ---------------------------------------------------------------------------

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "true", "false", "with", "count", "by", "within",
];

/// Parses and checks a rule.
pub fn parse_rule(src: &str) -> Result<RuleExpr, ParseError> {
    if src.len() > MAX_RULE_LEN {
        return Err(error_at(
            src,
            MAX_RULE_LEN,
            format!(
                "a rule is at most {MAX_RULE_LEN} bytes; this one is {}",
                src.len()
            ),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    let when = p.expr()?;
    let count = if p.eat_kw("with") {
        Some(p.count()?)
    } else {
        None
    };
    let (t, at) = p.peek();
    if *t != Tok::End {
        let msg = format!(
            "expected \"and\", \"or\", \"with\" or the end, found {}",
            describe(t)
        );
        return Err(error_at(src, at, msg));
    }
    if when.nodes() > MAX_NODES {
        return Err(error_at(
            src,
            0,
            format!("the rule has more than {MAX_NODES} parts"),
        ));
    }
    Ok(RuleExpr { when, count })
}

impl Parser<'_> {
    fn peek(&self) -> (&Tok, usize) {
        match self.toks.get(self.pos) {
            Some((t, at)) => (t, *at),
            None => (&Tok::End, self.src.len()),
        }
    }

    fn next(&mut self) -> (Tok, usize) {
        let r = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, self.src.len()));
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        r
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        error_at(self.src, at, msg)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if matches!(self.peek().0, Tok::Ident(s) if s == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<usize, ParseError> {
        let (t, at) = self.next();
        if t == want {
            Ok(at)
        } else {
            Err(self.err(at, format!("expected {what}, found {}", describe(&t))))
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        let (t, at) = self.next();
        match t {
            Tok::Ident(s) if s == kw => Ok(()),
            t => Err(self.err(at, format!("expected \"{kw}\", found {}", describe(&t)))),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(at, format!("nesting deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let at = self.peek().1;
        self.enter(at)?;
        let mut e = self.conj()?;
        while self.eat_kw("or") {
            let rhs = self.conj()?;
            e = Expr::Or(Box::new(e), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(e)
    }

    fn conj(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.eat_kw("and") {
            let rhs = self.unary()?;
            e = Expr::And(Box::new(e), Box::new(rhs));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let at = self.peek().1;
        if self.eat_kw("not") {
            self.enter(at)?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let (t, at) = self.next();
        match t {
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(e)
            }
            Tok::Ident(s) if s == "true" => Ok(Expr::Const(true)),
            Tok::Ident(s) if s == "false" => Ok(Expr::Const(false)),
            Tok::Ident(s) => {
                let field = self.field(&s, at)?;
                match self.peek().0.clone() {
                    Tok::Cmp(op) => {
                        self.pos += 1;
                        let lit = self.literal(field, op)?;
                        Ok(Expr::Cmp(field, op, lit))
                    }
                    Tok::Ident(k) if k == "in" => {
                        self.pos += 1;
                        self.expect(Tok::LBracket, "\"[\" after \"in\"")?;
                        let mut lits = Vec::new();
                        loop {
                            if lits.len() == MAX_IN_LIST {
                                let at = self.peek().1;
                                return Err(
                                    self.err(at, format!("at most {MAX_IN_LIST} values in a list"))
                                );
                            }
                            lits.push(self.literal(field, CmpOp::Eq)?);
                            let (t, at) = self.next();
                            match t {
                                Tok::Comma => continue,
                                Tok::RBracket => break,
                                t => {
                                    return Err(self.err(
                                        at,
                                        format!("expected \",\" or \"]\", found {}", describe(&t)),
                                    ))
                                }
                            }
                        }
                        Ok(Expr::In(field, lits))
                    }
                    _ if field.ty() == Type::Bool => Ok(Expr::Flag(field)),
                    t => Err(self.err(
                        self.peek().1,
                        format!(
                            "{} is {}; compare it (==, !=, in) instead of {}",
                            field.name(),
                            field.ty().name(),
                            describe(&t)
                        ),
                    )),
                }
            }
            t => Err(self.err(
                at,
                format!(
                    "expected a field, \"not\", \"(\", true or false, found {}",
                    describe(&t)
                ),
            )),
        }
    }

    fn field(&self, name: &str, at: usize) -> Result<Field, ParseError> {
        if KEYWORDS.contains(&name) {
            return Err(self.err(at, format!("expected a field, found the keyword {name:?}")));
        }
        Field::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            self.err(
                at,
                format!("unknown field {name:?}; fields are: {}", known.join(", ")),
            )
        })
    }

    fn literal(&mut self, field: Field, op: CmpOp) -> Result<Lit, ParseError> {
        let (t, at) = self.next();
        let ty = field.ty();
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        if ordering && ty != Type::Int {
            return Err(self.err(
                at,
                format!(
                    "{} is {}; only integers can be ordered with {}",
                    field.name(),
                    ty.name(),
                    op.as_str()
                ),
            ));
        }
        let lit = match (ty, t) {
            (Type::Str, Tok::Str(s)) => {
                let known: Option<Vec<&str>> = match field {
                    Field::Kind => Some(BodyKind::ALL.iter().map(|k| k.as_str()).collect()),
                    Field::Source => Some(Source::ALL.iter().map(|k| k.as_str()).collect()),
                    _ => None,
                };
                if let Some(known) = known {
                    if !known.contains(&s.as_str()) {
                        return Err(self.err(
                            at,
                            format!(
                                "{s:?} is not a {}; known values: {}",
                                field.name(),
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Lit::Str(s)
            }
            (Type::Ip, Tok::Str(s)) => Lit::Ip(
                s.parse()
                    .map_err(|_| self.err(at, format!("{s:?} is not an IP address")))?,
            ),
            (Type::Int, Tok::Int(n)) => Lit::Int(n),
            (Type::Bool, Tok::Ident(s)) if s == "true" => Lit::Bool(true),
            (Type::Bool, Tok::Ident(s)) if s == "false" => Lit::Bool(false),
            (ty, t) => {
                return Err(self.err(
                    at,
                    format!(
                        "{} is {}; it cannot be compared with {}",
                        field.name(),
                        ty.name(),
                        describe(&t)
                    ),
                ))
            }
        };
        Ok(lit)
    }

    fn count(&mut self) -> Result<CountClause, ParseError> {
        self.expect_kw("count")?;
        self.expect(Tok::LParen, "\"(\" after \"count\"")?;
        let mut by = Vec::new();
        if self.eat_kw("by") {
            loop {
                let (t, at) = self.next();
                let Tok::Ident(name) = t else {
                    return Err(self.err(at, format!("expected a field, found {}", describe(&t))));
                };
                let f = self.field(&name, at)?;
                if by.contains(&f) {
                    return Err(self.err(at, format!("{name} is already named")));
                }
                if by.len() == MAX_GROUP_FIELDS {
                    return Err(self.err(
                        at,
                        format!("at most {MAX_GROUP_FIELDS} fields after \"by\""),
                    ));
                }
                by.push(f);
                if !matches!(self.peek().0, Tok::Comma) {
                    break;
                }
                self.pos += 1;
            }
        }
        self.expect_kw("within")?;
        let (t, at) = self.next();
        let Tok::Duration(within_s) = t else {
            return Err(self.err(
                at,
                format!("expected a duration such as 5m, found {}", describe(&t)),
            ));
        };
        self.expect(Tok::RParen, "\")\"")?;
        let (t, at) = self.next();
        if t != Tok::Cmp(CmpOp::Ge) {
            return Err(self.err(at, format!("expected \">=\", found {}", describe(&t))));
        }
        let (t, at) = self.next();
        let cap = crate::window::MAX_WINDOW_CAP as i64;
        let at_least = match t {
            Tok::Int(n) if (1..=cap).contains(&n) => n as u32,
            t => {
                return Err(self.err(
                    at,
                    format!("expected a count from 1 to {cap}, found {}", describe(&t)),
                ))
            }
        };
        Ok(CountClause {
            by,
            within_s,
            at_least,
        })
    }
}

// ---------------------------------------------------------------------------
// Custom rules
// ---------------------------------------------------------------------------

/// A compiled custom rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRule {
    /// `[a-z0-9_]`, unique among all rules.
    pub id: String,
    /// The alert title.
    pub title: String,
    /// The alert severity.
    pub severity: Severity,
    /// Whether it runs.
    pub enabled: bool,
    /// The rule text as written.
    pub source: String,
    /// The checked rule.
    pub rule: RuleExpr,
}

impl CustomRule {
    /// Compiles a rule; the error names the field (`when`).
    pub fn compile(
        id: &str,
        title: &str,
        severity: Severity,
        enabled: bool,
        when: &str,
    ) -> Result<CustomRule, (&'static str, ParseError)> {
        let rule = parse_rule(when).map_err(|e| ("when", e))?;
        Ok(CustomRule {
            id: id.to_owned(),
            title: title.to_owned(),
            severity,
            enabled,
            source: when.to_owned(),
            rule,
        })
    }

    /// The subject an event is counted under: the `by` fields' values
    /// joined by U+001F (which no validated field contains).
    pub fn subject(&self, ev: &Event) -> String {
        let Some(c) = &self.rule.count else {
            return ev
                .asset_id
                .as_ref()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|| ev.id.clone());
        };
        let mut key = String::new();
        for (i, f) in c.by.iter().enumerate() {
            if i > 0 {
                key.push('\u{1f}');
            }
            match f.get(ev) {
                Some(Value::Str(s)) => key.push_str(s),
                Some(Value::Int(n)) => key.push_str(&n.to_string()),
                Some(Value::Bool(b)) => key.push_str(if b { "true" } else { "false" }),
                Some(Value::Ip(ip)) => key.push_str(&ip.to_string()),
                None => key.push('-'),
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let r = parse_rule(
            r#"kind == "auth_failure" and source == "gateway" with count(by asset within 5m) >= 5"#,
        )
        .unwrap();
        let c = r.count.clone().unwrap();
        assert_eq!((c.by, c.within_s, c.at_least), (vec![Field::Asset], 300, 5));
        assert_eq!(parse_rule(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn unknown_field_has_its_position_and_caret() {
        let e = parse_rule("kind == \"alarm\"\n  and alrm == \"occlusion\"").unwrap_err();
        assert_eq!((e.line, e.column), (2, 7));
        assert!(
            e.message.contains("unknown field \"alrm\""),
            "{}",
            e.message
        );
        assert!(e.excerpt.ends_with("\n        ^"), "{:?}", e.excerpt);
    }

    #[test]
    fn type_mismatches_are_refused() {
        let e = parse_rule("resp_port == \"443\"").unwrap_err();
        assert_eq!(e.column, 14);
        assert!(e.message.contains("integer"), "{}", e.message);
        let e = parse_rule("drug > \"a\"").unwrap_err();
        assert!(e.message.contains("only integers"), "{}", e.message);
        let e = parse_rule("kind == \"alarms\"").unwrap_err();
        assert!(e.message.contains("not a kind"), "{}", e.message);
        let e = parse_rule("peer == \"10.0.0\"").unwrap_err();
        assert!(e.message.contains("not an IP"), "{}", e.message);
        let e = parse_rule("drug").unwrap_err();
        assert!(e.message.contains("compare it"), "{}", e.message);
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "not ".repeat(MAX_DEPTH + 1) + "true";
        assert!(parse_rule(&deep).unwrap_err().message.contains("nesting"));
        let parens = "(".repeat(MAX_DEPTH + 1) + "true" + &")".repeat(MAX_DEPTH + 1);
        assert!(parse_rule(&parens).unwrap_err().message.contains("nesting"));
        let wide = vec!["success"; 300].join(" or ");
        assert!(parse_rule(&wide).unwrap_err().message.contains("parts"));
        let long = "x".repeat(MAX_RULE_LEN + 1);
        assert!(parse_rule(&long).is_err());
    }

    #[test]
    fn count_clause_errors() {
        let e = parse_rule("success with count(by asset within 5) >= 3").unwrap_err();
        assert!(e.message.contains("duration"), "{}", e.message);
        let e = parse_rule("success with count(within 5m) > 3").unwrap_err();
        assert!(e.message.contains(">="), "{}", e.message);
        let e = parse_rule("success with count(within 5m) >= 0").unwrap_err();
        assert!(e.message.contains("from 1"), "{}", e.message);
    }
}
