//! Properties: windowed counts agree with a naive model, the rule printer
//! round-trips through the parser, and arbitrary input never panics.

use proptest::prelude::*;
use pumpward_detect::event::{decode_event, BodyKind, RejectCounters, Source};
use pumpward_detect::expr::{parse_rule, CmpOp, CountClause, Expr, Field, Lit, RuleExpr, Type};
use pumpward_detect::window::Recent;

proptest! {
    #[test]
    fn window_counts_match_a_naive_count(
        gaps in proptest::collection::vec(0i64..2_000, 1..300),
        window in 1i64..5_000,
        cap in 1usize..40,
    ) {
        let mut r = Recent::new(cap);
        let mut times = Vec::new();
        let mut t = 0i64;
        for g in gaps {
            t += g;
            times.push(t);
            let got = r.push(t, window);
            let naive = times.iter().filter(|&&x| x > t - window && x <= t).count();
            prop_assert_eq!(got, naive.min(cap));
        }
    }
}

fn field_of(ty: Type) -> impl Strategy<Value = Field> {
    let fields: Vec<Field> = Field::ALL
        .iter()
        .copied()
        .filter(|f| f.ty() == ty)
        .collect();
    proptest::sample::select(fields)
}

fn lit_for(field: Field) -> BoxedStrategy<Lit> {
    match (field, field.ty()) {
        (Field::Kind, _) => proptest::sample::select(BodyKind::ALL.to_vec())
            .prop_map(|k| Lit::Str(k.as_str().to_owned()))
            .boxed(),
        (Field::Source, _) => proptest::sample::select(Source::ALL.to_vec())
            .prop_map(|s| Lit::Str(s.as_str().to_owned()))
            .boxed(),
        (_, Type::Str) => "[^\\p{Cc}]{0,12}".prop_map(Lit::Str).boxed(),
        (_, Type::Int) => (0i64..=i64::MAX).prop_map(Lit::Int).boxed(),
        (_, Type::Bool) => any::<bool>().prop_map(Lit::Bool).boxed(),
        (_, Type::Ip) => any::<std::net::IpAddr>().prop_map(Lit::Ip).boxed(),
    }
}

fn leaf() -> BoxedStrategy<Expr> {
    let any_field = proptest::sample::select(Field::ALL.to_vec());
    prop_oneof![
        any::<bool>().prop_map(Expr::Const),
        field_of(Type::Bool).prop_map(Expr::Flag),
        any_field.clone().prop_flat_map(|f| {
            let ops = if f.ty() == Type::Int {
                vec![
                    CmpOp::Eq,
                    CmpOp::Ne,
                    CmpOp::Lt,
                    CmpOp::Le,
                    CmpOp::Gt,
                    CmpOp::Ge,
                ]
            } else {
                vec![CmpOp::Eq, CmpOp::Ne]
            };
            (proptest::sample::select(ops), lit_for(f)).prop_map(move |(op, l)| Expr::Cmp(f, op, l))
        }),
        any_field.prop_flat_map(|f| {
            proptest::collection::vec(lit_for(f), 1..4).prop_map(move |ls| Expr::In(f, ls))
        }),
    ]
    .boxed()
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn count() -> impl Strategy<Value = Option<CountClause>> {
    proptest::option::of(
        (
            proptest::sample::subsequence(Field::ALL.to_vec(), 0..=4),
            1u64..=7 * 86_400,
            1u32..=10_000,
        )
            .prop_map(|(by, within_s, at_least)| CountClause {
                by,
                within_s,
                at_least,
            }),
    )
}

proptest! {
    #[test]
    fn printed_rules_parse_back_to_the_same_tree(when in expr(), count in count()) {
        let rule = RuleExpr { when, count };
        let text = rule.to_string();
        let parsed = parse_rule(&text);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&rule), "text: {}\nerror: {:?}", text, parsed.as_ref().err());
    }

    #[test]
    fn arbitrary_rule_text_never_panics(s in "\\PC{0,200}") {
        if let Err(e) = parse_rule(&s) {
            prop_assert!(e.line >= 1 && e.column >= 1);
        }
    }

    #[test]
    fn rule_like_text_never_panics(parts in proptest::collection::vec(proptest::sample::select(vec![
        "kind", "==", "\"alarm\"", "and", "or", "not", "(", ")", "[", "]", ",", "in", "with",
        "count", "by", "within", "5m", ">=", "3", "success", "resp_port", "<", "\"", "peer",
        "\"10.0.0.1\"", "true", "false", "\n", "é", "0d", "99999999999999999999",
    ]), 0..40)) {
        let s = parts.join(" ");
        let _ = parse_rule(&s);
    }

    #[test]
    fn arbitrary_event_bytes_are_refused_with_a_counted_reason(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut c = RejectCounters::default();
        if let Err(e) = decode_event(&bytes, &mut c) {
            prop_assert_eq!(c.get(e.reason), 1);
            prop_assert_eq!(c.total(), 1);
        }
    }
}
