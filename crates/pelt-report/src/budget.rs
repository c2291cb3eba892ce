//! An equal tuning budget: a method entry that searches its learning rate (`lr: {search: [...]}`, or the
//! experiment's `tuning.lr`) runs one trial per value, each labelled `<label>[lr=<value>]`. Per table
//! cell (task and data size) the trial with the best mean dev score over its seeds is chosen, and its
//! test scores stand in the table under the entry's own label; `budget.md` lists every trial.
//!
//! A diverged seed counts as the floor of every metric (−100: a correlation of −1) in its trial's mean,
//! so a rate that diverges on some seeds loses to one that trains on all.

use pelt_records::{Record, Status};
use std::collections::BTreeMap;

/// The dev score a diverged or failed run counts as.
pub const DIVERGED_DEV: f64 = -100.0;

/// A trial's label split into the entry's label and the learning rate: `lora[lr=1e-3]` → (`lora`, 1e-3).
pub fn parse_trial(label: &str) -> Option<(&str, f64)> {
    let (base, rest) = label.rsplit_once("[lr=")?;
    let value = rest.strip_suffix(']')?.parse::<f64>().ok()?;
    Some((base, value))
}

/// The label of the trial of `label` at `lr` (the inverse of [`parse_trial`]).
pub fn trial_label(label: &str, lr: f64) -> String {
    format!("{label}[lr={lr:e}]")
}

/// One trial of one cell.
#[derive(Debug, Clone)]
struct Trial {
    lr: f64,
    devs: Vec<f64>,
    tests: Vec<f64>,
    records: Vec<Record>,
}

impl Trial {
    fn mean_dev(&self) -> f64 {
        self.devs.iter().sum::<f64>() / self.devs.len().max(1) as f64
    }
}

/// The records with each searched cell reduced to its chosen trial (relabelled to the entry's label),
/// other records unchanged; and the budget page when the suite searched anything.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Records for the tables and plots.
    pub records: Vec<Record>,
    /// `budget.md`: every trial, its dev and test means, the chosen one marked.
    pub report: Option<String>,
    /// A line for the table's caption.
    pub caption: Option<String>,
}

