//! pelt's reports, generated from a suite's records and nothing else: comparison tables (Markdown,
//! CSV, LaTeX), the methods' diagnostics, where checkpoint selection found each run at its best, plots
//! (score against data size and against % trainable parameters, dev curves), and the suite's page.
//! It depends on the records only, not on libtorch or the model stack.

#![warn(missing_docs)]

pub mod budget;
pub mod communication;
pub mod cost;
pub mod page;
pub mod pairs;
pub mod plot;
pub mod table;

use anyhow::{anyhow, bail, Context, Result};
use pelt_records::{write_atomic, Loaded, Record, Store};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What the reports need of a suite's experiment file: its name, its caption, and the order of its
/// rows (method labels) and columns (tasks). Read leniently, so any version of an experiment file
/// (the one a sweep saved beside its records, or the file in `experiments/`) gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    /// Suite name (the folder under `results/`).
    pub name: String,
    /// Caption printed above the table.
    pub description: String,
    /// Task names in the file's order.
    pub tasks: Vec<String>,
    /// Method row labels in the file's order.
    pub methods: Vec<String>,
    /// Runs in the grid (methods × tasks × data sizes × seeds), when the file lists all four.
    pub grid: Option<usize>,
    /// Row labels to compare paired by seed, (before, after) (see [`pairs`]).
    pub pairs: Vec<(String, String)>,
    /// Labels of the rows whose one method instance trains on every task together (`shared: true`). A
    /// suite with any makes a multi-task comparison, whose other rows train one instance per task.
    pub shared: Vec<String>,
}

impl Suite {
    /// Reads the parts of an experiment file that reports use.
    pub fn from_yaml(text: &str) -> Result<Suite> {
        #[derive(Deserialize)]
        struct Method {
            method: String,
            #[serde(default)]
            label: Option<String>,
            #[serde(default)]
            lr: Option<serde_yaml::Value>,
            #[serde(default)]
            shared: bool,
        }
        #[derive(Deserialize)]
        struct Tuning {
            #[serde(default)]
            lr: Vec<f64>,
        }
        #[derive(Deserialize)]
        struct File {
            name: String,
            #[serde(default)]
            description: String,
            #[serde(default)]
            tasks: Vec<String>,
            #[serde(default)]
            methods: Vec<Method>,
            #[serde(default)]
            data_sizes: Vec<serde_yaml::Value>,
            #[serde(default)]
            seeds: Vec<serde_yaml::Value>,
            #[serde(default)]
            tuning: Option<Tuning>,
            #[serde(default)]
            pairs: Vec<[String; 2]>,
        }
        let f: File = serde_yaml::from_str(text)?;
        // A searched learning rate runs one trial per rate.
        let trials = |m: &Method| match &m.lr {
            Some(serde_yaml::Value::Mapping(map)) => {
                map.get("search").and_then(|s| s.as_sequence()).map_or(1, Vec::len)
            }
            Some(_) => 1,
            None => f.tuning.as_ref().map_or(1, |t| t.lr.len().max(1)),
        };
        let runs: usize = f.methods.iter().map(trials).sum();
        let grid = runs * f.tasks.len() * f.data_sizes.len() * f.seeds.len();
        let shared =
            f.methods.iter().filter(|m| m.shared).map(|m| m.label.clone().unwrap_or(m.method.clone())).collect();
        let methods = f.methods.into_iter().map(|m| m.label.unwrap_or(m.method)).collect();
        Ok(Suite {
            name: f.name,
            description: f.description,
            tasks: f.tasks,
            methods,
            grid: (grid > 0).then_some(grid),
            pairs: f.pairs.into_iter().map(|[a, b]| (a, b)).collect(),
            shared,
        })
    }
}

