//! Tasks from a user's own files: CSV, TSV, JSON Lines or Parquet, read with polars, columns mapped by
//! an experiment's `file_tasks:` entry. Every value a run will use is checked when the task loads, so a
//! bad file is refused before any training, naming the file, the line (or Parquet row) and the column.

use crate::{DataError, Dataset, Example, Label, LabelSpace, Metric, Result};
use polars::prelude::*;
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A file's format; by default from its extension (`.csv`, `.tsv` / `.txt`, `.jsonl` / `.ndjson`,
/// `.parquet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated (or `separator`), quoted as RFC 4180.
    Csv,
    /// Tab-separated (or `separator`), without quoting: a `"` is part of the text.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// A column by header name, or by 0-based position (files without a header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// Position, from 0.
    Index(usize),
    /// Header name (JSON key, Parquet column).
    Name(String),
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "{i}"),
            ColumnRef::Name(n) => f.write_str(n),
        }
    }
}

/// Fractions of the training file held out when the task has no test (or dev) file, drawn once with
/// `seed` (the runs' seeds then sample from the rest as from any training pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    /// Share of the file held out as the test split (when there is no `test` file).
    #[serde(default)]
    pub test: f64,
    /// Share held out as a fixed dev split (when there is no `dev` file); 0: dev sets are sampled from
    /// the training pool per run, as for GLUE.
    #[serde(default)]
    pub dev: f64,
    /// Seed of the hold-out draw.
    #[serde(default)]
    pub seed: u64,
}

/// One task from files, as an experiment's `file_tasks:` entry declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTask {
    /// Training examples.
    pub train: PathBuf,
    /// A fixed dev split (optional).
    #[serde(default)]
    pub dev: Option<PathBuf>,
    /// The test split; without it, `holdout.test` of the training file.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Held-out shares of the training file.
    #[serde(default)]
    pub holdout: Option<Holdout>,
    /// The files' format (default: from the extension).
    #[serde(default)]
    pub format: Option<Format>,
    /// Whether text files start with a header line (default true).
    #[serde(default = "yes")]
    pub header: bool,
    /// Field separator of CSV / TSV files, one character (default `,` for CSV, tab for TSV).
    #[serde(default)]
    pub separator: Option<char>,
    /// The text column.
    pub text: ColumnRef,
    /// The second text of a pair task.
    #[serde(default)]
    pub text_pair: Option<ColumnRef>,
    /// The label column of a classification task.
    #[serde(default)]
    pub label: Option<ColumnRef>,
    /// The classes in order (default: the training file's labels, numerically sorted when all are
    /// integers, else alphabetically).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// The score column of a regression task.
    #[serde(default)]
    pub score: Option<ColumnRef>,
    /// The scores' range [low, high]; a score outside it is refused.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// Metrics to report: accuracy, f1 (of class 1), macro_f1, matthews, pearson, spearman (default:
    /// accuracy, or pearson and spearman for regression).
    #[serde(default)]
    pub metrics: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One file's rows as strings, with where each row sits in the file.
struct Table {
    path: String,
    frame: DataFrame,
    /// What a row index is called in messages, and the offset to its 1-based number.
    unit: &'static str,
    first: usize,
}

impl Table {
    fn at(&self, row: usize) -> String {
        format!("{} {}", self.unit, row + self.first)
    }

    fn field(&self, row: usize, column: &ColumnRef, message: String) -> DataError {
        DataError::Field { path: self.path.clone(), at: self.at(row), column: column.to_string(), message }
    }

    /// The column's values as strings (numbers as written), `None` where missing.
    fn strings(&self, column: &ColumnRef) -> Result<Vec<Option<String>>> {
        let names: Vec<String> = self.frame.get_column_names().iter().map(|n| n.to_string()).collect();
        let col = match column {
            ColumnRef::Name(n) => self.frame.column(n).ok(),
            ColumnRef::Index(i) => self.frame.columns().get(*i),
        }
        .ok_or_else(|| DataError::Field {
            path: self.path.clone(),
            at: if self.unit == "line" && self.first == 2 { "line 1 (header)".into() } else { "header".into() },
            column: column.to_string(),
            message: format!("no such column (the file has: {})", names.join(", ")),
        })?;
        let text = col.cast(&DataType::String).map_err(|e| self.whole(column, e))?;
        let text = text.str().map_err(|e| self.whole(column, e))?;
        Ok(text.iter().map(|v| v.map(str::to_owned)).collect())
    }

