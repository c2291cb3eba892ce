//! What a suite cost to run, from its records: run time (the records' wall time summed), the wall time
//! from the first run's start to the last run's end, runs per hour, per method; and, where the
//! experiment is known, what the rest of its grid would take at the same pace — a pilot's numbers for
//! sizing a cluster request (`pelt table --cost`).

use crate::Suite;
use pelt_records::Record;
use std::collections::BTreeMap;

/// Run time, wall time and pace of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Trainings counted: a shared run writes one record per task, and its records count as one.
    pub runs: usize,
    /// Records counted (more than `runs` where shared runs are among them).
    pub records: usize,
    /// Sum of their wall times, seconds.
    pub run_seconds: f64,
    /// From the earliest start (finish time less wall time) to the latest finish, seconds.
    pub elapsed_seconds: f64,
}

impl Pace {
    /// The pace of `records` (those trained in the suite: runs taken over by `--reuse` cost nothing
    /// here and carry another suite's times).
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Pace {
        let mut pace = Pace { runs: 0, records: 0, run_seconds: 0.0, elapsed_seconds: 0.0 };
        let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut trainings = 0.0;
        for r in records.into_iter().filter(|r| r.reused_from.is_none()) {
            // Each of a shared run's records carries the whole run's wall time: a share of it each, so
            // the run is counted once.
            let share = 1.0 / shared_tasks(r);
            pace.records += 1;
            trainings += share;
            pace.run_seconds += r.wall_seconds * share;
            first = first.min(r.finished_at as f64 - r.wall_seconds);
            last = last.max(r.finished_at as f64);
        }
        pace.runs = trainings.round() as usize;
        if pace.records > 0 {
            // Finish times are whole seconds; a suite of one short run still took its wall time.
            pace.elapsed_seconds = (last - first).max(pace.run_seconds / trainings);
        }
        pace
    }

    /// Runs per hour of wall time.
    pub fn runs_per_hour(&self) -> f64 {
        self.runs as f64 * 3600.0 / self.elapsed_seconds.max(1e-9)
    }

    /// Mean run time, seconds.
    pub fn mean_seconds(&self) -> f64 {
        self.run_seconds / (self.runs.max(1)) as f64
    }

    /// How many runs went on at once on average (run time over wall time): the shards' parallelism.
    pub fn concurrency(&self) -> f64 {
        self.run_seconds / self.elapsed_seconds.max(1e-9)
    }
}

/// How many tasks the training behind `r` trained at once (a shared run's `shared_tasks` diagnostic; 1
/// for any other run).
fn shared_tasks(r: &Record) -> f64 {
    r.diagnostics.get("shared_tasks").copied().filter(|n| *n >= 1.0).unwrap_or(1.0)
}

