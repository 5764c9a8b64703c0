//! The bodies of the `detect_event_json` and `detect_rule` fuzz targets,
//! here so that the committed seeds (`fuzz/seeds/<target>/`) are replayed by
//! a unit test on stable.
//!
//! Besides "never panics", each checks what the crate promises: a refusal is
//! counted exactly once under its reason; an accepted event re-encodes to
//! JSON that decodes to the same event and goes through the engine; a rule
//! error points inside the text; a rule that parses prints to a canonical
//! form that parses to the same tree.

use crate::engine::{Context, Engine};
use crate::event::{decode_event, RejectCounters};
use crate::expr::{parse_rule, MAX_RULE_LEN};
use crate::DetectionConfig;

/// What happened to one input (for the seed tests' expectations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
}

/// Arbitrary bytes as one event at the boundary.
pub fn event_json(data: &[u8]) -> Verdict {
    let mut counters = RejectCounters::default();
    match decode_event(data, &mut counters) {
        Ok(ev) => {
            assert_eq!(counters.total(), 0);
            let json = serde_json::to_vec(&ev).expect("an accepted event serialises");
            let again = decode_event(&json, &mut counters).expect("its JSON is accepted again");
            assert_eq!(again, ev);
            let mut engine = Engine::new(DetectionConfig::default());
            let mut out = Vec::new();
            engine.process(&Context::default(), 1, &ev, &mut out);
            Verdict::Accepted
        }
        Err(e) => {
            assert_eq!(counters.get(e.reason), 1);
            assert_eq!(counters.total(), 1);
            Verdict::Refused
        }
    }
}

/// Arbitrary bytes as a custom rule's text.
pub fn rule_text(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    match parse_rule(text) {
        Ok(rule) => {
            let printed = rule.to_string();
            // Printing adds parentheses: only the size and depth limits may
            // refuse the canonical form.
            if printed.len() <= MAX_RULE_LEN {
                if let Ok(again) = parse_rule(&printed) {
                    assert_eq!(again, rule, "{printed}");
                }
            }
            Verdict::Accepted
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            assert!(e.line <= text.split('\n').count(), "{e}");
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn replay(target: &str, f: fn(&[u8]) -> Verdict) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{target}: {e}")) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&path).unwrap();
            let want = if name.starts_with("bad_") {
                Verdict::Refused
            } else {
                Verdict::Accepted
            };
            assert_eq!(f(&data), want, "{target}/{name}");
            n += 1;
        }
        assert!(n >= 4, "{target}: only {n} seeds");
    }

    #[test]
    fn event_seeds() {
        replay("detect_event_json", event_json);
    }

    #[test]
    fn rule_seeds() {
        replay("detect_rule", rule_text);
    }
}
