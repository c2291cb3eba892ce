//! The results store: one JSON record per finished run, written atomically as soon as the run ends. A
//! rerun skips runs whose record exists (unless it failed).
//!
//! Saving a run writes its own file and nothing else: O(1) per run, no lock, nothing shared between
//! writers but the folder, so any number of shards (a Slurm array on a network file system included)
//! write one suite side by side. `records.jsonl` (every record, one per line, for polars and other
//! readers) is derived: [`Store::write_jsonl`] rebuilds it when a table is built (the end of a sweep,
//! `pelt table`, a Slurm array's table job). Two shards ending at once may leave it a run short; the
//! `records/` folder is the truth, and the next table rebuilds the list from it.

use crate::{Record, Status};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What [`Store::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, sorted by key.
    pub records: Vec<Record>,
    /// The files of `records/` that could not be read as records.
    pub unreadable: Vec<Unreadable>,
}

/// A file of a suite's `records/` that is not a record.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The file.
    pub path: PathBuf,
    /// Why it is not a record.
    pub error: String,
}

/// A name part safe in file names (run keys, source checkpoints): ASCII letters, digits and `-` kept,
/// anything else `_`.
pub fn file_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Reads and writes the records of one suite.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A hidden temporary name beside `path`, ending in `.{ext}`, that no other writer uses: it carries
/// the process id and a per-process counter, so shards running side by side (and threads within one)
/// never draw into or rename away each other's files.
pub fn temp_path(path: &Path, ext: &str) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    path.with_file_name(format!(".{name}.{}.{n}.{ext}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
/// The temporary file is the process's own, so that shards of one suite running side by side never
/// write into each other's.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path, "tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot rename into place", path.display()))
}

impl Store {
    /// The store under `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir.join("records")).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Store { dir: dir.to_path_buf() })
    }

    /// The suite's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join("records").join(format!("{key}.json"))
    }

    /// Whether the run `key` finished (ok or diverged) in an earlier sweep.
    pub fn is_done(&self, key: &str) -> bool {
        std::fs::read_to_string(self.path(key))
            .ok()
            .and_then(|t| serde_json::from_str::<Record>(&t).ok())
            .is_some_and(|r| r.status != Status::Failed)
    }

    /// Saves a record (its own file, atomically).
    pub fn save(&self, record: &Record) -> Result<()> {
        self.save_all(std::slice::from_ref(record))
    }

    /// Saves several records, each in its own file.
    pub fn save_all(&self, records: &[Record]) -> Result<()> {
        for record in records {
            write_atomic(&self.path(&record.key), serde_json::to_string_pretty(record)?.as_bytes())?;
        }
        Ok(())
    }

    /// Every record of the suite, sorted by key, and the files of `records/` that are not records
    /// (cut short, edited by hand, from another program), each with its error: one bad file must not
    /// hide a suite's other runs. Hidden files (another writer's temporary files) are not looked at.
    pub fn load(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        let dir = self.dir.join("records");
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let parsed = std::fs::read(&path).map_err(|e| format!("cannot read: {e}")).and_then(|bytes| {
                serde_json::from_slice::<Record>(&bytes).map_err(|e| format!("not a pelt record: {e}"))
            });
            match parsed {
                Ok(r) => loaded.records.push(r),
                Err(error) => loaded.unreadable.push(Unreadable { path, error }),
            }
        }
        loaded.records.sort_by(|a: &Record, b: &Record| a.key.cmp(&b.key));
        Ok(loaded)
    }

    /// Every record of the suite, sorted by key; a file that is not a record is an error naming it.
    pub fn load_all(&self) -> Result<Vec<Record>> {
        let loaded = self.load()?;
        if let Some(bad) = loaded.unreadable.first() {
            anyhow::bail!("{}: {}", bad.path.display(), bad.error);
        }
        Ok(loaded.records)
    }

    /// Rewrites `records.jsonl` (atomically) with `records`, one per line: the suite's records as the
    /// caller loaded them (files that are not records stay out, and `pelt table` names them).
    pub fn write_jsonl(&self, records: &[Record]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(&self.dir.join("records.jsonl"), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_leaves_out_files_that_are_not_records_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save(&crate::test_record("rte", "lora", 1)).unwrap();
        store.save(&crate::test_record("rte", "lora", 2)).unwrap();
        let records = dir.path().join("records");
        std::fs::write(records.join("cut.json"), b"{\"key\": \"rte__lora").unwrap();
        std::fs::write(records.join("bytes.json"), [0xff, 0xfe, 0x00]).unwrap();
        std::fs::write(records.join(".partial.json"), b"ignored").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records.len(), 2);
        let names: Vec<String> =
            loaded.unreadable.iter().map(|u| u.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["bytes.json", "cut.json"]);
        assert!(loaded.unreadable.iter().all(|u| u.error.starts_with("not a pelt record")), "{:?}", loaded.unreadable);
        let strict = store.load_all().unwrap_err().to_string();
        assert!(strict.contains("bytes.json") && strict.contains("not a pelt record"), "{strict}");
        // Saving goes on past a bad file, and touches nothing but its own record; records.jsonl lists
        // the good ones when it is rebuilt.
        store.save(&crate::test_record("rte", "lora", 3)).unwrap();
        assert!(!dir.path().join("records.jsonl").exists());
        store.write_jsonl(&store.load().unwrap().records).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap().lines().count(), 3);
    }
}