/// The Markdown cost report of a suite's records; `suite` (its experiment) adds the sizing of the rest
/// of its grid.
pub fn report(records: &[Record], suite: Option<&Suite>) -> String {
    let pace = Pace::of(records);
    let reused = records.len() - pace.records;
    let mut out = if pace.records == 0 {
        format!("Cost: no runs trained here; {reused} taken over by --reuse.\n\n")
    } else {
        format!(
        "Cost: {} runs trained here{}{}; run time {:.2} h (mean {:.1} min per run); wall time {:.2} h from the first \
         run's start to the last run's end; {:.1} runs per hour ({:.1} running at once on average).\n\n",
        pace.runs,
        if pace.records > pace.runs {
            format!(" ({} records: a shared run writes one per task)", pace.records)
        } else {
            String::new()
        },
        if reused > 0 { format!(" ({reused} more taken over by --reuse, not counted)") } else { String::new() },
        pace.run_seconds / 3600.0,
        pace.mean_seconds() / 60.0,
        pace.elapsed_seconds / 3600.0,
        pace.runs_per_hour(),
        pace.concurrency(),
        )
    };
    let mut by_method: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.reused_from.is_none()) {
        by_method.entry(r.method.as_str()).or_default().push(r);
    }
    out.push_str("| method | runs | mean min per run | run hours |\n|---|---:|---:|---:|\n");
    let order: Vec<&str> = match suite {
        Some(s) if !s.methods.is_empty() => s.methods.iter().map(String::as_str).collect(),
        _ => by_method.keys().copied().collect(),
    };
    for m in order {
        if let Some(rs) = by_method.get(m) {
            let p = Pace::of(rs.iter().copied());
            out.push_str(&format!(
                "| {m} | {} | {:.1} | {:.2} |\n",
                p.runs,
                p.mean_seconds() / 60.0,
                p.run_seconds / 3600.0
            ));
        }
    }
    if let Some(grid) = suite.and_then(|s| s.grid) {
        let left = grid.saturating_sub(records.len());
        if left == 0 {
            out.push_str(&format!("\nEvery run of the grid's {grid} has a record.\n"));
            return out;
        }
        // Every record's wall time is a measurement of its run, taken over or not; a shared run's records
        // each take their share of it, as the grid counts them one by one.
        let mean = records.iter().map(|r| r.wall_seconds / shared_tasks(r)).sum::<f64>() / records.len().max(1) as f64;
        let hours = left as f64 * mean / 3600.0;
        out.push_str(&format!(
            "\nSizing: the grid has {grid} runs, {} have records (mean {:.1} min per run); the other {left} need about \
             {hours:.1} run-hours at that mean, {:.1} hours of wall time on 10 shards of this speed, {:.1} on 100. The \
             mean is the records' so far: a pilot that samples the grid evenly (every method, size and task, one \
             seed) predicts the rest best.\n",
            records.len(),
            mean / 60.0,
            hours / 10.0,
            hours / 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_records::test_record;

    #[test]
    fn pace_sums_run_time_and_spans_wall_time_leaving_out_reused_runs() {
        let mut runs: Vec<Record> = (0..4).map(|s| test_record("rte", "lora", s)).collect();
        // Two shards side by side: runs of 100 s ending at 100, 200 (shard 0) and 110, 210 (shard 1).
        for (r, end) in runs.iter_mut().zip([100, 200, 110, 210]) {
            r.wall_seconds = 100.0;
            r.finished_at = end;
        }
        let mut reused = test_record("rte", "lora", 9);
        reused.reused_from = Some("other".into());
        reused.wall_seconds = 1e6;
        runs.push(reused);
        let pace = Pace::of(&runs);
        assert_eq!((pace.runs, pace.run_seconds, pace.elapsed_seconds), (4, 400.0, 210.0));
        assert!((pace.concurrency() - 400.0 / 210.0).abs() < 1e-12);
        assert!((pace.runs_per_hour() - 4.0 * 3600.0 / 210.0).abs() < 1e-9);
        let suite = Suite { methods: vec!["lora".into()], grid: Some(25), ..Suite::default() };
        let text = report(&runs, Some(&suite));
        assert!(text.contains("4 runs trained here (1 more taken over by --reuse"), "{text}");
        assert!(text.contains("| lora | 4 | 1.7 | 0.11 |"), "{text}");
        // 20 runs left at the mean of all 5 records' wall times (the reused one's included).
        let mean = (400.0 + 1e6) / 5.0;
        assert!(text.contains(&format!("the other 20 need about {:.1} run-hours", 20.0 * mean / 3600.0)), "{text}");
    }

    #[test]
    fn a_shared_runs_records_count_as_one_training() {
        // One shared run of 300 s over two tasks (a record per task, each with the run's wall time) and
        // one single run of 100 s.
        let mut runs = Vec::new();
        for task in ["evqa", "evqa_caption"] {
            let mut r = test_record(task, "lora (shared)", 1);
            r.wall_seconds = 300.0;
            r.finished_at = 300;
            r.diagnostics.insert("shared_tasks".into(), 2.0);
            runs.push(r);
        }
        let mut single = test_record("evqa", "lora", 1);
        single.wall_seconds = 100.0;
        single.finished_at = 400;
        runs.push(single);
        let pace = Pace::of(&runs);
        assert_eq!((pace.runs, pace.records, pace.run_seconds, pace.elapsed_seconds), (2, 3, 400.0, 400.0));
        let suite = Suite { methods: vec!["lora".into(), "lora (shared)".into()], grid: Some(5), ..Suite::default() };
        let text = report(&runs, Some(&suite));
        assert!(text.contains("2 runs trained here (3 records: a shared run writes one per task)"), "{text}");
        assert!(text.contains("| lora (shared) | 1 | 5.0 | 0.08 |"), "{text}");
        // The two cells left, at the records' mean share: (150 + 150 + 100) / 3 s each.
        assert!(
            text.contains(&format!("the other 2 need about {:.1} run-hours", 2.0 * 400.0 / 3.0 / 3600.0)),
            "{text}"
        );
    }
}
