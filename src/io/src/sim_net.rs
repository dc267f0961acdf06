//! Message-level faults for peer traffic (simulation builds only).
//!
//! Why: madsim's TCP never drops, duplicates or reorders an established stream's bytes; a clog
//! only stalls it (reference/dst.md §1.5). Raft must tolerate all three, so in simulation every
//! `Transport::send` of `TcpTransport` asks [`fate`] what happens to the message: delivered,
//! dropped, sent twice, or held back for a while (which reorders it behind later messages).
//!
//! The harness sets the rates per seed with [`set`]; draws come from a ChaCha stream seeded by
//! the harness, in call order, and madsim runs a seed's nodes on one thread, so a seed replays
//! bit for bit. With nothing set every message is delivered once, at once.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_types::NodeId;
use std::cell::RefCell;

/// The longest a message can be held back.
pub const DELAY_MS_MAX: u64 = 2_000;

/// Fault rates for peer messages, each a probability in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NetFaults {
    pub drop: f64,
    pub duplicate: f64,
    pub delay: f64,
    /// Upper bound of a delay, at most `DELAY_MS_MAX`.
    pub delay_ms_max: u64,
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    /// 0 (dropped), 1, or 2 (duplicated).
    pub copies: u8,
    /// Hold the copies back this long (0: send at once).
    pub delay_ms: u64,
}

impl Fate {
    pub const DELIVER: Fate = Fate { copies: 1, delay_ms: 0 };
}

struct State {
    faults: NetFaults,
    enabled: bool,
    rng: ChaCha8Rng,
    counts: FaultCounts,
}

/// How many messages each fault touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub delayed: u64,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Sets this seed's rates and RNG seed (faults start enabled).
pub fn set(faults: NetFaults, seed: u64) {
    assert!(faults.delay_ms_max <= DELAY_MS_MAX, "delay bound over DELAY_MS_MAX");
    for p in [faults.drop, faults.duplicate, faults.delay] {
        assert!((0.0..=1.0).contains(&p), "probability out of range: {p}");
    }
    let state = State { faults, enabled: true, rng: ChaCha8Rng::seed_from_u64(seed), counts: FaultCounts::default() };
    STATE.with(|s| *s.borrow_mut() = Some(state));
}

/// Turns the faults off (healing) or back on, keeping the rates.
pub fn set_enabled(enabled: bool) {
    STATE.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            state.enabled = enabled;
        }
    });
}

/// Forgets the faults (end of a seed).
pub fn clear() -> FaultCounts {
    STATE.with(|s| s.borrow_mut().take().map(|state| state.counts).unwrap_or_default())
}

/// The fate of one message from `from` to `to`.
pub fn fate(from: NodeId, to: NodeId) -> Fate {
    let _ = (from, to);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let Some(state) = s.as_mut() else { return Fate::DELIVER };
        state.counts.sent += 1;
        if !state.enabled {
            return Fate::DELIVER;
        }
        let faults = state.faults;
        if state.rng.gen_bool(faults.drop) {
            state.counts.dropped += 1;
            return Fate { copies: 0, delay_ms: 0 };
        }
        let copies = if state.rng.gen_bool(faults.duplicate) {
            state.counts.duplicated += 1;
            2
        } else {
            1
        };
        let delay_ms = if faults.delay_ms_max > 0 && state.rng.gen_bool(faults.delay) {
            state.counts.delayed += 1;
            state.rng.gen_range(1..=faults.delay_ms_max)
        } else {
            0
        };
        Fate { copies, delay_ms }
    })
}
