//! GLUE (Wang et al. 2019) from a folder in the official layout: `<dir>/<TASK>/{train,dev}.tsv`.
//!
//! The official files are tab separated with quoting off (quotes are literal text). CoLA has no
//! header; MNLI's dev set is `dev_matched.tsv`; QQP has a few rows with missing fields, which are
//! skipped and counted. The official dev set is the test set in pelt's protocols.

use crate::{
    metrics::Metric,
    read_text,
    task::{Dataset, Example, Label, LabelSpace},
    DataError, Result,
};
use std::path::{Path, PathBuf};

/// The nine GLUE tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlueTask {
    /// Corpus of Linguistic Acceptability.
    Cola,
    /// Stanford Sentiment Treebank (binary).
    Sst2,
    /// Microsoft Research Paraphrase Corpus.
    Mrpc,
    /// Semantic Textual Similarity Benchmark.
    Stsb,
    /// Quora Question Pairs.
    Qqp,
    /// Multi-Genre NLI (matched dev).
    Mnli,
    /// Question NLI.
    Qnli,
    /// Recognising Textual Entailment.
    Rte,
    /// Winograd NLI.
    Wnli,
}

/// Where a task's fields sit in its rows.
struct Layout {
    dir: &'static str,
    dev_file: &'static str,
    header: bool,
    /// Columns (0-based) of text a, text b and label; negative counts from the end.
    a: isize,
    b: Option<isize>,
    label: isize,
    /// Minimum number of fields for a row to be well formed.
    min_fields: usize,
    labels: Option<&'static [&'static str]>,
    metrics: &'static [Metric],
    /// Whether malformed rows are a known quirk of the official file (skipped and counted).
    skip_malformed: bool,
}

impl GlueTask {
    /// All nine, in GLUE's order.
    pub const ALL: [GlueTask; 9] = [
        GlueTask::Cola,
        GlueTask::Sst2,
        GlueTask::Mrpc,
        GlueTask::Stsb,
        GlueTask::Qqp,
        GlueTask::Mnli,
        GlueTask::Qnli,
        GlueTask::Rte,
        GlueTask::Wnli,
    ];

    /// Parses `cola`, `sst2` / `sst-2`, `sts-b`, ... (case-insensitive).
    pub fn parse(name: &str) -> Option<GlueTask> {
        let n = name.to_ascii_lowercase().replace(['-', '_'], "");
        GlueTask::ALL.into_iter().find(|t| t.name() == n)
    }

    /// Whether the task is scored by regression (STS-B) rather than classification.
    pub fn is_regression(self) -> bool {
        self.layout().labels.is_none()
    }

    /// Lower-case name used in experiment files and tables.
    pub fn name(self) -> &'static str {
        match self {
            GlueTask::Cola => "cola",
            GlueTask::Sst2 => "sst2",
            GlueTask::Mrpc => "mrpc",
            GlueTask::Stsb => "stsb",
            GlueTask::Qqp => "qqp",
            GlueTask::Mnli => "mnli",
            GlueTask::Qnli => "qnli",
            GlueTask::Rte => "rte",
            GlueTask::Wnli => "wnli",
        }
    }

    fn layout(self) -> Layout {
        const BIN: Option<&[&str]> = Some(&["0", "1"]);
        const ENT: Option<&[&str]> = Some(&["entailment", "not_entailment"]);
        let base = |dir, a, b, label, min_fields| Layout {
            dir,
            dev_file: "dev.tsv",
            header: true,
            a,
            b,
            label,
            min_fields,
            labels: BIN,
            metrics: &[Metric::Accuracy],
            skip_malformed: false,
        };
        match self {
            GlueTask::Cola => Layout { header: false, metrics: &[Metric::Matthews], ..base("CoLA", 3, None, 1, 4) },
            GlueTask::Sst2 => base("SST-2", 0, None, 1, 2),
            GlueTask::Mrpc => Layout { metrics: &[Metric::F1, Metric::Accuracy], ..base("MRPC", 3, Some(4), 0, 5) },
            GlueTask::Stsb => Layout {
                labels: None,
                metrics: &[Metric::Pearson, Metric::Spearman],
                ..base("STS-B", 7, Some(8), 9, 10)
            },
            GlueTask::Qqp => Layout {
                metrics: &[Metric::F1, Metric::Accuracy],
                skip_malformed: true,
                ..base("QQP", 3, Some(4), 5, 6)
            },
            GlueTask::Mnli => Layout {
                dev_file: "dev_matched.tsv",
                labels: Some(&["contradiction", "entailment", "neutral"]),
                ..base("MNLI", 8, Some(9), -1, 11)
            },
            GlueTask::Qnli => Layout { labels: ENT, ..base("QNLI", 1, Some(2), 3, 4) },
            GlueTask::Rte => Layout { labels: ENT, ..base("RTE", 1, Some(2), 3, 4) },
            GlueTask::Wnli => base("WNLI", 1, Some(2), 3, 4),
        }
    }

    /// Path of the task's folder under a `glue_data` directory.
    pub fn folder(self, glue_dir: &Path) -> PathBuf {
        glue_dir.join(self.layout().dir)
    }
}

