//! Helpers shared by the `pelt` binary's integration tests.

use std::path::Path;
use std::process::Command;

/// Runs the `pelt` binary in `cwd`; returns whether it succeeded and its stdout and stderr together.
pub fn pelt(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pelt"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run pelt");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
