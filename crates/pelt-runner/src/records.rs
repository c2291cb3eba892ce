//! The results store: one JSON record per finished run, written atomically as soon as the run ends,
//! plus `records.jsonl` (every record, one per line, for polars and other readers) rewritten
//! atomically after each run. A rerun skips runs whose record exists (unless it failed).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and evaluated.
    Ok,
    /// The loss became NaN or infinite; recorded, and the sweep goes on.
    Diverged,
    /// An error stopped the run; retried on the next sweep.
    Failed,
}

/// One dev evaluation during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer steps taken before the evaluation.
    pub step: usize,
    /// Dev score (0–100), the score that selects the checkpoint.
    #[serde(deserialize_with = "nan_if_null")]
    pub dev: f64,
    /// Mean training loss over the steps since the previous evaluation.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
}

/// JSON has no NaN: serde_json writes a non-finite float as `null`. Read it back as NaN, so that one
/// odd evaluation never makes a suite's records unreadable.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One finished run, with everything needed to reproduce and compare it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run's key (also its file name).
    pub key: String,
    /// Experiment name.
    pub suite: String,
    /// Task name.
    pub task: String,
    /// Row label.
    pub method: String,
    /// Registry name of the method.
    pub method_name: String,
    /// The method's resolved configuration (defaults filled in).
    pub method_config: serde_json::Value,
    /// Hash of method, config, learning rate and training settings.
    pub config_hash: String,
    /// Peak learning rate.
    pub lr: f64,
    /// The sweep's training settings.
    pub training: serde_json::Value,
    /// `100`, `16-shot` or `all`.
    pub data_size: String,
    /// Seed.
    pub seed: u64,
    /// Outcome.
    pub status: Status,
    /// Error or divergence message.
    pub message: Option<String>,
    /// Test metrics (0–100).
    pub metrics: BTreeMap<String, f64>,
    /// Task score: the mean of the task's metrics (GLUE convention), 0–100.
    pub score: Option<f64>,
    /// Best dev score during training (0–100).
    pub best_dev_score: Option<f64>,
    /// Step of the best dev score.
    pub best_step: Option<usize>,
    /// Every dev evaluation in order, with the mean training loss since the one before: shows whether
    /// a run was still improving at its last step, or collapsed from its first evaluation on. Records
    /// written before pelt kept curves have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Examples trained on / used for selection / tested on.
    pub train_examples: usize,
    /// Dev examples.
    pub dev_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Trainable parameters of the method (excluding the task head).
    pub method_params: i64,
    /// Task-head parameters.
    pub head_params: i64,
    /// Backbone parameters.
    pub backbone_params: i64,
    /// Method parameters as % of the backbone.
    pub method_percent: f64,
    /// Seconds for the whole run (training and evaluation).
    pub wall_seconds: f64,
    /// Training throughput.
    pub train_examples_per_second: f64,
    /// Peak resident memory during the run, MiB.
    pub peak_rss_mib: f64,
    /// Method diagnostics (e.g. gate means).
    pub diagnostics: BTreeMap<String, f64>,
    /// pelt's git revision.
    pub pelt_revision: String,
    /// libtorch version.
    pub libtorch_version: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Host name, CPU model and thread count.
    pub machine: String,
    /// Unix time at which the run finished.
    pub finished_at: u64,
    /// SHA-256 (first 12 bytes, hex) of the task's examples — train, dev and test, texts or pixels and
    /// labels — as loaded: the data a run saw, whatever folder it came from. Classification runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<String>,
    /// The suite this run was trained in, when `pelt sweep --reuse` took it from there: the same task,
    /// method, config hash (config, learning rate, training settings, backbone), data size, seed and
    /// data digest, so the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
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

    /// Saves a record and refreshes `records.jsonl`.
    pub fn save(&self, record: &Record) -> Result<()> {
        self.save_all(std::slice::from_ref(record))
    }

    /// Saves several records and refreshes `records.jsonl` once (it is rebuilt from every record).
    pub fn save_all(&self, records: &[Record]) -> Result<()> {
        for record in records {
            write_atomic(&self.path(&record.key), serde_json::to_string_pretty(record)?.as_bytes())?;
        }
        self.write_jsonl()
    }

    /// Every record of the suite, sorted by key. Files that do not parse are an error naming them.
    pub fn load_all(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let dir = self.dir.join("records");
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
                out.push(
                    serde_json::from_str(&text).with_context(|| format!("{}: not a pelt record", path.display()))?,
                );
            }
        }
        out.sort_by(|a: &Record, b: &Record| a.key.cmp(&b.key));
        Ok(out)
    }

    fn write_jsonl(&self) -> Result<()> {
        // Shards of one suite may finish runs at the same moment: each rewrites the file from every
        // record under this lock, so the last writer holds every record saved before it.
        let lock_path = self.dir.join(".records.lock");
        let lock =
            std::fs::File::create(&lock_path).with_context(|| format!("{}: cannot create", lock_path.display()))?;
        lock.lock().with_context(|| format!("{}: cannot lock", lock_path.display()))?;
        let mut text = String::new();
        for r in self.load_all()? {
            text.push_str(&serde_json::to_string(&r)?);
            text.push('\n');
        }
        write_atomic(&self.dir.join("records.jsonl"), text.as_bytes())
    }
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in MiB (Linux).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the kernel's peak-RSS counter so each run reports its own peak (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Host name, CPU (with its family, model and widest vector instructions) and libtorch's thread count.
pub fn machine() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let cpu = cpu(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    format!("{host}; {cpu}; {} threads", tch::get_num_threads())
}

