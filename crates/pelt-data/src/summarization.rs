//! Summarization data and scoring: the XL-Sum JSONL reader (Hasan et al. 2021: one folder per language,
//! `<language>_{train,val,test}.jsonl`, one article per line with `id`, `url`, `title`, `summary`,
//! `text`) and ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004) as Google's `rouge_score` computes them.
//!
//! Tokenisation for ROUGE follows `rouge_score`'s default for Latin-script text (lowercase, every run of
//! characters other than a–z and 0–9 is a separator; no stemming), and XL-Sum's multilingual scorer for
//! other scripts: the caller passes the backbone's own tokenizer (the SentencePiece model of an mT5) and
//! its pieces are the tokens, since splitting on non-Latin characters would erase the text.

use crate::{DataError, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// One XL-Sum article.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Article {
    /// Article id.
    pub id: String,
    /// Source URL.
    pub url: String,
    /// Headline.
    pub title: String,
    /// The reference summary (the article's bold introductory sentence).
    pub summary: String,
    /// Article body.
    pub text: String,
}

/// Every reference of each item of a split.
pub type References = Vec<Vec<String>>;

/// A summarization set's splits (one XL-Sum language, or the BBC headline set).
#[derive(Debug, Clone)]
pub struct SummarySplits {
    /// The set's name: an XL-Sum language (its folder's name), or `bbc_headlines`.
    pub name: String,
    /// Training articles.
    pub train: Vec<Article>,
    /// Validation articles.
    pub val: Vec<Article>,
    /// Test articles.
    pub test: Vec<Article>,
    /// Every reference of each validation and test item, for a task with several (data-to-text);
    /// `None`: each item's `summary` alone.
    pub references: Option<(References, References)>,
    /// The structured inputs (tables, triple sets) of the training, validation and test items, for a
    /// data-to-text task (PCG plans its content from them); `None` for summarization.
    pub inputs: Option<[Vec<crate::d2t::Input>; 3]>,
}

/// Reads one JSONL file of articles; errors name the file, the line and the missing or bad field.
pub fn read_jsonl(path: &Path) -> Result<Vec<Article>> {
    let text =
        std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.display().to_string(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let article: Article = serde_json::from_str(line).map_err(|e| DataError::Malformed {
            path: path.display().to_string(),
            line: i + 1,
            message: format!("not an XL-Sum article (id, url, title, summary, text): {e}"),
        })?;
        out.push(article);
    }
    Ok(out)
}

/// Reads `dir/<language>_{train,val,test}.jsonl`, the layout of XL-Sum's release (`dir` is the
/// language's folder; its name is the language).
pub fn xlsum(dir: &Path) -> Result<SummarySplits> {
    let language = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DataError::Sampling(format!("{}: not a language folder", dir.display())))?;
    let split = |name: &str| read_jsonl(&dir.join(format!("{language}_{name}.jsonl")));
    Ok(SummarySplits {
        train: split("train")?,
        val: split("val")?,
        test: split("test")?,
        name: language,
        references: None,
        inputs: None,
    })
}

/// BBC News article → headline, the shipped stand-in for XL-Sum: `<dir>/<topic>/NNN.txt`, first line the
/// headline (the summary), the rest the article (whitespace collapsed; Latin-1 files read as such).
/// Fixed (seed 0) 80 / 10 / 10 train / val / test split of all 2,225 articles.
pub fn bbc_headlines(dir: &Path) -> Result<SummarySplits> {
    use rand::{seq::SliceRandom, SeedableRng};
    let mut articles = Vec::new();
    for (_, id, text) in crate::shipped::bbc_files(dir)? {
        let mut lines = text.lines();
        let title = lines.next().unwrap_or("").trim().to_owned();
        let body = lines.collect::<Vec<_>>().join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
        if title.is_empty() || body.is_empty() {
            return Err(DataError::Malformed {
                path: dir.join(format!("{id}.txt")).display().to_string(),
                line: 1,
                message: "expected a headline line, then the article".into(),
            });
        }
        articles.push(Article { id, url: String::new(), summary: title.clone(), title, text: body });
    }
    articles.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let (n_val, n_test) = (articles.len() / 10, articles.len() / 10);
    let test = articles.split_off(articles.len() - n_test);
    let val = articles.split_off(articles.len() - n_val);
    Ok(SummarySplits { name: "bbc_headlines".into(), train: articles, val, test, references: None, inputs: None })
}

