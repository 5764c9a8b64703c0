//! Sample messages: one valid value of every message, command and event
//! kind. Used by this crate's tests, the fuzz seeds and other crates' tests
//! (the simulator, the gateway).

use std::collections::BTreeMap;

use time::macros::datetime;

use crate::message::*;

/// A firmware or library digest (SHA-256 of the empty string).
pub const DIGEST: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A hello.
pub fn hello() -> Hello {
    Hello {
        versions: vec![1],
        firmware: Firmware {
            version: "4.2.1".into(),
            digest: DIGEST.into(),
        },
        library: Some(LibraryRef {
            version: "2025.03-2".into(),
            digest: DIGEST.into(),
        }),
        network: NetworkIdentity {
            mac: "00:1b:44:11:3a:b7".into(),
            ip: Some("10.40.12.31".parse().expect("literal")),
            hostname: Some("pump-0042".into()),
            ssid: Some("CLIN-PUMPS".into()),
            bssid: Some("f4:cf:e2:10:22:01".into()),
            ap_name: Some("AP-3W-12".into()),
        },
        care_area: Some("ICU".into()),
        next_seq: 118,
        agent: Some("pumpward-agent/0.1.0".into()),
    }
}

/// A heartbeat.
pub fn heartbeat() -> Heartbeat {
    Heartbeat {
        battery_pct: 87,
        on_mains: Some(true),
        infusion: InfusionState::Running,
        library_version: Some("2025.03-2".into()),
        uptime_s: 86_400,
        queue_depth: 3,
        dropped_events: 0,
    }
}

fn infusion(cause: Option<StopCause>) -> Infusion {
    Infusion {
        infusion_id: "inf-7781".into(),
        drug: Some("heparin".into()),
        rate: Some(Quantity {
            value: "12.5".into(),
            unit: "mL/h".into(),
        }),
        vtbi: Some(Quantity {
            value: "250".into(),
            unit: "mL".into(),
        }),
        cause,
    }
}

/// One event of every kind, numbered from `first_seq`.
pub fn events(first_seq: u64) -> Vec<PumpEvent> {
    let kinds = vec![
        EventKind::InfusionProgrammed(infusion(None)),
        EventKind::DoseCheck(DoseCheck {
            result: DoseCheckResult::SoftOverride,
            drug: "heparin".into(),
            care_area: "ICU".into(),
            dose: Some(Quantity {
                value: "28".into(),
                unit: "units/kg/h".into(),
            }),
            limit: Some(Quantity {
                value: "25".into(),
                unit: "units/kg/h".into(),
            }),
            limit_kind: Some(LimitKind::SoftMax),
            infusion_id: Some("inf-7781".into()),
            library_version: Some("2025.03-2".into()),
            override_reason: Some("titrating to MAP goal per protocol".into()),
        }),
        EventKind::InfusionStarted(infusion(None)),
        EventKind::Alarm {
            alarm: AlarmKind::Occlusion,
            infusion_id: Some("inf-7781".into()),
        },
        EventKind::InfusionPaused(infusion(Some(StopCause::Alarm))),
        EventKind::InfusionStopped(infusion(Some(StopCause::Completed))),
        EventKind::LibraryInstalled {
            version: "2025.03-2".into(),
            digest: DIGEST.into(),
        },
        EventKind::LibraryRejected {
            version: Some("2025.04-1".into()),
            digest: Some(DIGEST.into()),
            reason: LibraryRejectReason::SignatureInvalid,
        },
        EventKind::FirmwareChanged {
            from: Some("4.2.0".into()),
            to: "4.2.1".into(),
            digest: DIGEST.into(),
        },
        EventKind::MaintenanceLogin {
            method: LoginMethod::Local,
            success: true,
            account: Some("biomed".into()),
        },
        EventKind::CareAreaChanged {
            from: Some("MED-SURG".into()),
            to: "ICU".into(),
        },
        EventKind::EventsDropped { count: 12 },
        EventKind::Other {
            name: "door_opened_during_setup".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| PumpEvent {
            seq: first_seq + i as u64,
            at: datetime!(2025-05-14 09:30:00 UTC) + time::Duration::seconds(i as i64),
            kind,
            detail: if i == 0 {
                BTreeMap::from([("channel".to_owned(), "A".to_owned())])
            } else {
                BTreeMap::new()
            },
        })
        .collect()
}

/// Every pump message kind.
pub fn pump_messages() -> Vec<PumpMessage> {
    vec![
        PumpMessage::Hello(hello()),
        PumpMessage::Heartbeat(heartbeat()),
        PumpMessage::EventBatch(EventBatch {
            events: events(118),
        }),
        PumpMessage::CommandResult(CommandResult {
            id: "cmd-19".into(),
            status: CommandStatus::Deferred,
            detail: Some("infusion running; library installs when it ends".into()),
        }),
    ]
}

/// A welcome.
pub fn welcome() -> Welcome {
    Welcome {
        session: "s-6f1c2a".into(),
        version: 1,
        server_time: datetime!(2025-05-14 09:31:02 UTC),
        heartbeat_interval_s: 60,
        expected_next_seq: 118,
        max_batch_events: MAX_EVENTS_PER_BATCH as u32,
        max_frame_bytes: crate::frame::MAX_FRAME_LEN as u32,
    }
}

/// Every gateway message and command kind.
pub fn gateway_messages() -> Vec<GatewayMessage> {
    let cmd = |id: &str, command| {
        GatewayMessage::Command(CommandMessage {
            id: id.into(),
            command,
        })
    };
    vec![
        GatewayMessage::Welcome(welcome()),
        GatewayMessage::Ack(Ack { up_to_seq: 130 }),
        cmd(
            "cmd-17",
            Command::RenewCertificate {
                reason: Some("certificate expires in 14 days".into()),
                before: Some(datetime!(2025-05-28 00:00:00 UTC)),
            },
        ),
        cmd(
            "cmd-18",
            Command::DrugLibraryAvailable {
                version: "2025.04-1".into(),
                digest: DIGEST.into(),
                size: Some(48_213),
            },
        ),
        cmd(
            "cmd-19",
            Command::QuarantineNotice {
                state: QuarantineState::Quarantined,
                reason: "firmware digest does not match any approved image".into(),
                incident: Some("INC-2025-0042".into()),
            },
        ),
        cmd("cmd-20", Command::RequestStatus),
        GatewayMessage::Refusal(Refusal {
            code: RefusalCode::SequenceNotIncreasing,
            reason: "events[2].seq: 120 is not greater than the previous event's 121".into(),
            fatal: false,
            retry_after_s: None,
            supported_versions: Vec::new(),
            expected_next_seq: None,
            seq: Some(120),
        }),
    ]
}
