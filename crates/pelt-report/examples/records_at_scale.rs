//! Records at cluster scale: `P` processes write `N` synthetic records into one suite side by side, as a
//! Slurm array's tasks would, then the suite's tables are built from them. Prints the write time of each
//! process (its first and last tenth apart, to show that a write does not grow with the suite), the
//! table build time, and peak memory. `just bench-records` runs it at N = 100,000, P = 4.
//!
//!     cargo run -p pelt-report --example records_at_scale -- DIR [N] [P]

use anyhow::{bail, Context, Result};
use pelt_records::{test_record, CurvePoint, Store};
use std::path::Path;
use std::time::Instant;

/// Peak resident memory of this process in MiB (Linux's VmHWM).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The grid cell of record `i`: 8 tasks × 25 methods × 5 sizes, then seeds.
fn record(i: usize) -> pelt_records::Record {
    const TASKS: [&str; 8] = ["sst2", "rte", "stsb", "cola", "mrpc", "qnli", "qqp", "mnli"];
    const SIZES: [&str; 5] = ["100", "500", "1000", "2000", "all"];
    let (task, method, size, seed) =
        (TASKS[i % 8], format!("m{:02}", (i / 8) % 25), SIZES[(i / 200) % 5], (i / 1000) as u64);
    let mut r = test_record(task, &method, seed);
    r.key = format!("{task}__{method}__{size}__s{seed}__0123456789ab");
    r.data_size = size.to_owned();
    r.score = Some(50.0 + (i % 97) as f64 * 0.3);
    r.metrics = [("accuracy".to_owned(), r.score.unwrap_or(0.0))].into();
    r.method_config = serde_json::json!({"r": 8, "alpha": 16.0, "dropout": 0.1, "targets": ["query", "value"]});
    // A real record's dev curve: an evaluation every 50 of 500 steps.
    r.curve = (1..=10).map(|k| CurvePoint { step: 50 * k, dev: 40.0 + k as f64, train_loss: 1.0 / k as f64 }).collect();
    r.best_dev_score = Some(50.0);
    r.best_step = Some(500);
    r.wall_seconds = 60.0 + (i % 13) as f64;
    r.finished_at = 1_800_000_000 + i as u64;
    r
}

/// One writer: every `p`-th of the `n` records from `start`, each saved as a run saves it.
fn write(dir: &Path, start: usize, p: usize, n: usize) -> Result<()> {
    let store = Store::open(dir)?;
    let mine: Vec<usize> = (start..n).step_by(p).collect();
    let tenth = (mine.len() / 10).max(1);
    let (mut first, mut last) = (0.0, 0.0);
    let started = Instant::now();
    for (j, &i) in mine.iter().enumerate() {
        let t = Instant::now();
        store.save(&record(i))?;
        let dt = t.elapsed().as_secs_f64();
        if j < tenth {
            first += dt;
        } else if j >= mine.len() - tenth {
            last += dt;
        }
    }
    println!(
        "writer {start}: {} records in {:.1} s; mean write {:.0} µs over the first tenth, {:.0} µs over the last; peak {:.0} MiB",
        mine.len(),
        started.elapsed().as_secs_f64(),
        1e6 * first / tenth as f64,
        1e6 * last / tenth as f64,
        peak_mib()
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--writer") {
        let (dir, start, p, n) = (&args[2], args[3].parse()?, args[4].parse()?, args[5].parse()?);
        return write(Path::new(dir), start, p, n);
    }
    let Some(dir) = args.get(1) else { bail!("usage: records_at_scale DIR [N] [P]") };
    let n: usize = args.get(2).map_or(Ok(100_000), |a| a.parse())?;
    let p: usize = args.get(3).map_or(Ok(4), |a| a.parse())?;
    let dir = Path::new(dir);
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children: Vec<_> = (0..p)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(["--writer", &dir.display().to_string(), &i.to_string(), &p.to_string(), &n.to_string()])
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for mut c in children {
        if !c.wait()?.success() {
            bail!("a writer failed");
        }
    }
    println!("{n} records from {p} processes in {:.1} s", started.elapsed().as_secs_f64());
    let t = Instant::now();
    let loaded = pelt_report::load_records(dir)?;
    let load_s = t.elapsed().as_secs_f64();
    let text = pelt_report::write_tables(dir, &loaded.records, None)?;
    println!(
        "table of {} records: {:.1} s (reading the records {:.1} s), {} lines of Markdown; peak {:.0} MiB",
        loaded.records.len(),
        t.elapsed().as_secs_f64(),
        load_s,
        text.lines().count(),
        peak_mib()
    );
    Ok(())
}