/// A suite's folder and, where it can be read, its experiment: from the folder (its saved
/// `experiment.yaml`) or from an experiment file (the folder is then `results/<name>`).
pub fn locate(suite: &Path) -> Result<(PathBuf, Option<Suite>)> {
    if suite.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        let text = std::fs::read_to_string(suite).with_context(|| format!("{}: cannot read", suite.display()))?;
        let s = Suite::from_yaml(&text).map_err(|e| anyhow!("{}: {e}", suite.display()))?;
        Ok((PathBuf::from("results").join(&s.name), Some(s)))
    } else {
        let saved = suite.join("experiment.yaml");
        let s = std::fs::read_to_string(&saved).ok().and_then(|t| Suite::from_yaml(&t).ok());
        Ok((suite.to_path_buf(), s))
    }
}

/// Loads a suite's records for the reports: those that read, and the files left out (see
/// [`left_out`]); a suite with no readable record is an error.
pub fn load_records(suite_dir: &Path) -> Result<Loaded> {
    let loaded = Store::open(suite_dir)?.load()?;
    if loaded.records.is_empty() {
        match loaded.unreadable.first() {
            Some(u) => bail!("{}: no readable records ({}: {})", suite_dir.display(), u.path.display(), u.error),
            None => bail!("{}: no records yet", suite_dir.display()),
        }
    }
    Ok(loaded)
}

/// The warning for the record files left out of the reports (one line each, then the count), or
/// `None` when every file read.
pub fn left_out(loaded: &Loaded) -> Option<String> {
    if loaded.unreadable.is_empty() {
        return None;
    }
    let mut out = String::new();
    for u in &loaded.unreadable {
        out.push_str(&format!("warning: {}: left out: {}\n", u.path.display(), u.error));
    }
    out.push_str(&format!(
        "warning: {} record file{} left out of the reports; the table covers the other {}",
        loaded.unreadable.len(),
        if loaded.unreadable.len() == 1 { "" } else { "s" },
        loaded.records.len()
    ));
    Some(out)
}

/// The table of `records` (after [`budget::choose`]), its caption saying how searched rates were chosen.
pub fn table_of(records: &[Record], exp: Option<&Suite>, chosen: &budget::Chosen) -> Result<table::Table> {
    let mut t = table::build(records, exp)?;
    if let Some(c) = &chosen.caption {
        t.caption.push('\n');
        t.caption.push_str(c);
    }
    Ok(t)
}

/// Rewrites the generated part of the suite's page from its table: the Markdown table with its caption,
/// then the differences beyond seed noise, then the experiment's paired comparisons (`pairs`).
fn write_page(suite_dir: &Path, exp: Option<&Suite>, t: &table::Table, records: &[Record]) -> Result<PathBuf> {
    let mut text = t.render(table::Format::Markdown);
    if let Some(s) = table::separated(t) {
        text.push('\n');
        text.push_str(&s);
    }
    if let Some(p) = exp.and_then(|e| pairs::table(records, &e.pairs)) {
        text.push_str("\n## Before and after\n\n");
        text.push_str(&p);
    }
    let name = exp.map_or_else(|| suite_dir.display().to_string(), |e| e.name.clone());
    page::write(suite_dir, &page::Page { name: &name, table: &text })
}

