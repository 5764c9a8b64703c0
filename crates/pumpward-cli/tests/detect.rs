//! `pumpward detect rules`: the rules in effect, and a rules file refused
//! with the position of its problem.

mod common;

use common::{err, out, run_pumpward};

#[test]
fn rules_defaults_overrides_and_refusals() {
    let t = tempfile::tempdir().unwrap();

    // The shipped defaults, read back, are the rules in effect.
    let o = run_pumpward(["detect", "rules", "--defaults"]);
    assert!(o.status.success(), "{}", err(&o));
    let defaults = t.path().join("defaults.toml");
    std::fs::write(&defaults, out(&o)).unwrap();
    let plain = run_pumpward(["detect", "rules"]);
    let read = run_pumpward(["detect", "rules", "--rules", defaults.to_str().unwrap()]);
    assert!(read.status.success(), "{}", err(&read));
    assert_eq!(out(&plain), out(&read));
    assert!(
        out(&plain).contains("auth_failure_burst"),
        "{}",
        out(&plain)
    );

    // An override and a custom rule show in the table.
    let tuned = t.path().join("tuned.toml");
    std::fs::write(
        &tuned,
        "[rules.auth_failure_burst]\nthreshold = 9\n\n[[custom]]\nid = \"gateway_auth_storm\"\n\
         title = \"Authentication storm\"\nseverity = \"high\"\n\
         when = 'kind == \"auth_failure\" and source == \"gateway\" with count(by peer within 5m) >= 5'\n",
    )
    .unwrap();
    let o = run_pumpward(["detect", "rules", "--rules", tuned.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let table = out(&o);
    let row = table
        .lines()
        .find(|l| l.starts_with("auth_failure_burst "))
        .unwrap();
    assert!(row.split_whitespace().any(|w| w == "9"), "{row}");
    assert!(table.contains("gateway_auth_storm"), "{table}");

    // A custom rule over an unknown field: refused with line and column.
    let bad = t.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[custom]]\nid = \"x\"\ntitle = \"X\"\nwhen = 'kind == \"alarm\" and colour == \"red\"'\n",
    )
    .unwrap();
    let o = run_pumpward(["detect", "rules", "--rules", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("line 1, column"), "{}", err(&o));
    assert!(err(&o).contains("colour"), "{}", err(&o));
    assert!(out(&o).is_empty());
}
