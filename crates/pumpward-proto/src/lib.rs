//! Pumpward's device protocol: what pumps and the gateway say to each other
//! over the mutually authenticated TLS channel, and the pump agent's durable
//! event queue that feeds it.
//!
//! - [`frame`] — 4-byte big-endian length + one JSON message; refuses an
//!   oversized declared length before buffering a payload byte.
//! - [`message`] — the typed messages of protocol version 1, their parsing
//!   (distinguishing malformed, unknown type, version problems and invalid
//!   fields) and `validate()`.
//! - [`seq`] — the gateway's pure sequence bookkeeping per device.
//! - [`queue`] — the pump agent's append-only on-disk queue (the one module
//!   here that does I/O).
//!
//! The protocol is specified in `docs/device-protocol.md`.
//!
//! # Invariants
//!
//! - **Identity is never in a message.** Nothing here names the pump; the
//!   gateway takes the device's identity from its client certificate and
//!   keeps one [`seq::SequenceTracker`] per certified device.
//! - **Hostile input never panics.** Every frame, payload and field is
//!   bounded ([`frame::MAX_FRAME_LEN`], [`message::MAX_EVENTS_PER_BATCH`],
//!   string limits) and every refusal is a typed error that maps to a
//!   [`message::Refusal`] with a precise reason.
//! - **Durable before acknowledged.** The gateway sends
//!   [`message::Ack`] only from [`seq::SequenceTracker::commit`], after
//!   storing the plan's events; an ack never decreases; a sequence number is
//!   stored at most once; a missing range is recorded as a gap, never
//!   silently skipped.
//! - **The pump never loses an unacknowledged event and never blocks.**
//!   [`queue::DurableQueue::push`] returns only after `fsync`; a full queue
//!   returns [`queue::QueueError::Full`] at once instead of waiting; a torn
//!   last record is detected (length + CRC-32C) and ignored; the sequence
//!   counter never goes backwards, even after every segment is reclaimed.
//! - **What the queue holds, the gateway accepts.** `push` validates each
//!   event with the same rules as the gateway, so a queued event is never
//!   refused for its content.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod examples;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod queue;
pub mod seq;

pub use frame::{FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use message::{
    parse_gateway_message, parse_pump_message, GatewayMessage, MessageError, PumpEvent,
    PumpMessage, ValidationError, PROTOCOL_VERSION,
};
pub use queue::{DurableQueue, QueueError};
pub use seq::{BatchPlan, SequenceTracker};