    fn whole(&self, column: &ColumnRef, e: PolarsError) -> DataError {
        DataError::Field {
            path: self.path.clone(),
            at: "every row".into(),
            column: column.to_string(),
            message: e.to_string(),
        }
    }
}

fn format_of(task: &FileTask, path: &Path) -> Result<Format> {
    if let Some(f) = task.format {
        return Ok(f);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Ok(Format::Csv),
        "tsv" | "txt" => Ok(Format::Tsv),
        "jsonl" | "ndjson" => Ok(Format::Jsonl),
        "parquet" => Ok(Format::Parquet),
        _ => Err(DataError::Malformed {
            path: path.display().to_string(),
            line: 0,
            message: "cannot tell the format from the extension: set `format` (csv, tsv, jsonl, parquet)".into(),
        }),
    }
}

/// Invalid UTF-8 anywhere in a text file, by line (polars would only say that the file has some).
fn check_utf8(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at - bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
        return Err(DataError::Malformed {
            path: path.display().to_string(),
            line,
            message: format!("invalid UTF-8 at byte {column} of the line (files must be UTF-8)"),
        });
    }
    Ok(())
}

/// Duplicate names in a header line.
fn check_header(path: &Path, bytes: &[u8], separator: u8, quoted: bool) -> Result<()> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(separator).quoting(quoted).has_headers(false).from_reader(bytes);
    if let Some(Ok(header)) = reader.records().next() {
        let mut seen = std::collections::HashSet::new();
        for name in header.iter() {
            if !seen.insert(name) {
                return Err(DataError::Field {
                    path: path.display().to_string(),
                    at: "line 1 (header)".into(),
                    column: name.to_owned(),
                    message: "the header names this column twice".into(),
                });
            }
        }
    }
    Ok(())
}

fn read(task: &FileTask, path: &Path) -> Result<Table> {
    let shown = path.display().to_string();
    let polars_err = |e: PolarsError| DataError::Malformed { path: shown.clone(), line: 0, message: e.to_string() };
    let io = |source| DataError::Io { path: shown.clone(), source };
    let format = format_of(task, path)?;
    let (frame, unit, first) = match format {
        Format::Csv | Format::Tsv => {
            let bytes = std::fs::read(path).map_err(io)?;
            check_utf8(path, &bytes)?;
            let sep = task.separator.unwrap_or(if format == Format::Csv { ',' } else { '\t' });
            if !sep.is_ascii() {
                return Err(DataError::Malformed {
                    path: shown,
                    line: 0,
                    message: format!("separator `{sep}` is not one ASCII character"),
                });
            }
            // TSV has no quoting (a `"` is text, as in GLUE's files); CSV quotes as RFC 4180.
            let quoted = format == Format::Csv;
            if task.header {
                check_header(path, &bytes, sep as u8, quoted)?;
            }
            let frame = CsvReadOptions::default()
                .with_has_header(task.header)
                // Every column as text: labels stay as written, scores are parsed here, with row numbers.
                .with_infer_schema_length(Some(0))
                .map_parse_options(|p| p.with_separator(sep as u8).with_quote_char(quoted.then_some(b'"')))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(polars_err)?;
            (frame, "line", if task.header { 2 } else { 1 })
        }
        Format::Jsonl => {
            let bytes = std::fs::read(path).map_err(io)?;
            check_utf8(path, &bytes)?;
            let frame = JsonReader::new(std::io::Cursor::new(bytes))
                .with_json_format(JsonFormat::JsonLines)
                .finish()
                .map_err(polars_err)?;
            (frame, "line", 1)
        }
        Format::Parquet => {
            let file = std::fs::File::open(path).map_err(io)?;
            (ParquetReader::new(file).finish().map_err(polars_err)?, "row", 1)
        }
    };
    if frame.height() == 0 {
        return Err(DataError::Malformed {
            path: shown,
            line: 0,
            message: "no rows: every split needs examples".into(),
        });
    }
    Ok(Table { path: shown, frame, unit, first })
}