/// ACLSum (Takeshita et al. 2024, "ACLSum: A New Dataset for Aspect-based Summarization of Scientific
/// Publications"), as the PyPI package `aclsum` 0.1.2 ships it: `<dir>/{train,val,test}.jsonl`, one paper
/// per line with its sentences by section and one summary per aspect (`challenge`, `approach`,
/// `outcome`). Each (paper, aspect) becomes one example: the text is the aspect's name, then the
/// abstract, introduction and conclusion; the summary is the aspect's. 297 / 147 / 297 examples.
pub fn aclsum(dir: &Path) -> Result<SummarySplits> {
    #[derive(Deserialize)]
    struct Paper {
        id: String,
        title: String,
        summary: HashMap<String, String>,
        sentences: HashMap<String, Vec<String>>,
    }
    let read = |split: &str| -> Result<Vec<Article>> {
        let path = dir.join(format!("{split}.jsonl"));
        let text = std::fs::read_to_string(&path)
            .map_err(|source| DataError::Io { path: path.display().to_string(), source })?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |message: String| DataError::Malformed { path: path.display().to_string(), line: i + 1, message };
            let paper: Paper = serde_json::from_str(line)
                .map_err(|e| bad(format!("not an ACLSum paper (id, title, summary, sentences): {e}")))?;
            let body: Vec<&str> = ["abstract", "introduction", "conclusion"]
                .iter()
                .flat_map(|s| paper.sentences.get(*s).into_iter().flatten().map(String::as_str))
                .collect();
            for aspect in ["challenge", "approach", "outcome"] {
                let summary = paper.summary.get(aspect).ok_or_else(|| bad(format!("no `{aspect}` summary")))?;
                out.push(Article {
                    id: format!("{}:{aspect}", paper.id),
                    url: String::new(),
                    title: paper.title.clone(),
                    summary: summary.clone(),
                    text: format!("{aspect}: {}", body.join(" ")),
                });
            }
        }
        Ok(out)
    };
    Ok(SummarySplits {
        name: "aclsum".into(),
        train: read("train")?,
        val: read("val")?,
        test: read("test")?,
        references: None,
        inputs: None,
    })
}

/// Whether a text is written mostly in Latin script (scored on [`latin_tokens`]); otherwise XL-Sum's
/// scorer tokenises it with the model's own tokenizer.
pub fn is_latin(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let latin = letters.iter().filter(|c| c.is_ascii_alphabetic() || ('\u{c0}'..='\u{24f}').contains(c)).count();
    letters.is_empty() || 2 * latin >= letters.len()
}

/// `rouge_score`'s default tokenisation: lowercase, anything but a–z and 0–9 separates tokens.
pub fn latin_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// ROUGE scores of one candidate against one reference, F1 in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rouge {
    /// Unigram overlap F1.
    pub rouge1: f64,
    /// Bigram overlap F1.
    pub rouge2: f64,
    /// Longest-common-subsequence F1.
    pub rouge_l: f64,
}

fn f1(overlap: f64, candidate: usize, reference: usize) -> f64 {
    if overlap == 0.0 || candidate == 0 || reference == 0 {
        return 0.0;
    }
    let (p, r) = (overlap / candidate as f64, overlap / reference as f64);
    2.0 * p * r / (p + r)
}

fn grams(t: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m: HashMap<&[String], usize> = HashMap::new();
    for w in t.windows(n) {
        *m.entry(w).or_default() += 1;
    }
    m
}

fn ngram_f1(c: &[String], r: &[String], n: usize) -> f64 {
    let (gc, gr) = (grams(c, n), grams(r, n));
    // Clipped counts: an n-gram matches at most as often as it occurs in the reference.
    let overlap: usize = gc.iter().map(|(g, &k)| k.min(gr.get(g).copied().unwrap_or(0))).sum();
    f1(overlap as f64, c.len().saturating_sub(n - 1), r.len().saturating_sub(n - 1))
}

