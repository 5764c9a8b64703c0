//! A custom detection rule as an analyst types it: arbitrary text parsed and
//! checked. Nothing may panic, errors carry a position inside the text, and
//! whatever parses prints to a canonical form that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumpward_detect::expr::parse_rule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_rule(text) {
        Ok(rule) => {
            let printed = rule.to_string();
            if printed.len() <= pumpward_detect::expr::MAX_RULE_LEN {
                // Printing adds parentheses, so only nesting limits may refuse it.
                if let Ok(again) = parse_rule(&printed) {
                    assert_eq!(again, rule);
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            assert!(e.line <= text.lines().count().max(1) + 1);
        }
    }
});
