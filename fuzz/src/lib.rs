//! The bodies of the fuzz targets, as plain functions: `cargo fuzz` drives them with
//! coverage-guided inputs (see `docs/reliability.md`), and the workspace test
//! `fuzz_targets_on_random_inputs` runs them on stable over seeds and random bytes, so
//! they cannot rot. Each panics only on a real fault: a panic in the code under test, or
//! a broken invariant.

use std::collections::{HashMap, HashSet};

use stockade_domain::testing::{commit, expire, release, reserve};
use stockade_domain::{
    Adjust, Availability, Command, Event, PoolConfig, Quantity, RegisterSku, Sku, SkuState,
    StockChange, Timestamp, decide,
};
use stockade_store::codec;
use stockade_store::{Position, RecordedEvent, StreamName};

/// Every stored type name, and one that names no event.
fn event_type(kind: u8) -> &'static str {
    let kind = usize::from(kind) % (Event::TYPES.len() + 1);
    Event::TYPES.get(kind).copied().unwrap_or("NotAnEvent")
}

/// Stored bytes, however damaged, decode to an event or to an error; what decodes
/// encodes back to the same event and metadata. Returns whether it decoded.
///
/// Input: a type byte, a metadata length byte, the 16-byte event id the store holds,
/// then the metadata and the payload.
pub fn decode_event(data: &[u8]) -> bool {
    let [kind, cut, rest @ ..] = data else {
        return false;
    };
    let Some((id, rest)) = rest.split_at_checked(16) else {
        return false;
    };
    let event_id = uuid::Uuid::from_slice(id).unwrap_or_default();
    let (metadata, payload) = rest.split_at(usize::from(*cut).min(rest.len()));
    let stream = StreamName::for_sku(&sku());
    let recorded = RecordedEvent {
        stream,
        revision: 0,
        position: Position::at(0),
        event_id,
        event_type: event_type(*kind).to_owned(),
        data: payload.to_vec(),
        metadata: metadata.to_vec(),
        recorded_at: Timestamp::EPOCH,
    };
    if let Ok((event, meta)) = codec::decode(&recorded) {
        let again = codec::encode(&event, &meta).expect("a decoded event encodes");
        let back = RecordedEvent {
            event_type: again.event_type.clone(),
            data: again.data,
            metadata: again.metadata,
            ..recorded
        };
        let (event2, meta2) = codec::decode(&back).expect("an encoded event decodes");
        assert_eq!(event, event2);
        assert_eq!(meta, meta2);
        return true;
    }
    false
}

/// Any body, as any request: parsed or refused, and what validates is sound (lines
/// non-empty, quantities positive, one line per SKU).
pub fn request_bodies(data: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<stockade_wire::ReserveRequest>(data)
        && let Ok(checked) = r.validate()
    {
        assert!(!checked.lines.is_empty());
        let mut seen = HashSet::new();
        for line in &checked.lines {
            assert!(line.qty > Quantity::ZERO);
            assert!(seen.insert(line.sku.clone()), "a SKU on two lines");
        }
        for sku in checked.expected_versions.keys() {
            assert!(
                seen.contains(sku),
                "an expected version for a SKU not ordered"
            );
        }
    }
    if let Ok(r) = serde_json::from_slice::<stockade_wire::AdjustRequest>(data) {
        let _ = r.validate();
    }
    if let Ok(r) = serde_json::from_slice::<stockade_wire::RegisterSkuRequest>(data) {
        let _ = r.validate();
    }
}

fn sku() -> Sku {
    Sku::new("FUZZ-1").expect("a valid SKU")
}

/// Commands decoded from bytes, decided one after the other on one SKU, with time
/// moving forward: every decision's events apply, no hold exceeds what was available,
/// no hold is resolved twice or without having been held, and the state survives
/// a snapshot round trip.
pub fn decide_sequence(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut state = SkuState::default();
    let mut now = Timestamp::from_millis(1_000);
    let register = Command::RegisterSku(RegisterSku {
        sku: sku(),
        pool: PoolConfig::Physical {
            locations: Vec::new(),
            on_hand: Quantity::new(u64::from(first % 64)),
            safety_stock: Quantity::new(u64::from(first / 64)),
        },
    });
    apply(&mut state, &register, now);
    // Held reservations and their quantities (a resolution removes one).
    let mut held: HashMap<u128, u64> = HashMap::new();
    for op in rest.chunks(3) {
        let (a, b, c) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        let id = u128::from(b % 16);
        let command = match a % 7 {
            0 | 1 => reserve(id, u64::from(c % 8), 1 + u64::from(c % 20)),
            2 => commit(id),
            3 => release(id),
            4 => expire(id),
            5 => Command::Adjust(Adjust {
                location: None,
                change: if c % 2 == 0 {
                    StockChange::Delta(i64::from(b as i8))
                } else {
                    StockChange::Count(Quantity::new(u64::from(b % 64)))
                },
                reason: "fuzz".into(),
                reference: None,
            }),
            _ => {
                now = Timestamp::from_millis(now.as_millis() + 1_000 * u64::from(b % 16));
                continue;
            }
        };
        let before = state.stock().map(|s| s.view(now));
        let accepted = apply(&mut state, &command, now);
        match (&command, accepted) {
            (Command::Reserve(r), true) => {
                let id = r.reservation_id.as_uuid().as_u128();
                assert!(r.qty > Quantity::ZERO, "a hold of nothing");
                if let Some(Availability::Limited(available)) = before.map(|v| v.available) {
                    assert!(r.qty <= available, "held {} of {available}", r.qty);
                }
                // The state keeps live holds only: an ended id may be held again (the
                // engine never offers one within its key window), a live one never.
                assert!(!held.contains_key(&id), "a live id held twice");
                held.insert(id, r.qty.get());
            }
            (Command::Commit(_) | Command::Release(_) | Command::Expire(_), true) => {
                assert!(
                    held.remove(&id).is_some(),
                    "resolved {id} without a live hold (or twice)"
                );
            }
            _ => {}
        }
    }
    let snapshot = codec::encode_snapshot(&state).expect("a state encodes");
    let restored = codec::decode_snapshot(&snapshot).expect("a snapshot decodes");
    assert_eq!(restored, state, "snapshot round trip");
}

/// Decides `command`; applies its events, which must apply. Returns whether it was
/// accepted.
fn apply(state: &mut SkuState, command: &Command, now: Timestamp) -> bool {
    match decide(state, command, now) {
        Ok(events) => {
            for event in &events {
                state
                    .apply(event)
                    .unwrap_or_else(|e| panic!("decided event does not apply: {e} ({event:?})"));
            }
            true
        }
        Err(_) => false,
    }
}