fn lcs(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { row[j + 1].max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// ROUGE-1, -2 and -L F1 of token sequences.
pub fn rouge(candidate: &[String], reference: &[String]) -> Rouge {
    Rouge {
        rouge1: ngram_f1(candidate, reference, 1),
        rouge2: ngram_f1(candidate, reference, 2),
        rouge_l: f1(lcs(candidate, reference) as f64, candidate.len(), reference.len()),
    }
}

/// Mean ROUGE over pairs of (candidate, reference) texts, tokenised by `tokens` (use [`latin_tokens`]
/// for Latin scripts, the backbone's SentencePiece pieces for others).
pub fn corpus_rouge(pairs: &[(String, String)], tokens: impl Fn(&str) -> Vec<String>) -> Rouge {
    let mut total = Rouge::default();
    for (c, r) in pairs {
        let s = rouge(&tokens(c), &tokens(r));
        total.rouge1 += s.rouge1;
        total.rouge2 += s.rouge2;
        total.rouge_l += s.rouge_l;
    }
    let n = pairs.len().max(1) as f64;
    Rouge { rouge1: total.rouge1 / n, rouge2: total.rouge2 / n, rouge_l: total.rouge_l / n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        latin_tokens(s)
    }

    #[test]
    fn rouge_matches_hand_computed_values() {
        // rouge_score's README example: "The quick brown fox jumps over the lazy dog" against "The quick
        // brown dog jumps on the log." Unigrams: candidate 9 tokens, reference 8; overlap the, quick,
        // brown, dog, jumps, the = 6 → P 6/9, R 6/8, F 0.7059. Bigrams: 8 and 7; overlap "the quick",
        // "quick brown" = 2 → P 2/8, R 2/7, F 0.2667. LCS "the quick brown jumps the" = 5 → P 5/9, R 5/8,
        // F 0.5882.
        let s =
            rouge(&toks("The quick brown fox jumps over the lazy dog"), &toks("The quick brown dog jumps on the log."));
        assert!((s.rouge1 - 12.0 / 17.0).abs() < 1e-9, "{s:?}");
        assert!((s.rouge2 - 4.0 / 15.0).abs() < 1e-9, "{s:?}");
        assert!((s.rouge_l - 10.0 / 17.0).abs() < 1e-9, "{s:?}");
        // Clipping: "the the the" against "the cat": one "the" matches → P 1/3, R 1/2, F 0.4.
        assert!((rouge(&toks("the the the"), &toks("the cat")).rouge1 - 0.4).abs() < 1e-9);
        // Nothing in common, or an empty side: 0.
        assert_eq!(rouge(&toks("a b"), &toks("c d")), Rouge::default());
        assert_eq!(rouge(&toks(""), &toks("c d")), Rouge::default());
        // Identical: 1.
        let same = rouge(&toks("Stocks fell 3% on Monday."), &toks("stocks fell 3 on monday"));
        assert_eq!((same.rouge1, same.rouge2, same.rouge_l), (1.0, 1.0, 1.0));
    }

    #[test]
    fn latin_script_is_told_apart() {
        assert!(is_latin("Stocks fell on Monday"));
        assert!(is_latin("Les élèves ont réussi"));
        assert!(!is_latin("বাংলাদেশের অর্থনীতি"));
        assert!(!is_latin("中国经济 GDP"));
    }

    #[test]
    fn aclsum_papers_become_one_example_per_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let paper = r#"{"id": "P1", "title": "T", "summary": {"challenge": "C.", "approach": "A.", "outcome": "O."}, "sentences": {"abstract": ["We do x ."], "introduction": ["X matters ."], "conclusion": ["It works ."]}, "highlights": {}}"#;
        for split in ["train", "val", "test"] {
            std::fs::write(dir.path().join(format!("{split}.jsonl")), format!("{paper}\n")).unwrap();
        }
        let ds = aclsum(dir.path()).unwrap();
        assert_eq!(ds.train.len(), 3);
        assert_eq!(ds.train[1].summary, "A.");
        assert_eq!(ds.train[1].text, "approach: We do x . X matters . It works .");
        std::fs::write(dir.path().join("val.jsonl"), "{\"id\": \"P2\"}\n").unwrap();
        let err = aclsum(dir.path()).unwrap_err().to_string();
        assert!(err.contains("val.jsonl:1") && err.contains("missing field"), "{err}");
    }

    #[test]
    fn latin_tokens_drop_punctuation_and_non_latin_script_needs_pieces() {
        assert_eq!(latin_tokens("U.S. GDP grew 2.5%!"), vec!["u", "s", "gdp", "grew", "2", "5"]);
        // Bengali text has no a–z: the default tokenisation erases it, which is why XL-Sum scores
        // non-Latin languages on SentencePiece pieces.
        assert!(latin_tokens("বাংলাদেশের অর্থনীতি").is_empty());
        let pieces = |s: &str| s.chars().map(|c| c.to_string()).collect::<Vec<_>>();
        let s = corpus_rouge(&[("অর্থ".into(), "অর্থনীতি".into())], pieces);
        assert!(s.rouge1 > 0.5 && s.rouge1 < 1.0, "{s:?}");
    }

    #[test]
    fn xlsum_folders_read_and_bad_lines_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let lang = dir.path().join("english");
        std::fs::create_dir_all(&lang).unwrap();
        let line = |i: usize| {
            format!(
                r#"{{"id": "a{i}", "url": "https://www.bbc.com/news/{i}", "title": "T{i}", "summary": "S{i}", "text": "Body {i}."}}"#
            )
        };
        for (split, n) in [("train", 3), ("val", 1), ("test", 2)] {
            let text: String = (0..n).map(|i| line(i) + "\n").collect();
            std::fs::write(lang.join(format!("english_{split}.jsonl")), text).unwrap();
        }
        let ds = xlsum(&lang).unwrap();
        assert_eq!((ds.name.as_str(), ds.train.len(), ds.val.len(), ds.test.len()), ("english", 3, 1, 2));
        assert_eq!(ds.train[2].summary, "S2");
        std::fs::write(lang.join("english_val.jsonl"), format!("{}\n{{\"id\": \"x\", \"url\": \"u\"}}\n", line(0)))
            .unwrap();
        let err = xlsum(&lang).unwrap_err().to_string();
        assert!(err.contains("english_val.jsonl:2") && err.contains("missing field `title`"), "{err}");
    }
}