/// The texts (and second texts) of a file's rows.
fn texts(task: &FileTask, t: &Table) -> Result<Vec<(String, Option<String>)>> {
    let a = t.strings(&task.text)?;
    let b = task.text_pair.as_ref().map(|c| t.strings(c)).transpose()?;
    let mut out = Vec::with_capacity(a.len());
    for (i, text) in a.into_iter().enumerate() {
        let text = text.ok_or_else(|| t.field(i, &task.text, "no text".into()))?;
        let pair = match (&b, &task.text_pair) {
            (Some(b), Some(c)) => Some(b[i].clone().ok_or_else(|| t.field(i, c, "no second text".into()))?),
            _ => None,
        };
        out.push((text, pair));
    }
    Ok(out)
}

fn parse_metric(name: &str) -> Option<Metric> {
    Some(match name {
        "accuracy" => Metric::Accuracy,
        "f1" => Metric::F1,
        "macro_f1" => Metric::MacroF1,
        "matthews" | "mcc" => Metric::Matthews,
        "pearson" => Metric::Pearson,
        "spearman" => Metric::Spearman,
        _ => return None,
    })
}

/// Checks the entry itself (columns, metrics, shares), before any file is read.
pub fn check(task: &FileTask) -> std::result::Result<(), String> {
    match (&task.label, &task.score) {
        (Some(_), Some(_)) => return Err("give `label` (classification) or `score` (regression), not both".into()),
        (None, None) => {
            return Err("give the `label` column (classification) or the `score` column (regression)".into())
        }
        _ => {}
    }
    if task.labels.is_some() && task.score.is_some() {
        return Err("`labels` lists classes: a `score` task has none".into());
    }
    if let Some(l) = &task.labels {
        let unique: std::collections::HashSet<&String> = l.iter().collect();
        if l.len() < 2 || unique.len() != l.len() {
            return Err("`labels` must list at least two distinct classes".into());
        }
    }
    if let Some([lo, hi]) = task.range {
        if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            return Err(format!("`range` must be [low, high] with low < high, got [{lo}, {hi}]"));
        }
    }
    for m in &task.metrics {
        let metric = parse_metric(m)
            .ok_or_else(|| format!("unknown metric `{m}` (accuracy, f1, macro_f1, matthews, pearson, spearman)"))?;
        let regression = matches!(metric, Metric::Pearson | Metric::Spearman);
        if regression != task.score.is_some() {
            return Err(format!(
                "metric `{m}` does not fit a {} task",
                if task.score.is_some() { "regression" } else { "classification" }
            ));
        }
    }
    if let Some(h) = &task.holdout {
        if !(0.0..1.0).contains(&h.test) || !(0.0..1.0).contains(&h.dev) || h.test + h.dev >= 1.0 {
            return Err("`holdout` shares must be in [0, 1) and leave training examples".into());
        }
        if task.test.is_some() && h.test > 0.0 {
            return Err("`holdout.test` and a `test` file: give one".into());
        }
        if task.dev.is_some() && h.dev > 0.0 {
            return Err("`holdout.dev` and a `dev` file: give one".into());
        }
    }
    if task.test.is_none() && task.holdout.as_ref().is_none_or(|h| h.test <= 0.0) {
        return Err("no test split: give a `test` file or `holdout: {test: <share>}`".into());
    }
    Ok(())
}