/// Chooses each searched cell's learning rate by mean dev score over seeds.
pub fn choose(records: &[Record]) -> Chosen {
    // (entry label, task, size) → trials by learning rate.
    let mut cells: BTreeMap<(String, String, String), Vec<Trial>> = BTreeMap::new();
    let mut plain = Vec::new();
    for r in records {
        let Some((base, lr)) = parse_trial(&r.method) else {
            plain.push(r.clone());
            continue;
        };
        let trials = cells.entry((base.to_owned(), r.task.clone(), r.data_size.clone())).or_default();
        let at = match trials.iter().position(|t| t.lr == lr) {
            Some(i) => i,
            None => {
                trials.push(Trial { lr, devs: Vec::new(), tests: Vec::new(), records: Vec::new() });
                trials.len() - 1
            }
        };
        let t = &mut trials[at];
        let dev = match (r.status, r.best_dev_score) {
            (Status::Ok, Some(d)) => d,
            _ => DIVERGED_DEV,
        };
        t.devs.push(dev);
        if let Some(s) = r.score.filter(|_| r.status == Status::Ok) {
            t.tests.push(s);
        }
        t.records.push(r.clone());
    }
    if cells.is_empty() {
        return Chosen { records: plain, report: None, caption: None };
    }
    let mut lines = vec![
        "Learning-rate search: each cell's trials by mean best dev score over seeds (a diverged seed counts as \
         −100); the chosen trial (**bold**) gives the table's test score."
            .to_owned(),
        String::new(),
        "| method | task | size | lr | seeds | mean dev | mean test | |".to_owned(),
        "|---|---|---:|---:|---:|---:|---:|---|".to_owned(),
    ];
    let mut budgets: BTreeMap<String, usize> = BTreeMap::new();
    let mut chosen_records = plain;
    for ((base, task, size), mut trials) in cells {
        trials.sort_by(|a, b| a.lr.total_cmp(&b.lr));
        // The best mean dev; on a tie, the smaller rate (listed first).
        let best = trials
            .iter()
            .enumerate()
            .fold(0, |best, (i, t)| if t.mean_dev() > trials[best].mean_dev() { i } else { best });
        let n = budgets.entry(base.clone()).or_default();
        *n = (*n).max(trials.len());
        for (i, t) in trials.iter().enumerate() {
            let test = if t.tests.is_empty() {
                "—".to_owned()
            } else {
                format!("{:.1}", t.tests.iter().sum::<f64>() / t.tests.len() as f64)
            };
            let mark = if i == best { "chosen" } else { "" };
            let lr = if i == best { format!("**{:e}**", t.lr) } else { format!("{:e}", t.lr) };
            lines.push(format!(
                "| {base} | {task} | {size} | {lr} | {} | {:.1} | {test} | {mark} |",
                t.devs.len(),
                t.mean_dev()
            ));
        }
        chosen_records.extend(trials[best].records.iter().cloned().map(|mut r| {
            r.method = base.clone();
            r
        }));
    }
    let spread: Vec<String> = budgets.iter().map(|(m, n)| format!("{m} {n}")).collect();
    let caption = format!(
        "Learning rate chosen per cell by mean dev score over seeds among each method's trials ({}); every trial \
         in budget.md.",
        spread.join(", ")
    );
    lines.push(String::new());
    Chosen { records: chosen_records, report: Some(lines.join("\n")), caption: Some(caption) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, seed: u64, dev: Option<f64>, test: f64) -> Record {
        let mut r = pelt_records::test_record("sst2", label, seed);
        r.best_dev_score = dev;
        r.score = Some(test);
        if dev.is_none() {
            r.status = Status::Diverged;
            r.score = None;
        }
        r
    }

    #[test]
    fn trial_labels_round_trip() {
        assert_eq!(trial_label("lora", 3e-4), "lora[lr=3e-4]");
        assert_eq!(parse_trial("lora[lr=3e-4]"), Some(("lora", 3e-4)));
        assert_eq!(parse_trial("lora@a0.1[lr=1e-3]"), Some(("lora@a0.1", 1e-3)));
        assert_eq!(parse_trial("lora"), None);
        assert_eq!(parse_trial("lora[lr=x]"), None);
    }

    #[test]
    fn each_cell_takes_the_trial_of_best_mean_dev_and_a_diverged_seed_sinks_its_trial() {
        let records = vec![
            // 1e-4: dev 70 and 72 (mean 71), test 60 and 62.
            run("lora[lr=1e-4]", 1, Some(70.0), 60.0),
            run("lora[lr=1e-4]", 2, Some(72.0), 62.0),
            // 1e-3: best single dev (90) but a diverged seed: mean (90 − 100)/2.
            run("lora[lr=1e-3]", 1, Some(90.0), 88.0),
            run("lora[lr=1e-3]", 2, None, 0.0),
            run("bitfit", 1, Some(50.0), 50.0),
        ];
        let chosen = choose(&records);
        let lora: Vec<&Record> = chosen.records.iter().filter(|r| r.method == "lora").collect();
        assert_eq!(lora.len(), 2);
        let devs: Vec<f64> = lora.iter().filter_map(|r| r.best_dev_score).collect();
        assert_eq!(devs, [70.0, 72.0]);
        let tests: Vec<f64> = lora.iter().filter_map(|r| r.score).collect();
        assert_eq!(tests, [60.0, 62.0], "1e-4 wins on mean dev");
        assert!(chosen.records.iter().any(|r| r.method == "bitfit"), "unsearched rows pass through");
        let report = chosen.report.unwrap();
        assert!(report.contains("| lora | sst2 | 100 | **1e-4** | 2 | 71.0 | 61.0 | chosen |"), "{report}");
        assert!(report.contains("| lora | sst2 | 100 | 1e-3 | 2 | -5.0 | 88.0 |"), "{report}");
        assert!(chosen.caption.unwrap().contains("lora 2"));
        assert!(choose(&[run("bitfit", 1, Some(1.0), 1.0)]).report.is_none());
    }
}
