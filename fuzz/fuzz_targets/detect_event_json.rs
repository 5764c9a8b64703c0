//! A detection event as a producer hands it to the engine: arbitrary bytes
//! decoded and validated at the boundary. Nothing may panic; every refusal
//! is counted exactly once; whatever is accepted re-encodes to JSON that is
//! accepted again as the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumpward_detect::event::{decode_event, RejectCounters};

fuzz_target!(|data: &[u8]| {
    let mut counters = RejectCounters::default();
    match decode_event(data, &mut counters) {
        Ok(ev) => {
            assert_eq!(counters.total(), 0);
            let json = serde_json::to_vec(&ev).expect("an event always serialises");
            let again = decode_event(&json, &mut counters).expect("re-encoded event is accepted");
            assert_eq!(again, ev);
        }
        Err(e) => assert_eq!(counters.get(e.reason), 1),
    }
});
