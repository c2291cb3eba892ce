//! Corpus metrics of generated text against several references each, as sacreBLEU 2 computes them:
//! BLEU-4 (its defaults: the `13a` tokenizer, `exp` smoothing, the closest reference length, n-gram
//! counts clipped by the most of any reference) and chrF++ (character n-grams 1–6 without whitespace,
//! word n-grams 1–2 with sacreBLEU's punctuation split, β = 2, per segment the reference of best F, the
//! statistics summed over the corpus). chrF++ rather than METEOR: it needs no WordNet or Java, is defined
//! and versioned in sacreBLEU, and is the WebNLG 2020 challenge's second metric.

use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// sacreBLEU's `13a` tokenizer (mteval-v13a's).
pub fn tokenize_13a(line: &str) -> String {
    static RULES: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (Regex::new(r"([\{-~\[-` -&\(-\+:-@/])").expect("regex"), " $1 "),
            (Regex::new(r"([^0-9])([\.,])").expect("regex"), "$1 $2 "),
            (Regex::new(r"([\.,])([^0-9])").expect("regex"), " $1 $2"),
            (Regex::new(r"([0-9])(-)").expect("regex"), "$1 $2 "),
        ]
    });
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, repl) in rules {
        line = re.replace_all(&line, *repl).into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn word_ngrams(tokens: &[&str], n: usize) -> HashMap<Vec<String>, usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w.iter().map(|s| s.to_string()).collect()).or_insert(0) += 1;
        }
    }
    counts
}

/// Corpus BLEU (0–100) of `hypotheses` against their `references` (any number per hypothesis).
pub fn bleu(hypotheses: &[String], references: &[Vec<String>]) -> f64 {
    let (mut correct, mut total) = ([0usize; 4], [0usize; 4]);
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let hyp = tokenize_13a(hyp);
        let h: Vec<&str> = hyp.split_whitespace().collect();
        let refs: Vec<String> = refs.iter().map(|r| tokenize_13a(r)).collect();
        let refs: Vec<Vec<&str>> = refs.iter().map(|r| r.split_whitespace().collect()).collect();
        // The closest reference length; on a tie, the shorter.
        let closest = refs.iter().map(Vec::len).min_by_key(|&l| (l.abs_diff(h.len()), l)).unwrap_or(0);
        sys_len += h.len();
        ref_len += closest;
        for n in 1..=4 {
            let mut most: HashMap<Vec<String>, usize> = HashMap::new();
            for r in &refs {
                for (g, c) in word_ngrams(r, n) {
                    let e = most.entry(g).or_insert(0);
                    *e = (*e).max(c);
                }
            }
            for (g, c) in word_ngrams(&h, n) {
                correct[n - 1] += c.min(most.get(&g).copied().unwrap_or(0));
                total[n - 1] += c;
            }
        }
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; 4];
    let mut smooth = 1.0;
    for n in 0..4 {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    // sacreBLEU's my_log: log(0) counts as −9999999999.
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / 4.0).exp()
}

const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// sacreBLEU's chrF word split: whitespace, then one punctuation mark cut off a word's end (or else its
/// start).
fn chrf_words(sentence: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in sentence.split_whitespace() {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() == 1 {
            out.push(w.to_owned());
        } else if PUNCTS.contains(chars[chars.len() - 1]) {
            out.push(chars[..chars.len() - 1].iter().collect());
            out.push(chars[chars.len() - 1].to_string());
        } else if PUNCTS.contains(chars[0]) {
            out.push(chars[0].to_string());
            out.push(chars[1..].iter().collect());
        } else {
            out.push(w.to_owned());
        }
    }
    out
}

/// The n-gram counters chrF++ compares: character 1–6 (whitespace removed), then word 1–2.
fn chrf_ngrams(sentence: &str) -> Vec<HashMap<Vec<String>, usize>> {
    let chars: Vec<String> = sentence.split_whitespace().flat_map(|w| w.chars()).map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    let words = chrf_words(sentence);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut all: Vec<_> = (1..=6).map(|n| word_ngrams(&chars, n)).collect();
    all.extend((1..=2).map(|n| word_ngrams(&words, n)));
    all
}

/// chrF's F-score of [hyp, ref, match] statistics per order (sacreBLEU's effective-order averaging).
fn chrf_score(stats: &[[usize; 3]]) -> f64 {
    let eps = 1e-16;
    let factor = 4.0; // β²
    let (mut avg_prec, mut avg_rec, mut effective) = (0.0, 0.0, 0usize);
    for &[hyp, rf, matched] in stats {
        let prec = if hyp > 0 { matched as f64 / hyp as f64 } else { eps };
        let rec = if rf > 0 { matched as f64 / rf as f64 } else { eps };
        if hyp > 0 && rf > 0 {
            avg_prec += prec;
            avg_rec += rec;
            effective += 1;
        }
    }
    if effective == 0 {
        return 0.0;
    }
    let (p, r) = (avg_prec / effective as f64, avg_rec / effective as f64);
    if p + r == 0.0 {
        0.0
    } else {
        100.0 * (1.0 + factor) * p * r / (factor * p + r)
    }
}

/// Corpus chrF++ (0–100) of `hypotheses` against their `references`.
pub fn chrf_pp(hypotheses: &[String], references: &[Vec<String>]) -> f64 {
    let mut totals = vec![[0usize; 3]; 8];
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let h = chrf_ngrams(hyp);
        let mut best: Option<(f64, Vec<[usize; 3]>)> = None;
        for r in refs {
            let r = chrf_ngrams(r);
            let stats: Vec<[usize; 3]> = h
                .iter()
                .zip(&r)
                .map(|(hc, rc)| {
                    let matched = hc.iter().map(|(g, &c)| c.min(rc.get(g).copied().unwrap_or(0))).sum();
                    [hc.values().sum(), rc.values().sum(), matched]
                })
                .collect();
            let f = chrf_score(&stats);
            if best.as_ref().is_none_or(|(b, _)| f > *b) {
                best = Some((f, stats));
            }
        }
        if let Some((_, stats)) = best {
            for (t, s) in totals.iter_mut().zip(stats) {
                for k in 0..3 {
                    t[k] += s[k];
                }
            }
        }
    }
    chrf_score(&totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_as_13a() {
        // sacreBLEU 2.4.3 gives the same (the apostrophe is not among 13a's symbols).
        assert_eq!(tokenize_13a("Hello, world. It's 3.5-4 km!"), "Hello , world . It's 3.5 - 4 km !");
        assert_eq!(tokenize_13a("a &amp; b"), "a & b");
    }

    #[test]
    fn identical_text_scores_100_and_disjoint_text_0() {
        let hyp = vec!["the cat sat on the mat".to_owned()];
        let refs = vec![vec!["the cat sat on the mat".to_owned()]];
        assert!((bleu(&hyp, &refs) - 100.0).abs() < 1e-9);
        assert!((chrf_pp(&hyp, &refs) - 100.0).abs() < 1e-9);
        let other = vec![vec!["zzz qqq".to_owned()]];
        assert_eq!(bleu(&hyp, &other), 0.0);
    }
}
