//! Every method crate registers here: one line per crate.

use pelt_core::Registry;

/// The registry of every method pelt ships.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.extend(pelt_selective::methods());
    r.extend(pelt_adapters::methods());
    r.extend(pelt_lowrank::methods());
    r.extend(pelt_prompts::methods());
    r.extend(pelt_mixtures::methods());
    r
}
