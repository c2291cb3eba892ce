//! Token classification data in the CoNLL layout (one token per line, its tag in the last column, a blank
//! line between sentences) and entity-level scores as seqeval / conlleval compute them.
//!
//! The reader takes every variant the shipped NER sets and CoNLL-2003 use: tab- or space-separated
//! columns (CoNLL-2003's `eng.train` has four: token, POS, chunk, NER; the two-column files token and
//! tag), LF or CRLF line endings, `-DOCSTART-` lines (skipped, with any separator after them), several
//! blank lines in a row. Every token line of a file has as many columns as its first (a third column in a
//! two-column file is refused, not guessed at). Tags are `O`, `B-<type>` or `I-<type>` (IOB2, or IOB1
//! where an entity may start with `I-`); anything else is refused with the file, line and what was
//! expected. [`parse_strict`] also refuses an `I-<type>` that does not continue a `B-` or `I-` of its type
//! (strict IOB2).
//!
//! [`entities`] follows seqeval's default mode (conlleval's chunking): a chunk starts at `B-`, or at an
//! `I-` after `O` or after another type, and ends where the next token does not continue it.
//! [`score`] is seqeval's micro precision, recall and F1 over (type, start, end) spans.

use crate::DataError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One sentence: its tokens and their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The tokens as written.
    pub tokens: Vec<String>,
    /// One tag per token: `O`, `B-<type>` or `I-<type>`.
    pub tags: Vec<String>,
}

/// Reads a CoNLL-layout file.
pub fn read(path: &Path) -> Result<Vec<Sentence>, DataError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: shown.clone(), source })?;
    parse(&bytes, &shown)
}

/// Parses CoNLL-layout bytes; `shown` names the source in errors.
pub fn parse(bytes: &[u8], shown: &str) -> Result<Vec<Sentence>, DataError> {
    parse_with(bytes, shown, false)
}

/// [`parse`], refusing an `I-<type>` that does not continue an entity of its type (strict IOB2).
pub fn parse_strict(bytes: &[u8], shown: &str) -> Result<Vec<Sentence>, DataError> {
    parse_with(bytes, shown, true)
}

fn parse_with(bytes: &[u8], shown: &str, strict: bool) -> Result<Vec<Sentence>, DataError> {
    let malformed = |line: usize, message: String| DataError::Malformed { path: shown.to_owned(), line, message };
    let mut columns = None;
    let mut sentences = Vec::new();
    let mut current = Sentence { tokens: Vec::new(), tags: Vec::new() };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| malformed(line, format!("not UTF-8 ({e})")))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.starts_with("-DOCSTART-") {
            continue;
        }
        let fields: Vec<&str> = text.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
        if fields.is_empty() {
            if !current.tokens.is_empty() {
                sentences.push(std::mem::replace(&mut current, Sentence { tokens: Vec::new(), tags: Vec::new() }));
            }
            continue;
        }
        if fields.len() < 2 {
            return Err(malformed(
                line,
                format!("`{text}`: expected a token and its tag, separated by a tab or a space"),
            ));
        }
        let want = *columns.get_or_insert(fields.len());
        if fields.len() != want {
            return Err(malformed(
                line,
                format!("{} columns, expected {want} as on the file's first token line", fields.len()),
            ));
        }
        let tag = fields[fields.len() - 1];
        if !is_tag(tag) {
            return Err(malformed(line, format!("tag `{tag}`: expected O, B-<type> or I-<type>")));
        }
        if let (true, Some(ty)) = (strict, tag.strip_prefix("I-")) {
            let continues = current.tags.last().and_then(|p| p.get(2..)).is_some_and(|prev| prev == ty);
            if !continues {
                return Err(malformed(line, format!("`{tag}` does not continue a B-{ty} or I-{ty} (strict IOB2)")));
            }
        }
        current.tokens.push(fields[0].to_owned());
        current.tags.push(tag.to_owned());
    }
    if !current.tokens.is_empty() {
        sentences.push(current);
    }
    if sentences.is_empty() {
        return Err(malformed(1, "no sentences: expected token and tag lines".into()));
    }
    Ok(sentences)
}

fn is_tag(tag: &str) -> bool {
    tag == "O" || ["B-", "I-"].iter().any(|p| tag.strip_prefix(p).is_some_and(|t| !t.is_empty()))
}

/// The entity types the tags name, sorted.
pub fn entity_types(sentences: &[Sentence]) -> Vec<String> {
    let types: BTreeSet<&str> =
        sentences.iter().flat_map(|s| s.tags.iter()).filter_map(|t| t.split_once('-').map(|(_, ty)| ty)).collect();
    types.into_iter().map(str::to_owned).collect()
}

