//! Tokenisation with a Hugging Face `tokenizer.json`, without padding (batches pad to their own
//! longest sequence) and with pair-aware truncation to a maximum length.

use crate::{DataError, Example, Result};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Token ids and segment ids of one example, unpadded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, including special tokens.
    pub ids: Vec<i64>,
    /// Segment ids (0 for the first text, 1 for the second).
    pub type_ids: Vec<i64>,
}

/// A tokenizer configured for pelt's batches.
pub struct TextTokenizer {
    inner: Tokenizer,
    path: String,
    /// Id of the padding token.
    pub pad_id: i64,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("path", &self.path).finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, switches off its built-in padding (all-MiniLM-L6-v2 pads every input to
    /// 128) and truncates to `max_len` tokens, longest text first.
    pub fn load(path: &Path, max_len: usize) -> Result<TextTokenizer> {
        let shown = path.display().to_string();
        let err = |message: String| DataError::Tokenizer { path: shown.clone(), message };
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let pad_id = inner.get_padding().map_or(0, |p| p.pad_id as i64);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(TextTokenizer { inner, path: shown, pad_id })
    }

    /// Encodes examples (pairs as `[CLS] a [SEP] b [SEP]`).
    pub fn encode(&self, examples: &[Example]) -> Result<Vec<Encoding>> {
        let err = |e: tokenizers::Error| DataError::Tokenizer { path: self.path.clone(), message: e.to_string() };
        let to_enc = |e: tokenizers::Encoding| Encoding {
            ids: e.get_ids().iter().map(|&i| i64::from(i)).collect(),
            type_ids: e.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
        };
        let mut out = Vec::with_capacity(examples.len());
        // Batches of 256 keep memory flat on long documents; each batch is encoded in one call.
        for chunk in examples.chunks(256) {
            let encs = if chunk.iter().all(|e| e.text_b.is_none()) {
                let texts: Vec<&str> = chunk.iter().map(|e| e.text_a.as_str()).collect();
                self.inner.encode_batch(texts, true).map_err(err)?
            } else {
                let pairs: Vec<(String, String)> =
                    chunk.iter().map(|e| (e.text_a.clone(), e.text_b.clone().unwrap_or_default())).collect();
                self.inner.encode_batch(pairs, true).map_err(err)?
            };
            out.extend(encs.into_iter().map(to_enc));
        }
        Ok(out)
    }

    /// Token ids of texts without special tokens, each cut to `max` tokens (summaries as decoder
    /// targets: the decoder adds its own start and end tokens).
    pub fn encode_targets(&self, texts: &[&str], max: usize) -> Result<Vec<Vec<i64>>> {
        let err = |e: tokenizers::Error| DataError::Tokenizer { path: self.path.clone(), message: e.to_string() };
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            for e in self.inner.encode_batch(chunk.to_vec(), false).map_err(err)? {
                out.push(e.get_ids().iter().take(max).map(|&i| i64::from(i)).collect());
            }
        }
        Ok(out)
    }

    /// The text of token ids, special tokens left out (generated summaries).
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        self.inner
            .decode(&ids, true)
            .map_err(|e| DataError::Tokenizer { path: self.path.clone(), message: e.to_string() })
    }

    /// The tokenizer's pieces of a text (ROUGE tokens for scripts that `latin_tokens` would erase).
    pub fn pieces(&self, text: &str) -> Vec<String> {
        self.inner.encode(text, false).map(|e| e.get_tokens().to_vec()).unwrap_or_default()
    }

    /// The id of a token of the vocabulary (`[CLS]`, `</s>`).
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The (start, end) ids a decoder warm-started from this tokenizer's encoder uses: `[CLS]` and
    /// `[SEP]` (BERT's vocabularies), or `<s>` and `</s>` (RoBERTa's, MPNet's); `None` with neither.
    pub fn decoder_ids(&self) -> Option<(i64, i64)> {
        let id = |names: [&str; 2]| names.iter().find_map(|n| self.token_id(n));
        Some((id(["[CLS]", "<s>"])?, id(["[SEP]", "</s>"])?))
    }

    /// Encodes sentences given as words (token classification), with special tokens and the tokenizer's
    /// truncation; for each encoding, the word each token comes from (`None` for special tokens).
    pub fn encode_words(&self, sentences: &[Vec<String>]) -> Result<Vec<(Encoding, Vec<Option<usize>>)>> {
        let err = |e: tokenizers::Error| DataError::Tokenizer { path: self.path.clone(), message: e.to_string() };
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(256) {
            let words: Vec<Vec<&str>> = chunk.iter().map(|s| s.iter().map(String::as_str).collect()).collect();
            for e in self.inner.encode_batch(words, true).map_err(err)? {
                let words = e.get_word_ids().iter().map(|w| w.map(|w| w as usize)).collect();
                let enc = Encoding {
                    ids: e.get_ids().iter().map(|&i| i64::from(i)).collect(),
                    type_ids: e.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
                };
                out.push((enc, words));
            }
        }
        Ok(out)
    }

    /// Encodes plain sentences.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        let examples: Vec<Example> = texts
            .iter()
            .map(|t| Example { text_a: t.to_string(), text_b: None, label: crate::Label::Class(0) })
            .collect();
        self.encode(&examples)
    }
}

/// A padded batch as flat row-major buffers: ids, mask and segment ids of shape (rows, len).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Padded {
    /// Token ids.
    pub ids: Vec<i64>,
    /// 1 for tokens, 0 for padding.
    pub mask: Vec<i64>,
    /// Segment ids.
    pub type_ids: Vec<i64>,
    /// Number of rows.
    pub rows: usize,
    /// Padded length (the longest row).
    pub len: usize,
}

/// Pads encodings to the longest among them.
pub fn pad(encodings: &[&Encoding], pad_id: i64) -> Padded {
    pad_to(encodings, pad_id, 0)
}

/// Pads encodings to the longest among them or to `len`, whichever is longer (a fixed length, as
/// reference code that pads every batch to `max_seq_length` does).
pub fn pad_to(encodings: &[&Encoding], pad_id: i64, len: usize) -> Padded {
    let len = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(len);
    let rows = encodings.len();
    let mut p =
        Padded { ids: vec![pad_id; rows * len], mask: vec![0; rows * len], type_ids: vec![0; rows * len], rows, len };
    for (r, e) in encodings.iter().enumerate() {
        let o = r * len;
        p.ids[o..o + e.ids.len()].copy_from_slice(&e.ids);
        p.type_ids[o..o + e.ids.len()].copy_from_slice(&e.type_ids);
        p.mask[o..o + e.ids.len()].fill(1);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_longest() {
        let a = Encoding { ids: vec![101, 7, 102], type_ids: vec![0, 0, 0] };
        let b = Encoding { ids: vec![101, 102], type_ids: vec![0, 0] };
        let p = pad(&[&a, &b], 0);
        assert_eq!((p.rows, p.len), (2, 3));
        assert_eq!(p.ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(p.mask, vec![1, 1, 1, 1, 1, 0]);
        // A fixed length pads further; a shorter one changes nothing.
        let p = pad_to(&[&a, &b], 0, 5);
        assert_eq!((p.rows, p.len), (2, 5));
        assert_eq!(p.ids, vec![101, 7, 102, 0, 0, 101, 102, 0, 0, 0]);
        assert_eq!(p.mask, vec![1, 1, 1, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(pad_to(&[&a, &b], 0, 2), pad(&[&a, &b], 0));
    }
}