/// Writes the suite's table files (Markdown, CSV, LaTeX), its diagnostics and selection pages, the
/// differences beyond seed noise (`noise.md`), its page (`README.md`, the hand-written reading kept),
/// what it cost (`cost.md`) and `records.jsonl` (the records, one per line) next to its records, and
/// returns the Markdown of the tables.
pub fn write_tables(suite_dir: &Path, records: &[Record], exp: Option<&Suite>) -> Result<String> {
    Store::open(suite_dir)?.write_jsonl(records)?;
    // What the suite cost counts every trial; the tables show each searched cell's chosen one.
    write_atomic(&suite_dir.join("cost.md"), cost::report(records, exp).as_bytes())?;
    let chosen = budget::choose(records);
    write_or_remove(&suite_dir.join("budget.md"), chosen.report.as_deref())?;
    let records = &chosen.records[..];
    let t = table_of(records, exp, &chosen)?;
    for (format, ext) in [(table::Format::Markdown, "md"), (table::Format::Csv, "csv"), (table::Format::Latex, "tex")] {
        write_atomic(&suite_dir.join(format!("table.{ext}")), t.render(format).as_bytes())?;
    }
    let mut text = t.render(table::Format::Markdown);
    if let Some(d) = table::diagnostics(records, exp) {
        write_atomic(&suite_dir.join("diagnostics.md"), d.as_bytes())?;
        text.push('\n');
        text.push_str(&d);
    }
    if let Some(s) = table::selection(records, &t) {
        write_atomic(&suite_dir.join("selection.md"), s.as_bytes())?;
        text.push('\n');
        text.push_str(&s);
    }
    if let Some(c) = communication::table(records, exp.map_or(&[], |e| e.methods.as_slice())) {
        write_atomic(&suite_dir.join("communication.md"), c.as_bytes())?;
        text.push('\n');
        text.push_str(&c);
    }
    write_or_remove(&suite_dir.join("metrics.md"), table::per_metric(records, exp)?.as_deref())?;
    for (file, page) in
        [("noise.md", table::separated(&t)), ("pairs.md", exp.and_then(|e| pairs::table(records, &e.pairs)))]
    {
        write_or_remove(&suite_dir.join(file), page.as_deref())?;
        if let Some(p) = page {
            text.push('\n');
            text.push_str(&p);
        }
    }
    write_page(suite_dir, exp, &t, records)?;
    Ok(text)
}

/// Writes a generated page that a suite may or may not have; without one, removes the page an earlier
/// table left, so that a stale page never outlives its table.
fn write_or_remove(path: &Path, page: Option<&str>) -> Result<()> {
    match page {
        Some(p) => write_atomic(path, p.as_bytes()),
        None => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
    }
}

/// Writes the suite's plots into `out` with the charts' font, refreshes its page (which shows them) and
/// returns the plots' paths; `families` groups the methods into the score-vs-size chart's panels.
pub fn write_plots(
    suite_dir: &Path,
    records: &[Record],
    exp: Option<&Suite>,
    families: &plot::Families,
    out: &Path,
    font: &Path,
) -> Result<Vec<PathBuf>> {
    let chosen = budget::choose(records);
    let records = &chosen.records[..];
    let t = table_of(records, exp, &chosen)?;
    let name = exp.map_or_else(|| suite_dir.display().to_string(), |e| e.name.clone());
    let comm = plot::communication_curves(records);
    let files = plot::write(&t, &plot::curves(records), &comm, families, &name, out, font)?;
    write_page(suite_dir, exp, &t, records)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_read_labels_and_order_from_any_experiment_file() {
        let text = "name: s\ndescription: >\n  two\n  lines\ntasks: [rte, sst2]\nseeds: [1]\nunknown_field: 3\n\
                    methods:\n  - method: lora\n    lr: 1e-3\n  - method: houlsby\n    label: adapter\n    lr: 1e-3\n\
                    \x20 - method: lora\n    label: lora (shared)\n    shared: true\n";
        let s = Suite::from_yaml(text).unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.description, "two lines\n");
        assert_eq!(s.tasks, ["rte", "sst2"]);
        assert_eq!(s.methods, ["lora", "adapter", "lora (shared)"]);
        assert_eq!(s.shared, ["lora (shared)"]);
        assert!(Suite::from_yaml("tasks: [rte]").is_err(), "a suite needs its name");
    }

    #[test]
    fn a_suite_with_a_corrupt_record_reports_the_rest_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save(&pelt_records::test_record("rte", "lora", 1)).unwrap();
        std::fs::write(dir.path().join("records/broken.json"), "{").unwrap();
        let r = load_records(dir.path()).unwrap();
        assert_eq!(r.records.len(), 1);
        let w = left_out(&r).unwrap();
        assert!(w.contains("broken.json: left out: not a pelt record"), "{w}");
        assert!(w.ends_with("1 record file left out of the reports; the table covers the other 1"), "{w}");
        std::fs::remove_file(dir.path().join("records/rte__lora__100__s1.json")).unwrap();
        let e = load_records(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no readable records") && e.contains("broken.json"), "{e}");
    }
}
