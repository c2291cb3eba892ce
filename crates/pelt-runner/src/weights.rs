//! The backbone's weights, verified and named by digest: every record carries the SHA-256 of the
//! weights it was trained from, and a sweep refuses an installed asset whose bytes are no longer the
//! ones the set-up pinned (a flipped byte inside a tensor leaves the safetensors header readable, so
//! loading alone would train on it silently).
//!
//! The digest of a model folder is the SHA-256 of its one `*.safetensors` file, or, for a sharded
//! checkpoint, the SHA-256 of the `sha256sum`-style lines (`<digest>  <file>`) of its files in name
//! order. Hashing a 90 MB file takes a noticeable fraction of a second, so digests are cached per file
//! by path, size and modification time.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file in which the set-up pins a model folder's weights: the digest this module computes,
/// written when the folder was installed from a verified archive.
pub const PIN_FILE: &str = ".pelt-weights.sha256";

/// The folder's `*.safetensors` files in name order.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the model folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.safetensors weights", dir.display());
    }
    Ok(files)
}

/// Where digests are cached: `$PELT_CACHE`, else `$XDG_CACHE_HOME/pelt`, else `~/.cache/pelt`.
fn cache_file() -> Option<PathBuf> {
    let dir = std::env::var_os("PELT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("pelt")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pelt")))?;
    Some(dir.join("weights-digests.json"))
}

/// The cache's key for a file as it is now: its full path, size and modification time.
fn stamp(file: &Path) -> Result<String> {
    let meta = std::fs::metadata(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(format!("{}|{}|{}", path.display(), meta.len(), mtime.as_nanos()))
}

/// SHA-256 (hex) of one file, streamed.
fn sha256_file(file: &Path) -> Result<String> {
    let mut f = std::fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("{}: cannot read", file.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The digest of a model folder's weights (see the module's documentation), through the cache.
pub fn digest(dir: &Path) -> Result<String> {
    let files = weight_files(dir)?;
    let cache_path = cache_file();
    let mut cache: BTreeMap<String, String> = cache_path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut changed = false;
    let mut lines = String::new();
    let mut single = String::new();
    for file in &files {
        let key = stamp(file)?;
        let d = match cache.get(&key) {
            Some(d) => d.clone(),
            None => {
                let d = sha256_file(file)?;
                cache.insert(key, d.clone());
                changed = true;
                d
            }
        };
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        lines.push_str(&format!("{d}  {name}\n"));
        single = d;
    }
    if let (true, Some(p)) = (changed, &cache_path) {
        // Entries of files that are gone (temporary test models, replaced checkpoints) are dropped.
        cache.retain(|key, _| key.split('|').next().is_some_and(|f| Path::new(f).exists()));
        // A cache that cannot be written only costs a re-hash next time.
        if p.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok()) {
            if let Ok(text) = serde_json::to_vec(&cache) {
                let _ = pelt_records::write_atomic(p, &text);
            }
        }
    }
    if files.len() == 1 {
        return Ok(single);
    }
    Ok(Sha256::digest(lines.as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// The digest of a model folder's weights, checked against its pin when it has one: an installed
/// asset whose bytes changed since the set-up verified them is refused, naming both digests. A
/// user's own folder has no pin; its digest is returned (and recorded) as it is.
pub fn verified(dir: &Path) -> Result<String> {
    let now = digest(dir)?;
    let pin_path = dir.join(PIN_FILE);
    if let Ok(text) = std::fs::read_to_string(&pin_path) {
        let pinned = text.split_whitespace().next().unwrap_or_default();
        if pinned != now {
            bail!(
                "{}: the weights' SHA-256 is {now}, but the set-up pinned {pinned} ({}): the files changed \
                 since they were installed. Rerun the set-up (scripts/setup.sh, or any ./just recipe) to \
                 install them again",
                dir.display(),
                pin_path.display()
            );
        }
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_the_bytes_and_pins_refuse_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("PELT_CACHE", dir.path().join("cache"));
        let model = dir.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        let weights = model.join("model.safetensors");
        std::fs::write(&weights, b"weights, version one").unwrap();
        // One file: the digest is the file's own SHA-256, as `sha256sum` prints it.
        let one = digest(&model).unwrap();
        assert_eq!(one, sha256_file(&weights).unwrap());
        assert_eq!(verified(&model).unwrap(), one, "no pin: the digest as it is");
        std::fs::write(model.join(PIN_FILE), format!("{one}\n")).unwrap();
        assert_eq!(verified(&model).unwrap(), one);
        // Same size, other bytes: the cache is keyed by mtime too, so the change is seen.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&weights, b"weights, version 0ne").unwrap();
        let e = verified(&model).unwrap_err().to_string();
        assert!(e.contains(&one) && e.contains(&digest(&model).unwrap()) && e.contains("Rerun the set-up"), "{e}");
        std::fs::write(model.join("more.safetensors"), b"shard").unwrap();
        let sharded = digest(&model).unwrap();
        assert!(sharded.len() == 64 && sharded != digest(&model).map(|_| one.clone()).unwrap(), "{sharded}");
        std::fs::remove_dir_all(&model).unwrap();
        assert!(digest(&model).is_err());
    }
}