/// K-shot sampling from a pool (the greedy scheme of few-shot NER, Yang & Katiyar 2020): the sentences in
/// an order drawn with `seed`, each taken while one of its entity types has fewer than `k` mentions in
/// the sample; sentences without entities are left out. Returns pool positions, sorted. Types the pool
/// has fewer than `k` mentions of end with all of them.
pub fn k_shot(pool: &[Sentence], k: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut taken = Vec::new();
    for i in order {
        let spans = entities(&pool[i].tags);
        if spans.iter().any(|(ty, _, _)| counts.get(ty).copied().unwrap_or(0) < k) {
            for (ty, _, _) in spans {
                *counts.entry(ty).or_default() += 1;
            }
            taken.push(i);
        }
    }
    taken.sort_unstable();
    taken
}

/// An entity: its type and its first and last token (inclusive), counted over the whole sequence.
pub type Span = (String, usize, usize);

/// (prefix, type) of a tag: `B-PER` → ('B', "PER"), `O` → ('O', "_"), as seqeval reads them.
fn split(tag: &str) -> (char, &str) {
    let prefix = tag.chars().next().unwrap_or('O');
    let ty = tag.get(1..).and_then(|rest| rest.split_once('-').map(|(_, t)| t)).filter(|t| !t.is_empty());
    (prefix, ty.unwrap_or("_"))
}

/// The entities of a tag sequence, as seqeval's `get_entities` (default mode) finds them. Sentences
/// are scored as one sequence with an `O` between them, as seqeval joins lists of lists.
pub fn entities<S: AsRef<str>>(tags: &[S]) -> Vec<Span> {
    let mut spans = Vec::new();
    let (mut prev, mut prev_type, mut begin) = ('O', "".to_owned(), 0usize);
    let sentinel = ["O"];
    for (i, tag) in tags.iter().map(AsRef::as_ref).chain(sentinel).enumerate() {
        let (prefix, ty) = split(tag);
        // conlleval's end_of_chunk and start_of_chunk, IOBES prefixes included as seqeval reads them.
        let ends = matches!(prev, 'E' | 'S')
            || (matches!(prev, 'B' | 'I') && matches!(prefix, 'B' | 'S' | 'O'))
            || (prev != 'O' && prev != '.' && prev_type != ty);
        if ends {
            spans.push((prev_type.clone(), begin, i - 1));
        }
        let starts = matches!(prefix, 'B' | 'S')
            || (matches!(prev, 'E' | 'S' | 'O') && matches!(prefix, 'E' | 'I'))
            || (prefix != 'O' && prefix != '.' && prev_type != ty);
        if starts {
            begin = i;
        }
        prev = prefix;
        prev_type = ty.to_owned();
    }
    spans
}

/// Precision, recall and F1 (0–1) of predicted spans against gold ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prf {
    /// Correct predicted spans over predicted spans.
    pub precision: f64,
    /// Correct predicted spans over gold spans.
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
    /// Gold spans.
    pub support: usize,
}

fn prf(correct: usize, predicted: usize, gold: usize) -> Prf {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(correct, predicted), ratio(correct, gold));
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Prf { precision, recall, f1, support: gold }
}

