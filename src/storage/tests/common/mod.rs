//! Helpers shared by the seeded storage tests: the seed list and the one-line replay command a
//! failing seed prints (DESIGN.md, "every failing seed printed with a one-line replay command").

/// Prints how to replay the current seed if the test panics.
pub struct SeedReport(pub u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let test = std::thread::current().name().unwrap_or("<test>").to_string();
            // Expanded inside the including test crate, so its first segment is the test's name.
            let test_file = module_path!().split("::").next().unwrap_or("<file>");
            eprintln!(
                "failing seed {seed}; replay: SLUICE_SEED={seed} cargo test -p sluice-storage --test {test_file} -- \
                 {test} --exact",
                seed = self.0
            );
        }
    }
}

/// `0..count`, or only `$SLUICE_SEED` when it is set (to replay one failure).
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SLUICE_SEED") {
        Ok(seed) => vec![seed.parse().expect("SLUICE_SEED is a u64")],
        Err(_) => (0..count).collect(),
    }
}
