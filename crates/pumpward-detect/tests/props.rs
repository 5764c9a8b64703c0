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

mod replay {
    use super::*;
    use pumpward_detect::event::{Body, DoseOutcome, Event, SCHEMA_VERSION};
    use pumpward_detect::{Context, DetectionConfig, Engine, EngineState};
    use pumpward_proto::message::LibraryRejectReason;
    use time::{Duration, OffsetDateTime};

    /// A small event from a few numbers: kind, pump, address, time step.
    fn event(i: usize, kind: u8, pump: u8, addr: u8, at_s: i64) -> Event {
        let peer = format!("10.0.0.{addr}").parse().unwrap();
        let (source, body) = match kind % 6 {
            0 => (
                Source::Pump,
                Body::DoseCheck {
                    result: DoseOutcome::HardBlock,
                    drug: None,
                    limit_kind: None,
                    dose: None,
                    limit: None,
                    library_version: None,
                    override_reason: None,
                },
            ),
            1 => (
                Source::Pump,
                Body::DoseCheck {
                    result: DoseOutcome::SoftOverride,
                    drug: None,
                    limit_kind: None,
                    dose: None,
                    limit: None,
                    library_version: None,
                    override_reason: None,
                },
            ),
            2 => (
                Source::Gateway,
                Body::AuthFailure {
                    peer,
                    certificate: None,
                    reason: "x".into(),
                },
            ),
            3 => (
                Source::Gateway,
                Body::GatewayConnection {
                    peer,
                    certificate: format!("{:064x}", pump % 2),
                },
            ),
            4 => (
                Source::Pump,
                Body::LibraryRejected {
                    version: None,
                    digest: None,
                    reason: LibraryRejectReason::Other,
                },
            ),
            _ => (
                Source::Pump,
                Body::Alarm {
                    alarm: pumpward_proto::message::AlarmKind::Occlusion,
                },
            ),
        };
        let at =
            OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap() + Duration::seconds(at_s);
        Event {
            schema_version: SCHEMA_VERSION,
            id: format!("ev-{i}"),
            occurred_at: at,
            received_at: at,
            source,
            asset_id: Some(format!("pump-{}", pump % 4).parse().unwrap()),
            care_area: Some(if pump % 2 == 0 { "ICU" } else { "ED" }.into()),
            body,
        }
    }

    fn stream(raw: &[(u8, u8, u8, u8)]) -> Vec<Event> {
        let mut t = 0i64;
        raw.iter()
            .enumerate()
            .map(|(i, &(k, p, a, dt))| {
                t += i64::from(dt);
                event(i, k, p, a % 3, t)
            })
            .collect()
    }

    fn run(engine: &mut Engine, evs: &[Event], from: usize) -> Vec<serde_json::Value> {
        let ctx = Context::default();
        let mut out = Vec::new();
        for (i, e) in evs.iter().enumerate().skip(from) {
            engine.process(&ctx, i as u64 + 1, e, &mut out);
        }
        out.iter()
            .map(|a| serde_json::to_value(a).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn a_restart_at_any_point_gives_the_same_alerts(
            raw in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), 0u8..120), 1..200),
            cut in any::<proptest::sample::Index>(),
        ) {
            let evs = stream(&raw);
            let whole = run(&mut Engine::new(DetectionConfig::default()), &evs, 0);
            let cut = cut.index(evs.len());
            let mut first = Engine::new(DetectionConfig::default());
            let mut got = run(&mut first, &evs[..cut], 0);
            let snap: EngineState =
                serde_json::from_str(&serde_json::to_string(first.snapshot()).unwrap()).unwrap();
            let mut second = Engine::restore(DetectionConfig::default(), snap);
            // Replay from the start: the events before the cut are skipped.
            got.extend(run(&mut second, &evs, 0));
            prop_assert_eq!(got, whole);
        }
    }
}
