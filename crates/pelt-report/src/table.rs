//! Comparison tables generated from the records (never edited by hand): rows are methods with their
//! trainable parameters, columns task × data size, cells mean ± std over seeds with the seed count.

use crate::Suite;
use anyhow::Result;
use pelt_records::{DataSize, Record, Status};
use polars::prelude::*;
use std::collections::BTreeMap;

/// Output format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GitHub Markdown.
    Markdown,
    /// Comma-separated values (one row per method, mean and std columns per cell).
    Csv,
    /// A LaTeX tabular.
    Latex,
}

/// One aggregated cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Mean test score.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
    /// Seeds that finished ok.
    pub n: u32,
}

/// The aggregated table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Caption lines.
    pub caption: String,
    /// Row labels with method params and % of the backbone.
    pub rows: Vec<(String, i64, f64)>,
    /// Column keys (task, size label).
    pub columns: Vec<(String, String)>,
    /// Cells by (row, column).
    pub cells: BTreeMap<(String, (String, String)), Cell>,
    /// Runs that diverged or failed, as notes.
    pub notes: Vec<String>,
}

/// The records as a polars frame (one row per run), the form `pelt table` aggregates.
pub fn frame(records: &[Record]) -> PolarsResult<DataFrame> {
    df!(
        "method" => records.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
        "task" => records.iter().map(|r| r.task.clone()).collect::<Vec<_>>(),
        "data_size" => records.iter().map(|r| r.data_size.clone()).collect::<Vec<_>>(),
        "seed" => records.iter().map(|r| r.seed as i64).collect::<Vec<_>>(),
        "status" => records.iter().map(|r| format!("{:?}", r.status).to_lowercase()).collect::<Vec<_>>(),
        "score" => records.iter().map(|r| r.score).collect::<Vec<_>>(),
        "method_params" => records.iter().map(|r| r.method_params).collect::<Vec<_>>(),
        "method_percent" => records.iter().map(|r| r.method_percent).collect::<Vec<_>>(),
    )
}

/// Records whose cell (label, task, data size) holds runs of more than one configuration — a method's
/// defaults changed under an unchanged label, or the experiment file was edited — must not be averaged
/// together: the configuration trained last keeps the label, every other one is relabelled
/// `label (earlier config <first 8 of its hash>)`, so the table shows them beside each other.
pub fn split_configurations(records: &[Record]) -> Vec<Record> {
    let mut latest: BTreeMap<(&str, &str, &str), (u64, &str)> = BTreeMap::new();
    for r in records {
        let cell = latest.entry((&r.method, &r.task, &r.data_size)).or_insert((r.finished_at, &r.config_hash));
        if (r.finished_at, r.config_hash.as_str()) > (cell.0, cell.1) {
            *cell = (r.finished_at, &r.config_hash);
        }
    }
    records
        .iter()
        .map(|r| {
            let current = latest[&(r.method.as_str(), r.task.as_str(), r.data_size.as_str())].1;
            if r.config_hash == current {
                return r.clone();
            }
            let short: String = r.config_hash.chars().take(8).collect();
            Record { method: format!("{} (earlier config {short})", r.method), ..r.clone() }
        })
        .collect()
}

/// Generation suites (summarization's ROUGE-1/2/L, data-to-text's BLEU, chrF++ and ROUGE-L and
/// WebNLG's seen / unseen parts): one table per test metric, in that order, as `metrics.md` holds them;
/// `None` for suites scored by one task metric.
pub fn per_metric(records: &[Record], exp: Option<&Suite>) -> Result<Option<String>> {
    const ORDER: [&str; 5] = ["bleu", "chrf_pp", "rougeL", "rouge1", "rouge2"];
    let ok = || records.iter().filter(|r| r.status == Status::Ok);
    if !ok().any(|r| r.metrics.contains_key("rougeL")) {
        return Ok(None);
    }
    let mut names: Vec<&str> = ok().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    names.sort_by_key(|n| {
        let (base, part) = n.rsplit_once('_').filter(|(_, p)| matches!(*p, "seen" | "unseen")).unwrap_or((n, ""));
        (ORDER.iter().position(|o| *o == base).unwrap_or(ORDER.len()), part.to_owned(), n.to_string())
    });
    names.dedup();
    let parts = names.iter().any(|n| n.ends_with("_seen") || n.ends_with("_unseen"));
    let mut out = format!(
        "Test metrics of the generation runs, one table per metric (cells ×100, mean ± std over seeds, as in the \
         main table{}).\n",
        if parts { "; `_seen` / `_unseen`: WebNLG's test items of categories seen / not seen in training" } else { "" }
    );
    for name in names {
        let t = build_on(records, exp, Some(name))?;
        out.push_str(&format!("\n## {name}\n\n{}", t.render(Format::Markdown)));
    }
    Ok(Some(out))
}

