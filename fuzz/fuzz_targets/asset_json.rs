//! An asset as a client sends it to the API: arbitrary bytes parsed as a JSON
//! draft and validated. Nothing may panic, and whatever validates must
//! validate again, unchanged, from its own draft (what export and the UI do).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumpward_core::inventory::{AssetDraft, AssetSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(draft) = serde_json::from_slice::<AssetDraft>(data) else {
        return;
    };
    if let Ok(spec) = AssetSpec::validate(&draft) {
        assert_eq!(AssetSpec::validate(&spec.to_draft()).as_ref(), Ok(&spec));
    }
});