fn field<'a>(fields: &[&'a str], col: isize) -> &'a str {
    let i = if col < 0 { fields.len() as isize + col } else { col };
    fields[i as usize]
}

/// Reads one split file; returns the examples and the number of skipped known-malformed rows.
fn read_split(path: &Path, layout: &Layout) -> Result<(Vec<Example>, usize)> {
    let text = read_text(path)?;
    let shown = path.display().to_string();
    let malformed = |line: usize, message: String| DataError::Malformed { path: shown.clone(), line, message };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if (layout.header && i == 0) || raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.trim_end_matches('\r').split('\t').collect();
        let label_text = (fields.len() >= layout.min_fields).then(|| field(&fields, layout.label).trim());
        let parsed = match (label_text, layout.labels) {
            (None, _) => {
                Err(format!("expected at least {} tab-separated fields, found {}", layout.min_fields, fields.len()))
            }
            (Some(l), Some(names)) => names
                .iter()
                .position(|n| *n == l)
                .map(Label::Class)
                .ok_or_else(|| format!("label `{l}` is not one of {names:?}")),
            (Some(l), None) => l
                .parse::<f32>()
                .ok()
                .filter(|s| s.is_finite())
                .map(Label::Score)
                .ok_or_else(|| format!("score `{l}` is not a number")),
        };
        match parsed {
            Ok(label) => out.push(Example {
                text_a: field(&fields, layout.a).to_owned(),
                text_b: layout.b.map(|b| field(&fields, b).to_owned()),
                label,
            }),
            Err(_) if layout.skip_malformed => skipped += 1,
            Err(message) => return Err(malformed(line, message)),
        }
    }
    if out.is_empty() {
        return Err(malformed(1, "no examples in file".into()));
    }
    Ok((out, skipped))
}