/// Aggregates records into a table; `exp` (when known) fixes the row and column order.
pub fn build(records: &[Record], exp: Option<&Suite>) -> Result<Table> {
    build_on(records, exp, None)
}

/// As [`build`], with cells from one test metric of the records (`rouge2`, `accuracy`) instead of the
/// task score; runs without that metric are left out.
pub fn build_on(records: &[Record], exp: Option<&Suite>, metric: Option<&str>) -> Result<Table> {
    let picked: Vec<Record>;
    let records = match metric {
        Some(m) => {
            picked = records
                .iter()
                .filter_map(|r| r.metrics.get(m).map(|&v| Record { score: Some(v), ..r.clone() }))
                .collect();
            if picked.is_empty() {
                anyhow::bail!("no record has the metric `{m}`");
            }
            &picked
        }
        None => records,
    };
    // One group per (method, task, size) of the runs that finished ok. Polars' eager group-by with the
    // aggregations its lazy engine runs (the `lazy` feature, with its query planner, doubled the cold
    // build for this one query).
    let split = split_configurations(records);
    let df = frame(&split)?;
    let ok = df.column("status")?.str()?.equal("ok");
    let df = df.filter(&ok)?;
    let by = df.group_by_stable(["method", "task", "data_size"])?;
    let groups = by.get_groups();
    let keys = by.keys();
    let (score, params, percent) = (df.column("score")?, df.column("method_params")?, df.column("method_percent")?);
    // SAFETY: the groups were computed on `df` itself, so every index in them is in bounds for its
    // columns (the aggregations skip the bounds checks).
    let (means, stds, params, percents) = unsafe {
        (score.agg_mean(groups), score.agg_std(groups, 1), params.agg_first(groups), percent.agg_first(groups))
    };
    // Seeds with a score, per group (polars' valid-count aggregation counts the whole column when it
    // has no nulls).
    let scores = score.f64()?;
    let has_score = |i: IdxSize| scores.get(i as usize).is_some();
    let counts: Vec<u32> = groups
        .iter()
        .map(|g| match g {
            GroupsIndicator::Idx((_, all)) => all.iter().filter(|&&i| has_score(i)).count() as u32,
            GroupsIndicator::Slice([first, len]) => (first..first + len).filter(|&i| has_score(i)).count() as u32,
        })
        .collect();
    let (methods, tasks, sizes) = (keys[0].str()?, keys[1].str()?, keys[2].str()?);
    let (means, stds, percents) = (means.f64()?, stds.f64()?, percents.f64()?);
    let params = params.i64()?;

    let mut cells = BTreeMap::new();
    let mut row_info: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for (i, &n) in counts.iter().enumerate() {
        let (Some(m), Some(t), Some(z)) = (methods.get(i), tasks.get(i), sizes.get(i)) else { continue };
        let cell = Cell { mean: means.get(i).unwrap_or(f64::NAN), std: stds.get(i).unwrap_or(0.0), n };
        cells.insert((m.to_owned(), (t.to_owned(), z.to_owned())), cell);
        row_info.insert(m.to_owned(), (params.get(i).unwrap_or(0), percents.get(i).unwrap_or(0.0)));
    }

    // In a multi-task comparison (a suite with shared rows) a row that trains one instance per task
    // costs every task's instance, as VL-Adapter counts its per-task adapters; the tasks' counts may
    // differ (an encoder for a classifier, an encoder-decoder for a generator), so one task's count would
    // understate the row. % is then of the largest backbone the row's runs used.
    let multi_task = exp.filter(|e| !e.shared.is_empty());
    if let Some(e) = multi_task {
        let mut per_task: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for r in split.iter().filter(|r| r.status == Status::Ok) {
            per_task.entry((&r.method, &r.task)).or_insert((r.method_params, r.backbone_params));
        }
        for (row, info) in row_info.iter_mut().filter(|(row, _)| !e.shared.contains(row)) {
            let own = per_task.iter().filter(|((m, _), _)| m == row).map(|(_, v)| *v);
            let (sum, largest) = own.fold((0, 0), |(s, b), (p, bb)| (s + p, b.max(bb)));
            *info = (sum, if largest > 0 { 100.0 * sum as f64 / largest as f64 } else { 0.0 });
        }
    }

    // Rows in the experiment's method order, else by trainable parameters (largest first).
    let mut rows: Vec<(String, i64, f64)> = row_info.iter().map(|(m, (p, pc))| (m.clone(), *p, *pc)).collect();
    let method_rank = |m: &str| exp.and_then(|e| e.methods.iter().position(|s| s == m)).unwrap_or(usize::MAX);
    rows.sort_by(|a, b| method_rank(&a.0).cmp(&method_rank(&b.0)).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    let task_rank = |t: &str| exp.and_then(|e| e.tasks.iter().position(|x| x == t)).unwrap_or(usize::MAX);
    let mut columns: Vec<(String, String)> = cells.keys().map(|(_, c)| c.clone()).collect();
    columns.sort_by(|a, b| {
        let size = |z: &str| DataSize::parse(z).map(DataSize::order).unwrap_or((9, 0));
        task_rank(&a.0).cmp(&task_rank(&b.0)).then(a.0.cmp(&b.0)).then(size(&a.1).cmp(&size(&b.1)))
    });
    columns.dedup();

    let mut notes = Vec::new();
    for r in records.iter().filter(|r| r.status != Status::Ok) {
        notes.push(format!(
            "{} {} {} seed {}: {:?} — {}",
            r.method,
            r.task,
            r.data_size,
            r.seed,
            r.status,
            r.message.as_deref().unwrap_or("")
        ));
    }
    let backbone = records.iter().map(|r| r.backbone_params).max().unwrap_or(0);
    let mut caption = exp.map(|e| e.description.trim().to_owned()).unwrap_or_default();
    if !caption.is_empty() {
        caption.push('\n');
    }
    let summarizing = records.iter().any(|r| r.metrics.contains_key("rougeL"));
    let data_to_text = records.iter().any(|r| r.metrics.contains_key("bleu"));
    let grounding = records.iter().any(|r| r.metrics.contains_key("r1_iou0.5"));
    let vision_language = records.iter().any(|r| r.metrics.contains_key("accuracy_yes_no"));
    let (what, head) = match (metric, summarizing) {
        (Some(m), _) => (format!("test {m} ×100"), "the task head"),
        (None, false) if vision_language => (
            "test accuracy ×100 for questions, exact match ×100 for generated captions (the yes / no and other \
             questions' accuracies and the captions' colour and shape accuracies are in the records)"
                .to_owned(),
            "the visual projection, the answer classifier and a warm-started decoder's new cross-attention and \
             output transform, which train in every run",
        ),
        (None, false) if grounding => (
            "test R@1 at temporal IoU ≥ 0.5 (×100; R@1 at 0.3 and 0.7 and the mean IoU are in the records)".to_owned(),
            "the grounding model (frame projection, temporal encoder, span head), which trains in every run",
        ),
        (None, true) if data_to_text => (
            "test score (mean of corpus BLEU, chrF++ and ROUGE-L F1 ×100 against every reference)".to_owned(),
            "the task head, a warm-started decoder's new cross-attention and output transform, and a content planner",
        ),
        (None, true) => (
            "test score (mean of ROUGE-1, ROUGE-2 and ROUGE-L F1 ×100)".to_owned(),
            "the task head and a warm-started decoder's new cross-attention and output transform",
        ),
        (None, false) => (
            "test score (task metric ×100; mean of a task's two metrics where it has two, as GLUE does)".to_owned(),
            "the task head",
        ),
    };
    caption.push_str(&format!(
        "Cells: {what}, mean ± std over seeds, seed count in parentheses; the best mean of each column in bold (Markdown). \
         Params: trainable method parameters excluding {head}; % of the backbone's {backbone} parameters."
    ));
    if multi_task.is_some() {
        caption.push_str(
            " Multi-task: a (shared) row is one method instance trained on every task; any other row trains one \
             instance per task, and its params are the sum over the tasks' instances, its % of the largest backbone \
             its runs used.",
        );
    }
    Ok(Table { caption, rows, columns, cells, notes })
}

impl Table {
    /// Mean over columns of a row's cell means, when the row has every column.
    fn average(&self, row: &str) -> Option<f64> {
        let v: Vec<f64> =
            self.columns.iter().filter_map(|c| self.cells.get(&(row.to_owned(), c.clone())).map(|c| c.mean)).collect();
        (v.len() == self.columns.len() && !v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn cell_text(&self, row: &str, col: &(String, String), pm: &str) -> String {
        match self.cells.get(&(row.to_owned(), col.clone())) {
            Some(c) => format!("{:.1} {pm} {:.1} ({})", c.mean, c.std, c.n),
            None => "–".into(),
        }
    }

    /// Renders the table.
    pub fn render(&self, format: Format) -> String {
        let header: Vec<String> = self.columns.iter().map(|(t, z)| format!("{t} {z}")).collect();
        let mut out = String::new();
        match format {
            Format::Markdown => {
                out.push_str(&format!("| method | params | % | {} | avg |\n", header.join(" | ")));
                out.push_str(&format!("|---|---:|---:|{}---:|\n", "---:|".repeat(header.len())));
                // The best mean of each column (and of the averages) in bold, as papers mark it.
                let best: Vec<f64> = self
                    .columns
                    .iter()
                    .map(|c| {
                        self.rows
                            .iter()
                            .filter_map(|(m, ..)| self.cells.get(&(m.clone(), c.clone())).map(|x| x.mean))
                            .fold(f64::NEG_INFINITY, f64::max)
                    })
                    .collect();
                let best_avg = self.rows.iter().filter_map(|(m, ..)| self.average(m)).fold(f64::NEG_INFINITY, f64::max);
                let bold = |text: String, v: Option<f64>, top: f64| match v {
                    Some(v) if self.rows.len() > 1 && v == top => format!("**{text}**"),
                    _ => text,
                };
                for (m, p, pc) in &self.rows {
                    let cells: Vec<String> = self
                        .columns
                        .iter()
                        .zip(&best)
                        .map(|(c, &top)| {
                            let mean = self.cells.get(&(m.clone(), c.clone())).map(|x| x.mean);
                            bold(self.cell_text(m, c, "±"), mean, top)
                        })
                        .collect();
                    let avg = self.average(m);
                    let avg = bold(avg.map_or("–".into(), |a| format!("{a:.1}")), avg, best_avg);
                    out.push_str(&format!("| {m} | {p} | {pc:.3} | {} | {avg} |\n", cells.join(" | ")));
                }
                out.push_str(&format!("\n{}\n", self.caption));
                for n in &self.notes {
                    out.push_str(&format!("\n- {n}"));
                }
                if !self.notes.is_empty() {
                    out.push('\n');
                }
            }
            Format::Csv => {
                let cols: Vec<String> =
                    header.iter().flat_map(|h| [format!("{h} mean"), format!("{h} std"), format!("{h} n")]).collect();
                out.push_str(&format!("method,params,percent,{},avg\n", cols.join(",")));
                for (m, p, pc) in &self.rows {
                    let cells: Vec<String> = self
                        .columns
                        .iter()
                        .map(|c| match self.cells.get(&(m.clone(), c.clone())) {
                            Some(c) => format!("{:.4},{:.4},{}", c.mean, c.std, c.n),
                            None => ",,".into(),
                        })
                        .collect();
                    let avg = self.average(m).map_or(String::new(), |a| format!("{a:.4}"));
                    out.push_str(&format!("{m},{p},{pc:.4},{},{avg}\n", cells.join(",")));
                }
            }
            Format::Latex => {
                let esc = |s: &str| s.replace('_', "\\_").replace('%', "\\%");
                out.push_str(&format!("\\begin{{tabular}}{{lrr{}r}}\n\\toprule\n", "c".repeat(header.len())));
                out.push_str(&format!(
                    "Method & Params & \\% & {} & Avg \\\\\n\\midrule\n",
                    header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" & ")
                ));
                for (m, p, pc) in &self.rows {
                    let cells: Vec<String> = self.columns.iter().map(|c| self.cell_text(m, c, "$\\pm$")).collect();
                    let avg = self.average(m).map_or("--".into(), |a| format!("{a:.1}"));
                    out.push_str(&format!("{} & {p} & {pc:.3} & {} & {avg} \\\\\n", esc(m), cells.join(" & ")));
                }
                out.push_str("\\bottomrule\n\\end{tabular}\n");
            }
        }
        out
    }
}

impl Table {
    /// Markdown: `method` against the best other row of each column (and of the averages), as a paper
    /// sets UniPELT against the best single method: both means, the difference, and its standard error
    /// √(s₁²/n₁ + s₂²/n₂) over the seeds, so a reader sees whether the gap is more than seed noise.
    pub fn against(&self, method: &str) -> Result<String> {
        if !self.rows.iter().any(|(m, ..)| m == method) {
            anyhow::bail!(
                "no row `{method}` in this table (rows: {})",
                self.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        let mut out = format!("| column | best other method | its score | {method} | difference | ± s.e. |\n|---|---|---:|---:|---:|---:|\n");
        let mut diffs = Vec::new();
        for col in &self.columns {
            let Some(ours) = self.cells.get(&(method.to_owned(), col.clone())) else { continue };
            let best = self
                .rows
                .iter()
                .filter(|(m, ..)| m != method)
                .filter_map(|(m, ..)| self.cells.get(&(m.clone(), col.clone())).map(|c| (m, c)))
                .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean));
            let Some((name, theirs)) = best else { continue };
            let diff = ours.mean - theirs.mean;
            let se = (ours.std.powi(2) / ours.n.max(1) as f64 + theirs.std.powi(2) / theirs.n.max(1) as f64).sqrt();
            diffs.push(diff);
            out.push_str(&format!(
                "| {} {} | {name} | {:.1} ({}) | {:.1} ({}) | {diff:+.1} | {se:.1} |\n",
                col.0, col.1, theirs.mean, theirs.n, ours.mean, ours.n
            ));
        }
        let best_avg = self
            .rows
            .iter()
            .filter(|(m, ..)| m != method)
            .filter_map(|(m, ..)| self.average(m).map(|a| (m, a)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(ours), Some((name, theirs))) = (self.average(method), best_avg) {
            out.push_str(&format!("| avg | {name} | {theirs:.1} | {ours:.1} | {:+.1} | |\n", ours - theirs));
        }
        let wins = diffs.iter().filter(|d| **d > 0.0).count();
        out.push_str(&format!(
            "\n{method} is above the best other method in {wins} of {} columns (seed counts in parentheses).\n",
            diffs.len()
        ));
        Ok(out)
    }
}

/// Which differences in the table are larger than seed noise: per column, the best row and every row it
/// is above by more than both rows' seed std (each cell with at least two seeds), with the difference;
/// as Markdown, `None` when no column has such a pair. A reader sees at once which gaps a sweep of this
/// size can tell apart.
pub fn separated(table: &Table) -> Option<String> {
    let mut out = String::new();
    for col in &table.columns {
        let cells: Vec<(&str, &Cell)> = table
            .rows
            .iter()
            .filter_map(|(m, ..)| table.cells.get(&(m.clone(), col.clone())).map(|c| (m.as_str(), c)))
            .filter(|(_, c)| c.n >= 2 && c.mean.is_finite())
            .collect();
        let Some(&(best, top)) = cells.iter().max_by(|a, b| a.1.mean.total_cmp(&b.1.mean)) else { continue };
        let mut below: Vec<(f64, &str)> = cells
            .iter()
            .filter(|(m, c)| *m != best && top.mean - c.mean > top.std.max(c.std))
            .map(|(m, c)| (top.mean - c.mean, *m))
            .collect();
        if below.is_empty() {
            continue;
        }
        below.sort_by(|a, b| b.0.total_cmp(&a.0));
        let list: Vec<String> = below.iter().map(|(d, m)| format!("{m} (−{d:.1})")).collect();
        out.push_str(&format!(
            "| {} {} | {best} {:.1} ± {:.1} ({}) | {} |\n",
            col.0,
            col.1,
            top.mean,
            top.std,
            top.n,
            list.join(", ")
        ));
    }
    if out.is_empty() {
        return None;
    }
    Some(format!(
        "| column | best | above these rows by more than both rows' seed std |\n|---|---|---|\n{out}\nBeyond seed \
         noise: in each column, the rows the best row is above by more than the larger of the two rows' standard \
         deviations over seeds (cells of two seeds or more). Other gaps in the table are within seed noise.\n"
    ))
}

/// The methods' own diagnostics (UniPELT's gate means, ATTEMPT's attention over source prompts,
/// Polytropon's routing concentration, source-training losses), mean ± std over the seeds of each
/// (method, task, data size), as a Markdown table in long form; `None` when no record has any.
pub fn diagnostics(records: &[Record], exp: Option<&Suite>) -> Option<String> {
    // Sorted by the experiment's method order, then task, size (in data-size order) and diagnostic.
    type Key = (usize, String, String, (u8, usize), String, String);
    let mut groups: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    let method_rank = |m: &str| exp.and_then(|e| e.methods.iter().position(|s| s == m)).unwrap_or(usize::MAX);
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        let size = DataSize::parse(&r.data_size).map(DataSize::order).unwrap_or((9, 0));
        for (k, v) in &r.diagnostics {
            // The step count is a setting, not a measurement.
            if k == "source_steps" {
                continue;
            }
            let key = (method_rank(&r.method), r.method.clone(), r.task.clone(), size, r.data_size.clone(), k.clone());
            groups.entry(key).or_default().push(*v);
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut out = String::from("| method | task | size | diagnostic | value |\n|---|---|---|---|---:|\n");
    for ((_, method, task, _, size, name), values) in &groups {
        let (mean, std) = crate::pairs::mean_std(values);
        out.push_str(&format!("| {method} | {task} | {size} | {name} | {mean:.3} ± {std:.3} ({}) |\n", values.len()));
    }
    out.push_str(
        "\nDiagnostics the methods report with each run (mean ± std over seeds, seed count): gate_* are UniPELT's \
         mean gate values, attn_* ATTEMPT's mean attention on each source prompt and on the target's own, \
         routing_max_weight the mean largest skill weight of a Poly target's routing (1/skills = uniform), \
         source_loss_* the mean loss on each source task over the last quarter of source training.\n",
    );
    Some(out)
}

/// Step of a run's first dev evaluation: its curve's first point, or for records that predate curves,
/// the first multiple of `eval_every` (capped at the steps taken); `None` for those that evaluated once
/// per epoch, whose epoch length the record does not keep for multi-task runs.
fn first_evaluation(r: &Record) -> Option<usize> {
    if let Some(p) = r.curve.first() {
        return Some(p.step);
    }
    let every = r.training.get("eval_every")?.as_u64()? as usize;
    Some(every.min(r.steps))
}

/// One cell's count for [`selection`].
#[derive(Debug, Clone, Copy, Default)]
struct Selected {
    /// Runs whose best dev score came at the first evaluation (where that step is known).
    first: u32,
    /// Runs whose best dev score came at the last evaluation.
    last: u32,
    /// Runs that finished ok.
    runs: u32,
    /// Runs whose first evaluation's step is not recorded.
    unknown_first: u32,
}

impl std::ops::Add for Selected {
    type Output = Selected;
    fn add(self, o: Selected) -> Selected {
        Selected {
            first: self.first + o.first,
            last: self.last + o.last,
            runs: self.runs + o.runs,
            unknown_first: self.unknown_first + o.unknown_first,
        }
    }
}

impl Selected {
    /// "first / last of runs", "–" for first where a run's first step is unknown; empty for no runs.
    fn text(self) -> String {
        if self.runs == 0 {
            return String::new();
        }
        let first = if self.unknown_first > 0 { "–".to_owned() } else { self.first.to_string() };
        format!("{first} / {} of {}", self.last, self.runs)
    }
}

/// Where model selection found each cell's runs at their best, as a Markdown table in the main table's
/// rows and columns: "a / b" counts the runs (that finished ok) whose best dev score came at the first
/// evaluation (selection kept a barely trained model: a task not learnt, or a collapse from the start)
/// and at the last (still improving when training stopped: more steps might raise it). `None` when no
/// cell has runs.
pub fn selection(records: &[Record], table: &Table) -> Option<String> {
    let mut counts: BTreeMap<(String, (String, String)), Selected> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        let Some(best) = r.best_step else { continue };
        let c = counts.entry((r.method.clone(), (r.task.clone(), r.data_size.clone()))).or_default();
        match first_evaluation(r) {
            Some(first) => c.first += u32::from(best == first),
            None => c.unknown_first += 1,
        }
        c.last += u32::from(best == r.steps);
        c.runs += 1;
    }
    if counts.is_empty() {
        return None;
    }
    let header: Vec<String> = table.columns.iter().map(|(t, z)| format!("{t} {z}")).collect();
    let mut out = format!("| method | {} | all |\n|---|{}---:|\n", header.join(" | "), "---:|".repeat(header.len()));
    let mut by_column = vec![Selected::default(); table.columns.len()];
    for (m, _, _) in &table.rows {
        let mut all = Selected::default();
        let cells: Vec<String> = table
            .columns
            .iter()
            .zip(by_column.iter_mut())
            .map(|(col, total)| {
                let c = counts.get(&(m.clone(), col.clone())).copied().unwrap_or_default();
                all = all + c;
                *total = *total + c;
                c.text()
            })
            .collect();
        out.push_str(&format!("| {m} | {} | {} |\n", cells.join(" | "), all.text()));
    }
    let all = by_column.iter().fold(Selected::default(), |a, &b| a + b);
    let totals: Vec<String> = by_column.into_iter().map(Selected::text).collect();
    out.push_str(&format!("| all methods | {} | {} |\n", totals.join(" | "), all.text()));
    out.push_str(
        "\nCheckpoint selection: in each cell, the runs whose best dev score came at the first evaluation / at the \
         last evaluation, of the runs that finished ok. Best at the first: selection kept a barely trained model \
         (a task not learnt, or a collapse from the start). Best at the last: still improving when training \
         stopped, so more steps might raise the cell. – where the first evaluation's step is not recorded \
         (per-epoch evaluation in records without a dev curve).\n",
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let col = |t: &str| (t.to_owned(), "100".to_owned());
        let cell = |mean, std, n| Cell { mean, std, n };
        let cells = [
            (("unipelt", "rte"), cell(60.0, 2.0, 3)),
            (("lora", "rte"), cell(57.0, 1.0, 3)),
            (("adapter", "rte"), cell(58.0, 4.0, 3)),
            (("unipelt", "sst2"), cell(80.0, 1.0, 3)),
            (("lora", "sst2"), cell(82.0, 0.0, 1)),
            (("adapter", "sst2"), cell(70.0, 1.0, 3)),
        ]
        .into_iter()
        .map(|((m, t), c)| ((m.to_owned(), col(t)), c))
        .collect();
        Table {
            caption: String::new(),
            rows: ["lora", "adapter", "unipelt"].iter().map(|m| (m.to_string(), 0, 0.0)).collect(),
            columns: vec![col("rte"), col("sst2")],
            cells,
            notes: Vec::new(),
        }
    }

    #[test]
    fn generation_suites_get_one_table_per_metric_in_order() {
        let run = |method: &str, seed, metrics: &[(&str, f64)]| {
            let mut r = pelt_records::test_record("webnlg", method, seed);
            r.metrics = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            r
        };
        let all = [("rougeL", 40.0), ("chrf_pp_seen", 31.0), ("bleu_unseen", 9.0), ("chrf_pp", 30.0), ("bleu", 20.0)];
        let records = vec![run("pcg", 1, &all), run("pcg", 2, &all), run("lora", 1, &all[..1])];
        let page = per_metric(&records, None).unwrap().unwrap();
        let at = |h: &str| page.find(&format!("## {h}\n")).unwrap_or_else(|| panic!("no {h} in\n{page}"));
        assert!(at("bleu") < at("bleu_unseen") && at("bleu_unseen") < at("chrf_pp"));
        assert!(at("chrf_pp") < at("chrf_pp_seen") && at("chrf_pp_seen") < at("rougeL"));
        assert!(page.contains("seen / not seen in training"));
        // LoRA has ROUGE-L only: its row is in that table and no other.
        let rouge = &page[at("rougeL")..];
        assert!(rouge.contains("| lora |") && !page[..at("rougeL")].contains("| lora |"));
        // A classification suite has no such page.
        let plain = vec![pelt_records::test_record("rte", "lora", 1)];
        assert!(per_metric(&plain, None).unwrap().is_none());
    }

    /// A finished run of `method` on RTE at 100 examples: best dev at `best` of `steps`, dev evaluated
    /// every 50 steps.
    fn run(method: &str, seed: u64, best: usize, steps: usize) -> Record {
        let mut r = pelt_records::test_record("rte", method, seed);
        (r.best_dev_score, r.best_step, r.steps) = (Some(50.0), Some(best), steps);
        r
    }

    #[test]
    fn one_label_with_two_configurations_becomes_two_rows() {
        // UniPELT's defaults changed between two sweeps of the same suite: the seeds of each config
        // average apart, the newer config keeps the label.
        let at = |seed, hash: &str, time, score| Record {
            config_hash: hash.to_owned(),
            finished_at: time,
            score: Some(score),
            ..pelt_records::test_record("rte", "unipelt", seed)
        };
        let records = vec![
            at(1, "aaaaaaaa1111", 10, 50.0),
            at(2, "aaaaaaaa1111", 11, 52.0),
            at(1, "bbbbbbbb2222", 20, 70.0),
            at(2, "bbbbbbbb2222", 21, 72.0),
        ];
        let t = build(&records, None).unwrap();
        let col = (String::from("rte"), String::from("100"));
        let cell = |m: &str| t.cells[&(m.to_owned(), col.clone())];
        assert_eq!((cell("unipelt").mean, cell("unipelt").n), (71.0, 2));
        let old = cell("unipelt (earlier config aaaaaaaa)");
        assert_eq!((old.mean, old.n), (51.0, 2));
        // One configuration per cell: nothing is relabelled.
        let same = split_configurations(&records[2..]);
        assert!(same.iter().all(|r| r.method == "unipelt"));
    }

    #[test]
    fn selection_counts_runs_best_at_the_first_and_the_last_evaluation() {
        let mut records = vec![run("lora", 1, 50, 140), run("lora", 2, 140, 140), run("lora", 3, 100, 140)];
        // A curve, where kept, gives the first evaluation (here at step 20, not eval_every's 50).
        let mut curved = run("adapter", 1, 20, 140);
        curved.curve = vec![pelt_records::CurvePoint { step: 20, dev: 50.0, train_loss: 0.7 }];
        records.push(curved);
        // Per-epoch evaluation without a curve: the first evaluation's step is unknown.
        let mut per_epoch = run("unipelt", 1, 140, 140);
        per_epoch.training = serde_json::json!({"eval_every": "epoch", "batch_size": 16});
        records.push(per_epoch);
        let mut diverged = run("unipelt", 2, 50, 140);
        diverged.status = Status::Diverged;
        records.push(diverged);
        let out = selection(&records, &table()).unwrap();
        assert!(out.starts_with("| method | rte 100 | sst2 100 | all |\n|---|---:|---:|---:|\n"), "{out}");
        assert!(out.contains("| lora | 1 / 1 of 3 |  | 1 / 1 of 3 |"), "{out}");
        assert!(out.contains("| adapter | 1 / 0 of 1 |  | 1 / 0 of 1 |"), "{out}");
        assert!(out.contains("| unipelt | – / 1 of 1 |  | – / 1 of 1 |"), "the diverged run is left out: {out}");
        assert!(out.contains("| all methods | – / 2 of 5 |  | – / 2 of 5 |"), "{out}");
        assert_eq!(selection(&[], &table()), None);
    }

    #[test]
    fn a_multi_task_row_with_one_instance_per_task_counts_every_tasks_instance() {
        // evqa's classifier adds the method to an encoder (100 parameters), the captioner to an
        // encoder-decoder (200): one instance per task costs 10 + 20, the shared one 20.
        let run = |task: &str, method: &str, seed, params, backbone| Record {
            method_params: params,
            backbone_params: backbone,
            method_percent: 100.0 * params as f64 / backbone as f64,
            ..pelt_records::test_record(task, method, seed)
        };
        let records: Vec<Record> = [1, 2]
            .into_iter()
            .flat_map(|s| {
                [
                    run("evqa", "lora", s, 10, 100),
                    run("evqa_caption", "lora", s, 20, 200),
                    run("evqa", "lora (shared)", s, 20, 200),
                    run("evqa_caption", "lora (shared)", s, 20, 200),
                ]
            })
            .collect();
        let suite = Suite {
            methods: vec!["lora".into(), "lora (shared)".into()],
            shared: vec!["lora (shared)".into()],
            ..Suite::default()
        };
        let t = build_on(&records, Some(&suite), None).unwrap();
        assert_eq!(t.rows, vec![("lora".into(), 30, 15.0), ("lora (shared)".into(), 20, 10.0)]);
        assert!(t.caption.contains("the sum over the tasks' instances"), "{}", t.caption);
        // Without shared rows the suite is a set of single-task comparisons: a row keeps one task's count.
        let single = Suite { shared: Vec::new(), ..suite };
        let t = build_on(&records, Some(&single), None).unwrap();
        assert!(t.rows[0].1 == 10 || t.rows[0].1 == 20, "{:?}", t.rows);
        assert!(!t.caption.contains("Multi-task"));
    }

    #[test]
    fn separated_names_the_gaps_larger_than_both_rows_seed_std() {
        let out = separated(&table()).unwrap();
        // RTE: UniPELT 60 ± 2 is above LoRA 57 ± 1 by 3 > 2, not above the adapter 58 ± 4 (2 < 4).
        assert!(out.contains("| rte 100 | unipelt 60.0 ± 2.0 (3) | lora (−3.0) |"), "{out}");
        // SST-2: LoRA's one seed cannot be told from noise; UniPELT 80 ± 1 beats the adapter 70 ± 1.
        assert!(out.contains("| sst2 100 | unipelt 80.0 ± 1.0 (3) | adapter (−10.0) |"), "{out}");
        let mut noisy = table();
        noisy.cells.values_mut().for_each(|c| c.std = 20.0);
        assert_eq!(separated(&noisy), None);
    }

    #[test]
    fn against_sets_a_method_beside_the_best_other_per_column() {
        let out = table().against("unipelt").unwrap();
        // RTE: the adapter (58) is the best other; √(4/3 + 16/3) = 2.58.
        assert!(out.contains("| rte 100 | adapter | 58.0 (3) | 60.0 (3) | +2.0 | 2.6 |"), "{out}");
        // SST-2: LoRA's single seed (82) is the best other; √(1/3 + 0) = 0.58.
        assert!(out.contains("| sst2 100 | lora | 82.0 (1) | 80.0 (3) | -2.0 | 0.6 |"), "{out}");
        // Averages: LoRA 69.5, adapter 64.0, UniPELT 70.0.
        assert!(out.contains("| avg | lora | 69.5 | 70.0 | +0.5 | |"), "{out}");
        assert!(out.contains("above the best other method in 1 of 2 columns"), "{out}");
        assert!(table().against("mam").unwrap_err().to_string().contains("no row `mam`"));
    }
}
