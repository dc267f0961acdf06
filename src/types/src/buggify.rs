//! Buggify points: rare-but-legal behaviour that simulation turns up to find bugs sooner
//! (FoundationDB's BUGGIFY, TigerBeetle's swarm knobs).
//!
//! Why: a correct broker must survive a leader that gives up leadership at any moment, and
//! simulated faults alone make that rare. Unlike a planted defect (`defect.rs`), a buggify
//! point never breaks an invariant: it only makes a legal path frequent.
//!
//! In production builds (`not(madsim)`) [`get`] is the constant default (every rate zero), so
//! every buggify site compiles to nothing. Under `--cfg madsim` the rates are per OS thread, as
//! the defect switch is: madsim runs one seed, and all its nodes, on one thread.

/// The rates a seed chose. All zero by default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Buggify {
    /// Probability per Raft tick that a partition leader hands leadership to a random voter
    /// (Raft thesis §3.10 transfer), so elections happen under load all the time.
    pub step_down_per_tick: f64,
}

#[cfg(madsim)]
thread_local! {
    static RATES: std::cell::Cell<Buggify> = const { std::cell::Cell::new(Buggify { step_down_per_tick: 0.0 }) };
}

/// Sets this thread's rates (simulation only).
#[cfg(madsim)]
pub fn set(rates: Buggify) {
    assert!((0.0..=1.0).contains(&rates.step_down_per_tick), "step_down_per_tick not in [0, 1]");
    RATES.with(|cell| cell.set(rates));
}

/// This thread's rates; the all-zero default outside simulation builds.
#[inline]
pub fn get() -> Buggify {
    #[cfg(madsim)]
    {
        RATES.with(std::cell::Cell::get)
    }
    #[cfg(not(madsim))]
    {
        Buggify::default()
    }
}
