//! Shared build script for every crate whose binaries, tests or benches link libtorch.
//!
//! Cargo overrides `LD_LIBRARY_PATH`, so the loader must find libtorch through an rpath; torch-sys
//! exports its library folder as `DEP_TCH_LIBTORCH_LIB` to crates that depend on it directly. The
//! libtorch version is read from the same install so that results can record it.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let version_py = std::path::Path::new(&lib).join("../version.py");
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PELT_LIBTORCH_VERSION={version}");
}