/// Reads a file task; relative paths are taken from `base` (the repository root).
pub fn load(name: &str, task: &FileTask, base: &Path) -> Result<Dataset> {
    check(task).map_err(|m| DataError::Sampling(format!("file task `{name}`: {m}")))?;
    let path = |p: &Path| if p.is_relative() { base.join(p) } else { p.to_path_buf() };
    let train = read(task, &path(&task.train))?;
    let dev = task.dev.as_ref().map(|p| read(task, &path(p))).transpose()?;
    let test = task.test.as_ref().map(|p| read(task, &path(p))).transpose()?;

    // Labels: declared, or as found in the training file.
    let space = match (&task.label, &task.labels) {
        (Some(col), None) => {
            let mut found: Vec<String> = train.strings(col)?.into_iter().flatten().collect();
            found.sort();
            found.dedup();
            if found.iter().all(|l| l.parse::<i64>().is_ok()) {
                found.sort_by_key(|l| l.parse::<i64>().unwrap_or(0));
            }
            LabelSpace::Classes(found)
        }
        (Some(_), Some(declared)) => LabelSpace::Classes(declared.clone()),
        _ => LabelSpace::Regression,
    };
    let examples = |t: &Table, split: &str| -> Result<Vec<Example>> {
        let texts = texts(task, t)?;
        let labels: Vec<Label> = match (&space, &task.label, &task.score) {
            (LabelSpace::Classes(classes), Some(col), _) => t
                .strings(col)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.ok_or_else(|| t.field(i, col, "no label".into()))?;
                    classes.iter().position(|c| *c == v).map(Label::Class).ok_or_else(|| {
                        let what = if task.labels.is_some() { "the declared `labels`" } else { "the training file" };
                        t.field(
                            i,
                            col,
                            format!("label `{v}` of the {split} split is not among {what}: {}", classes.join(", ")),
                        )
                    })
                })
                .collect::<Result<_>>()?,
            (_, _, Some(col)) => t
                .strings(col)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.ok_or_else(|| t.field(i, col, "no score".into()))?;
                    let x: f64 = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|x: &f64| x.is_finite())
                        .ok_or_else(|| t.field(i, col, format!("score `{v}` is not a number")))?;
                    if let Some([lo, hi]) = task.range {
                        if x < lo || x > hi {
                            return Err(t.field(
                                i,
                                col,
                                format!("score {x} is outside the declared range [{lo}, {hi}]"),
                            ));
                        }
                    }
                    Ok(Label::Score(x as f32))
                })
                .collect::<Result<_>>()?,
            _ => unreachable!("check() requires a label or a score column"),
        };
        Ok(texts.into_iter().zip(labels).map(|((text_a, text_b), label)| Example { text_a, text_b, label }).collect())
    };
    let mut pool = examples(&train, "train")?;
    if let LabelSpace::Classes(c) = &space {
        if c.len() < 2 {
            return Err(DataError::Sampling(format!(
                "file task `{name}`: the training file has {} class(es); classification needs two",
                c.len()
            )));
        }
    }
    let mut dev = dev.map(|t| examples(&t, "dev")).transpose()?;
    let mut test = test.map(|t| examples(&t, "test")).transpose()?;
    if let Some(h) = &task.holdout {
        // One seeded draw: the held-out examples never enter the training pool.
        let mut idx: Vec<usize> = (0..pool.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(h.seed));
        let n_test = (h.test * pool.len() as f64).round() as usize;
        let n_dev = (h.dev * pool.len() as f64).round() as usize;
        let take = |range: std::ops::Range<usize>| -> Vec<Example> {
            let mut chosen: Vec<usize> = idx[range].to_vec();
            chosen.sort_unstable();
            chosen.into_iter().map(|i| pool[i].clone()).collect()
        };
        if n_test > 0 {
            test = Some(take(0..n_test));
        }
        if n_dev > 0 {
            dev = Some(take(n_test..n_test + n_dev));
        }
        let mut rest: Vec<usize> = idx[n_test + n_dev..].to_vec();
        rest.sort_unstable();
        pool = rest.into_iter().map(|i| pool[i].clone()).collect();
    }
    let test = test.unwrap_or_default();
    for (split, set) in [("train", Some(&pool)), ("dev", dev.as_ref()), ("test", Some(&test))] {
        if set.is_some_and(Vec::is_empty) {
            return Err(DataError::Sampling(format!("file task `{name}`: the {split} split is empty")));
        }
    }
    let metrics = if task.metrics.is_empty() {
        match space {
            LabelSpace::Regression => vec![Metric::Pearson, Metric::Spearman],
            LabelSpace::Classes(_) => vec![Metric::Accuracy],
        }
    } else {
        task.metrics.iter().filter_map(|m| parse_metric(m)).collect()
    };
    Ok(Dataset { name: name.to_owned(), labels: space, metrics, train: pool, dev, test, skipped_rows: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(train: &str, test: &str) -> FileTask {
        FileTask {
            train: train.into(),
            dev: None,
            test: Some(test.into()),
            holdout: None,
            format: None,
            header: true,
            separator: None,
            text: ColumnRef::Name("text".into()),
            text_pair: None,
            label: Some(ColumnRef::Name("label".into())),
            labels: None,
            score: None,
            range: None,
            metrics: Vec::new(),
        }
    }

    fn write(dir: &Path, name: &str, body: &[u8]) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    const ROWS: [(&str, &str); 4] =
        [("a fine film", "pos"), ("dull, and long", "neg"), ("\"quoted\" joy", "pos"), ("meh", "neg")];

    /// The same four rows in every format: CSV (quoted), TSV without a header (columns by position),
    /// JSON Lines with integer labels, Parquet written by polars.
    #[test]
    fn every_format_reads_the_same_examples() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let csv: String = std::iter::once("text,label\n".to_owned())
            .chain(ROWS.iter().map(|(t, l)| format!("\"{}\",{l}\n", t.replace('"', "\"\""))))
            .collect();
        write(d, "t.csv", csv.as_bytes());
        let tsv: String = ROWS.iter().map(|(t, l)| format!("{l}\t{t}\n")).collect();
        write(d, "t.tsv", tsv.as_bytes());
        let jsonl: String = ROWS
            .iter()
            .map(|(t, l)| format!("{}\n", serde_json::json!({"text": t, "label": i64::from(*l == "pos")})))
            .collect();
        write(d, "t.jsonl", jsonl.as_bytes());
        let mut frame = df!(
            "text" => ROWS.iter().map(|r| r.0).collect::<Vec<_>>(),
            "label" => ROWS.iter().map(|r| r.1).collect::<Vec<_>>()
        )
        .unwrap();
        let file = std::fs::File::create(d.join("t.parquet")).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();

        let from_csv = load("mine", &task("t.csv", "t.csv"), d).unwrap();
        assert_eq!(from_csv.labels, LabelSpace::Classes(vec!["neg".into(), "pos".into()]));
        assert_eq!(from_csv.train[2].text_a, "\"quoted\" joy");
        assert_eq!(from_csv.train.iter().map(|e| e.label).collect::<Vec<_>>(), [1, 0, 1, 0].map(Label::Class));
        assert_eq!(from_csv.metrics, vec![Metric::Accuracy]);
        let tsv_task = FileTask {
            header: false,
            text: ColumnRef::Index(1),
            label: Some(ColumnRef::Index(0)),
            ..task("t.tsv", "t.tsv")
        };
        let from_tsv = load("mine", &tsv_task, d).unwrap();
        let from_parquet = load("mine", &task("t.parquet", "t.parquet"), d).unwrap();
        assert_eq!(from_tsv.train, from_csv.train);
        assert_eq!(from_parquet.train, from_csv.train);
        // JSON labels 0 / 1, numerically ordered.
        let from_jsonl = load("mine", &task("t.jsonl", "t.jsonl"), d).unwrap();
        assert_eq!(from_jsonl.labels, LabelSpace::Classes(vec!["0".into(), "1".into()]));
        assert_eq!(
            from_jsonl.train.iter().map(|e| e.label).collect::<Vec<_>>(),
            from_csv.train.iter().map(|e| e.label).collect::<Vec<_>>()
        );
    }

    #[test]
    fn regression_pairs_holdout_and_declared_labels() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let body: String = std::iter::once("a\tb\tscore\n".to_owned())
            .chain((0..20).map(|i| format!("left {i}\tright {i}\t{}\n", i as f64 / 4.0)))
            .collect();
        write(d, "s.tsv", body.as_bytes());
        let t = FileTask {
            test: None,
            holdout: Some(Holdout { test: 0.25, dev: 0.25, seed: 3 }),
            text: ColumnRef::Name("a".into()),
            text_pair: Some(ColumnRef::Name("b".into())),
            label: None,
            score: Some(ColumnRef::Name("score".into())),
            range: Some([0.0, 5.0]),
            ..task("s.tsv", "")
        };
        let ds = load("sim", &t, d).unwrap();
        assert_eq!((ds.train.len(), ds.dev.as_ref().unwrap().len(), ds.test.len()), (10, 5, 5));
        assert_eq!(ds.metrics, vec![Metric::Pearson, Metric::Spearman]);
        assert!(ds.train.iter().all(|e| e.text_b.as_deref() == Some(&*e.text_a.replace("left", "right"))));
        // The held-out draw is the seed's, the same every time, and disjoint from training.
        let again = load("sim", &t, d).unwrap();
        assert_eq!(again.test, ds.test);
        assert!(ds.test.iter().all(|e| !ds.train.contains(e)));
        // Declared labels fix the order, whatever the file's first label.
        write(d, "c.csv", b"text,label\nx,b\ny,a\n");
        let declared = FileTask { labels: Some(vec!["b".into(), "a".into()]), ..task("c.csv", "c.csv") };
        assert_eq!(load("c", &declared, d).unwrap().train[0].label, Label::Class(0));
    }

    /// Every refused input names the file, the line (or row) and the column.
    #[test]
    fn bad_input_is_refused_with_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "ok.csv", b"text,label\nfine,pos\nbad,neg\n");
        let cases: Vec<(&str, &[u8], FileTask, &str)> = vec![
            (
                "missing.csv",
                b"words,label\nx,pos\ny,neg\n",
                task("missing.csv", "ok.csv"),
                "line 1 (header), column `text`: no such column (the file has: words, label)",
            ),
            (
                "unknown.csv",
                b"text,label\nx,pos\ny,maybe\n",
                task("ok.csv", "unknown.csv"),
                "line 3, column `label`: label `maybe` of the test split is not among the training file: neg, pos",
            ),
            (
                "dup.csv",
                b"text,label,text\nx,pos,z\n",
                task("dup.csv", "ok.csv"),
                "line 1 (header), column `text`: the header names this column twice",
            ),
            ("utf8.csv", b"text,label\nx,pos\n\xff\xfe,neg\n", task("utf8.csv", "ok.csv"), "utf8.csv:3: invalid UTF-8"),
            ("empty.csv", b"text,label\n", task("ok.csv", "empty.csv"), "empty.csv:0: no rows"),
            (
                "nolabel.csv",
                b"text,label\nx,pos\ny,\n",
                task("ok.csv", "nolabel.csv"),
                "line 3, column `label`: no label",
            ),
        ];
        for (name, body, t, expected) in cases {
            write(d, name, body);
            let err = load("mine", &t, d).expect_err(name).to_string();
            assert!(err.contains(name) && err.contains(expected), "{name}: {err}");
        }
        write(d, "scores.csv", b"text,score\nx,1.5\ny,high\n");
        let scored =
            FileTask { label: None, score: Some(ColumnRef::Name("score".into())), ..task("scores.csv", "scores.csv") };
        let err = load("s", &scored, d).unwrap_err().to_string();
        assert!(err.contains("scores.csv: line 3, column `score`: score `high` is not a number"), "{err}");
        write(d, "range.csv", b"text,score\nx,1.5\ny,7\n");
        let ranged = FileTask {
            range: Some([0.0, 5.0]),
            ..FileTask { train: "range.csv".into(), test: Some("range.csv".into()), ..scored }
        };
        let err = load("s", &ranged, d).unwrap_err().to_string();
        assert!(err.contains("line 3, column `score`: score 7 is outside the declared range [0, 5]"), "{err}");
        // Entries that cannot work are refused before any file is read.
        let both = FileTask { score: Some(ColumnRef::Name("s".into())), ..task("ok.csv", "ok.csv") };
        assert!(check(&both).unwrap_err().contains("not both"));
        let no_test = FileTask { test: None, ..task("ok.csv", "ok.csv") };
        assert!(check(&no_test).unwrap_err().contains("no test split"));
        let metric = FileTask { metrics: vec!["pearson".into()], ..task("ok.csv", "ok.csv") };
        assert!(check(&metric).unwrap_err().contains("does not fit a classification task"));
    }
}