/// The CPU as `/proc/cpuinfo` describes its first processor: model name, then family, model and the
/// widest vector extension. Virtual machines often give only a generic name ("AMD EPYC"), yet libtorch
/// picks its kernels by the vector extension and the float results of a run follow the kernels: the
/// family, model and extension tell two such machines apart.
fn cpu(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let name = field("model name").unwrap_or_else(|| "unknown cpu".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else if flags.is_empty() {
        "flags unknown"
    } else {
        "no AVX2"
    };
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family} model {model}, {vector})"),
        _ => format!("{name} ({vector})"),
    }
}

/// The git revision of the working tree (`-dirty` when it has changes), or `unknown`.
pub fn revision(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git").args(args).current_dir(root).output().ok().filter(|o| o.status.success())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(o) => {
            let rev = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

/// A finished run of `method` on `task` at 100 examples, seed `seed`, for the tests of the readers of
/// records (tables, plots): status ok, score 50, 150 steps, no curve; tests set what they look at.
#[cfg(test)]
pub(crate) fn test_record(task: &str, method: &str, seed: u64) -> Record {
    serde_json::from_value(serde_json::json!({
        "key": format!("{task}__{method}__100__s{seed}"), "suite": "t", "task": task, "method": method,
        "method_name": method, "method_config": {}, "config_hash": "h", "lr": 1e-3,
        "training": {"eval_every": 50, "batch_size": 16}, "data_size": "100", "seed": seed, "status": "ok",
        "message": null, "metrics": {}, "score": 50.0, "best_dev_score": null, "best_step": null, "steps": 150,
        "train_examples": 100, "dev_examples": 100, "test_examples": 100, "method_params": 0, "head_params": 0,
        "backbone_params": 0, "method_percent": 0.0, "wall_seconds": 1.0, "train_examples_per_second": 1.0,
        "peak_rss_mib": 1.0, "diagnostics": {}, "pelt_revision": "r", "libtorch_version": "2.13.0", "device": "cpu",
        "machine": "m", "finished_at": 0
    }))
    .expect("a whole record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_point_without_a_finite_value_reads_back_as_nan() {
        let point = CurvePoint { step: 50, dev: f64::NAN, train_loss: 0.25 };
        let text = serde_json::to_string(&point).unwrap();
        assert_eq!(text, r#"{"step":50,"dev":null,"train_loss":0.25}"#);
        let back: CurvePoint = serde_json::from_str(&text).unwrap();
        assert!(back.dev.is_nan() && back.step == 50 && back.train_loss == 0.25);
    }

    #[test]
    fn cpu_names_family_model_and_vector_extension() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
                    model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f avx512dq\n\n\
                    processor\t: 1\ncpu family\t: 99\n";
        assert_eq!(cpu(info), "AMD EPYC (family 26 model 2, AVX-512)");
        let older = "model name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: 85\nflags\t: sse2 avx2\n";
        assert_eq!(cpu(older), "Intel(R) Xeon(R) Processor (family 6 model 85, AVX2)");
        assert_eq!(cpu(""), "unknown cpu (flags unknown)");
    }
}