/// Entity-level scores of predicted tag sequences against gold ones (sentence by sentence, equal
/// lengths): micro over all spans, and per type.
pub fn score<S: AsRef<str>>(gold: &[Vec<S>], predicted: &[Vec<S>]) -> (Prf, BTreeMap<String, Prf>) {
    let join = |seqs: &[Vec<S>]| -> Vec<String> {
        let mut all = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            if i > 0 {
                all.push("O".to_owned());
            }
            all.extend(s.iter().map(|t| t.as_ref().to_owned()));
        }
        all
    };
    let gold: BTreeSet<Span> = entities(&join(gold)).into_iter().collect();
    let predicted: BTreeSet<Span> = entities(&join(predicted)).into_iter().collect();
    let correct = gold.intersection(&predicted).count();
    let micro = prf(correct, predicted.len(), gold.len());
    let types: BTreeSet<&String> = gold.iter().chain(&predicted).map(|s| &s.0).collect();
    let per_type = types
        .into_iter()
        .map(|ty| {
            let count = |set: &BTreeSet<Span>| set.iter().filter(|s| &s.0 == ty).count();
            let hits = gold.intersection(&predicted).filter(|s| &s.0 == ty).count();
            (ty.clone(), prf(hits, count(&predicted), count(&gold)))
        })
        .collect();
    (micro, per_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_layout_the_shipped_sets_use() {
        // MIT style: CRLF, a tab after -DOCSTART-, space-separated, blank lines in a row.
        let mit = b"-DOCSTART-\tO\r\n\r\nfour B-Rating\r\nstar I-Rating\r\nplaces O\r\n\r\n\r\ncheap B-Price\r\n";
        let s = parse(mit, "mit.txt").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["four", "star", "places"]);
        assert_eq!(s[0].tags, ["B-Rating", "I-Rating", "O"]);
        // CoNLL-2003's four columns: the tag is the last.
        let conll = b"EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n";
        assert_eq!(parse(conll, "eng.train").unwrap()[0].tags, ["I-ORG", "O"]);
        assert_eq!(entity_types(&s), ["Price", "Rating"]);
    }

    #[test]
    fn bad_lines_are_refused_with_file_line_and_what_was_expected() {
        let err = parse(b"a O\nb B-PER\nc PER\n", "x.conll").unwrap_err().to_string();
        assert!(err.contains("x.conll:3") && err.contains("`PER`") && err.contains("B-<type>"), "{err}");
        let err = parse(b"a O\nlonely\n", "y.conll").unwrap_err().to_string();
        assert!(err.contains("y.conll:2") && err.contains("token and its tag"), "{err}");
        let err = parse(b"a O\nb extra B-PER\n", "t.conll").unwrap_err().to_string();
        assert!(err.contains("t.conll:2") && err.contains("3 columns, expected 2"), "{err}");
        // Strict IOB2: an I- must continue its own type; the default (IOB1) reads it as a new entity.
        let iob1 = b"a O\nb I-PER\n\nc B-LOC\nd I-PER\n";
        assert_eq!(parse(iob1, "s.conll").unwrap().len(), 2);
        let err = parse_strict(iob1, "s.conll").unwrap_err().to_string();
        assert!(err.contains("s.conll:2") && err.contains("strict IOB2"), "{err}");
        let err = parse_strict(b"a B-LOC\nb I-LOC\nc I-PER\n", "s.conll").unwrap_err().to_string();
        assert!(err.contains("s.conll:3"), "{err}");
        assert!(parse_strict(b"a B-LOC\nb I-LOC\n", "s.conll").is_ok());
        // WNUT-17's test file opens with HTML-entity fragments as tokens: read as they are.
        assert_eq!(parse(b"&\tO\ngt\tO\n;\tO\n", "e.conll").unwrap()[0].tokens, ["&", "gt", ";"]);
        assert!(parse(b"\n\n", "z.conll").unwrap_err().to_string().contains("no sentences"));
        assert!(parse(b"a B-\n", "w.conll").is_err());
        let err = parse(b"a O\n\xff O\n", "u.conll").unwrap_err().to_string();
        assert!(err.contains("u.conll:2") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn entities_follow_conlleval_chunking() {
        let tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"];
        assert_eq!(
            entities(&tags),
            [
                ("PER".into(), 0, 1),
                ("LOC".into(), 3, 4), // IOB1: an entity may open with I-
                ("LOC".into(), 5, 5),
                ("ORG".into(), 6, 6), // a type change opens a new chunk
                ("MISC".into(), 8, 8),
            ]
        );
    }

    #[test]
    fn k_shot_samples_reach_k_mentions_of_every_type_and_depend_on_the_seed() {
        let s = |tags: &[&str]| Sentence {
            tokens: tags.iter().map(|_| "w".into()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        let pool: Vec<Sentence> = (0..40)
            .map(|i| match i % 4 {
                0 => s(&["B-PER", "O"]),
                1 => s(&["B-LOC", "I-LOC"]),
                2 => s(&["B-PER", "B-LOC"]),
                _ => s(&["O", "O"]),
            })
            .collect();
        let picked = k_shot(&pool, 3, 1);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for &i in &picked {
            assert!(!entities(&pool[i].tags).is_empty(), "no entity-free sentences");
            for (ty, _, _) in entities(&pool[i].tags) {
                *counts.entry(ty).or_default() += 1;
            }
        }
        assert!(counts.values().all(|&c| c >= 3), "{counts:?}");
        assert!(picked.len() <= 6, "greedy: no more sentences than K per type needs: {picked:?}");
        assert_eq!(picked, k_shot(&pool, 3, 1), "same seed, same sample");
        assert!((2..20).any(|seed| k_shot(&pool, 3, seed) != picked), "other seeds draw other samples");
    }

    #[test]
    fn scores_are_micro_over_spans_and_per_type() {
        let gold = vec![vec!["B-PER", "I-PER", "O"], vec!["B-LOC", "O"]];
        let pred = vec![vec!["B-PER", "O", "O"], vec!["B-LOC", "O"]];
        let (micro, per) = score(&gold, &pred);
        assert_eq!((micro.precision, micro.recall, micro.support), (0.5, 0.5, 2));
        assert_eq!(per["LOC"].f1, 1.0);
        assert_eq!(per["PER"].f1, 0.0);
    }
}