/// Loads one GLUE task from `glue_dir` (official layout): train as the training pool, official dev as
/// the test split, no fixed dev (the protocol samples it from train).
pub fn load(glue_dir: &Path, task: GlueTask) -> Result<Dataset> {
    let layout = task.layout();
    let folder = task.folder(glue_dir);
    if !folder.is_dir() {
        return Err(DataError::Io {
            path: folder.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "GLUE task folder not found (expected <glue_dir>/<TASK>/train.tsv)",
            ),
        });
    }
    let (train, s1) = read_split(&folder.join("train.tsv"), &layout)?;
    let (test, s2) = read_split(&folder.join(layout.dev_file), &layout)?;
    Ok(Dataset {
        name: task.name().to_owned(),
        labels: match layout.labels {
            Some(names) => LabelSpace::Classes(names.iter().map(|s| s.to_string()).collect()),
            None => LabelSpace::Regression,
        },
        metrics: layout.metrics.to_vec(),
        train,
        dev: None,
        test,
        skipped_rows: s1 + s2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, task: &str, file: &str, body: &str) {
        std::fs::create_dir_all(dir.join(task)).unwrap();
        std::fs::write(dir.join(task).join(file), body).unwrap();
    }

    #[test]
    fn reads_official_layouts_and_quirks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "CoLA",
            "train.tsv",
            "gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThe \"more\" we study.\n",
        );
        write(d, "CoLA", "dev.tsv", "gj04\t1\t\tFine.\n");
        let cola = load(d, GlueTask::Cola).unwrap();
        assert_eq!(cola.train.len(), 2);
        assert_eq!(cola.train[1].text_a, "The \"more\" we study.");
        assert_eq!(cola.train[1].label, Label::Class(0));
        assert_eq!(cola.metrics, vec![Metric::Matthews]);

        let stsb_header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
        write(
            d,
            "STS-B",
            "train.tsv",
            &format!("{stsb_header}0\tmain\tf\t2012\t1\tnone\tnone\tA plane.\tAn air plane.\t5.000\n"),
        );
        write(d, "STS-B", "dev.tsv", &format!("{stsb_header}0\tmain\tf\t2012\t1\tnone\tnone\tA.\tB.\t0.5\n"));
        let stsb = load(d, GlueTask::Stsb).unwrap();
        assert_eq!(stsb.train[0].label, Label::Score(5.0));
        assert_eq!(stsb.train[0].text_b.as_deref(), Some("An air plane."));
        assert_eq!(stsb.labels, LabelSpace::Regression);
        assert!(GlueTask::Stsb.is_regression() && !GlueTask::Rte.is_regression());

        let qqp_header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n";
        write(
            d,
            "QQP",
            "train.tsv",
            &format!("{qqp_header}1\t1\t2\tWhy?\tHow?\t0\n2\t3\t4\tbroken row\n3\t5\t6\tA?\tB?\t1\n"),
        );
        write(d, "QQP", "dev.tsv", &format!("{qqp_header}1\t1\t2\tWhy?\tHow?\t1\n"));
        let qqp = load(d, GlueTask::Qqp).unwrap();
        assert_eq!((qqp.train.len(), qqp.skipped_rows), (2, 1));

        let mnli_header = "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\tlabel1\tgold_label\n";
        let row = "0\t1\t2\tgov\tx\tx\tx\tx\tPremise.\tHypothesis.\tneutral\tneutral\n";
        write(d, "MNLI", "train.tsv", &format!("{mnli_header}{row}"));
        write(
            d,
            "MNLI",
            "dev_matched.tsv",
            &format!(
                "{}{}",
                mnli_header.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t"),
                row.replace("neutral\tneutral", "neutral\tneutral\tneutral\tneutral\tneutral\tentailment")
            ),
        );
        let mnli = load(d, GlueTask::Mnli).unwrap();
        assert_eq!(mnli.train[0].label, Label::Class(2));
        assert_eq!(mnli.test[0].label, Label::Class(1), "gold label is the last column");
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "RTE",
            "train.tsv",
            "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tA.\tB.\tmaybe\n",
        );
        write(dir.path(), "RTE", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n");
        let e = load(dir.path(), GlueTask::Rte).unwrap_err().to_string();
        assert!(e.contains("RTE/train.tsv:3") && e.contains("maybe"), "{e}");
        write(dir.path(), "SST-2", "train.tsv", "sentence\tlabel\nonly one field\n");
        write(dir.path(), "SST-2", "dev.tsv", "sentence\tlabel\ngood\t1\n");
        let e = load(dir.path(), GlueTask::Sst2).unwrap_err().to_string();
        assert!(e.contains("SST-2/train.tsv:2") && e.contains("at least 2"), "{e}");
        let e = load(&dir.path().join("nowhere"), GlueTask::Cola).unwrap_err().to_string();
        assert!(e.contains("CoLA") && e.contains("not found"), "{e}");
    }

    #[test]
    fn names_parse_loosely() {
        assert_eq!(GlueTask::parse("SST-2"), Some(GlueTask::Sst2));
        assert_eq!(GlueTask::parse("sts_b"), Some(GlueTask::Stsb));
        assert_eq!(GlueTask::parse("squad"), None);
    }
}
