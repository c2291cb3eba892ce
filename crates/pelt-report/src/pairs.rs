//! Paired comparisons an experiment names (`pairs: [[before, after], …]`): for each pair of rows and each
//! column, the two rows' means over seeds and the after − before difference paired by seed, with its
//! standard error — the before / after table of a change to a method (issue 42's fidelity review), where
//! the seeds share their samples and so their noise.

use pelt_records::{Record, Status};
use std::collections::BTreeMap;

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_std(x: &[f64]) -> (f64, f64) {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let var = if x.len() > 1 { x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64 } else { 0.0 };
    (m, var.sqrt())
}

/// The Markdown table of `pairs` (row labels: before, after) over `records` (each searched cell's chosen
/// trial already picked), columns in the order the records give them; `None` when no pair has a column
/// where both rows finished a common seed.
pub fn table(records: &[Record], pairs: &[(String, String)]) -> Option<String> {
    // (row, task, size) → seed → score, and the columns in first-seen order.
    let mut scores: BTreeMap<(&str, &str, &str), BTreeMap<u64, f64>> = BTreeMap::new();
    let mut columns: Vec<(&str, &str)> = Vec::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        if let Some(s) = r.score {
            scores.entry((&r.method, &r.task, &r.data_size)).or_default().insert(r.seed, s);
            if !columns.contains(&(r.task.as_str(), r.data_size.as_str())) {
                columns.push((&r.task, &r.data_size));
            }
        }
    }
    let mut out = String::from(
        "| before → after | column | before | after | after − before, paired by seed (± s.e., pairs) |\n|---|---|---:|---:|---:|\n",
    );
    let mut any = false;
    let cell = |x: &[f64]| {
        let (m, s) = mean_std(x);
        format!("{m:.1} ± {s:.1} ({})", x.len())
    };
    for (before, after) in pairs {
        let mut all: Vec<f64> = Vec::new();
        for &(task, size) in &columns {
            let (Some(b), Some(a)) =
                (scores.get(&(before.as_str(), task, size)), scores.get(&(after.as_str(), task, size)))
            else {
                continue;
            };
            let diffs: Vec<f64> = a.iter().filter_map(|(seed, x)| b.get(seed).map(|y| x - y)).collect();
            if diffs.is_empty() {
                continue;
            }
            any = true;
            all.extend(&diffs);
            let (m, s) = mean_std(&diffs);
            let se = s / (diffs.len() as f64).sqrt();
            let b: Vec<f64> = b.values().copied().collect();
            let a: Vec<f64> = a.values().copied().collect();
            out.push_str(&format!(
                "| {before} → {after} | {task} {size} | {} | {} | {m:+.1} ± {se:.1} ({}) |\n",
                cell(&b),
                cell(&a),
                diffs.len()
            ));
        }
        if !all.is_empty() {
            let (m, s) = mean_std(&all);
            out.push_str(&format!(
                "| {before} → {after} | all columns |  |  | **{m:+.1} ± {:.1} ({})** |\n",
                s / (all.len() as f64).sqrt(),
                all.len()
            ));
        }
    }
    out.push_str(
        "\nCells: test score, mean ± std over seeds (seed count); the difference is the mean over the seeds both \
         rows finished of after − before, with its standard error (std / √pairs); \"all columns\" pools every \
         pair of the row's columns.\n",
    );
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_records::test_record;

    #[test]
    fn pairs_are_compared_seed_by_seed_per_column_and_pooled() {
        let run = |method: &str, task: &str, seed: u64, score: f64| Record {
            score: Some(score),
            ..test_record(task, method, seed)
        };
        let records = vec![
            run("mam (before)", "sst2", 1, 50.0),
            run("mam (before)", "sst2", 2, 60.0),
            run("mam (before)", "sst2", 3, 55.0),
            run("mam_glue", "sst2", 1, 70.0),
            run("mam_glue", "sst2", 2, 74.0),
            run("mam (before)", "stsb", 1, 10.0),
            run("mam_glue", "stsb", 1, 40.0),
            run("lora", "sst2", 1, 80.0),
        ];
        let text = table(&records, &[("mam (before)".into(), "mam_glue".into())]).unwrap();
        // SST-2: seeds 1 and 2 pair (+20, +14): mean +17, std 4.24, s.e. 3.0; seed 3 has no partner.
        assert!(
            text.contains("| mam (before) → mam_glue | sst2 100 | 55.0 ± 5.0 (3) | 72.0 ± 2.8 (2) | +17.0 ± 3.0 (2) |"),
            "{text}"
        );
        assert!(
            text.contains("| mam (before) → mam_glue | stsb 100 | 10.0 ± 0.0 (1) | 40.0 ± 0.0 (1) | +30.0 ± 0.0 (1) |"),
            "{text}"
        );
        // Pooled: +20, +14, +30: mean 21.3, std 8.08, s.e. 4.7.
        assert!(text.contains("| mam (before) → mam_glue | all columns |  |  | **+21.3 ± 4.7 (3)** |"), "{text}");
        assert!(table(&records, &[("lora".into(), "nothing".into())]).is_none());
    }
}
