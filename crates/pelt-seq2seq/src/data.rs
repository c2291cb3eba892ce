//! Summarization tasks as runs take them: BBC headlines and ACLSum from the assets, XL-Sum languages
//! from a user's folder in the release's layout; tokenised once per sweep; and the encoder-decoder a
//! summarization sweep trains.

use anyhow::{anyhow, bail, Result};
use pelt_backbone::Seq2Seq;
use pelt_data::{
    summarization::{is_latin, SummarySplits},
    Encoding, TextTokenizer,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Device;

/// Known shipped summarization task names (`xlsum:<language>` tasks come from a user's XL-Sum folder).
pub const SUMMARIZATION: [&str; 2] = ["bbc_headlines", "aclsum"];

/// Data-to-text task names (from the experiment's `d2t_dir`): E2E's tables, WebNLG 2017's triples.
pub const DATA_TO_TEXT: [&str; 2] = ["e2e", "webnlg"];

/// Whether a task is a seq2seq generation task — summarization (scored by ROUGE) or data-to-text
/// ([`DATA_TO_TEXT`], scored by BLEU, chrF++ and ROUGE-L against every reference).
pub fn is_summarization(task: &str) -> bool {
    SUMMARIZATION.contains(&task) || task.starts_with("xlsum:") || DATA_TO_TEXT.contains(&task)
}

/// Target and decoding settings of a summarization experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationSpec {
    /// Summary tokens kept as training targets (the decoder adds its start and end tokens).
    pub max_target_len: usize,
    /// Tokens generated at most.
    pub max_new_tokens: usize,
    /// 1: greedy decoding; more: beam search.
    pub num_beams: usize,
    /// Beam scores are divided by length^length_penalty.
    pub length_penalty: f64,
    /// No n-gram of this size is generated twice (0: no constraint).
    pub no_repeat_ngram_size: usize,
}

impl Default for GenerationSpec {
    fn default() -> Self {
        GenerationSpec {
            max_target_len: 32,
            max_new_tokens: 32,
            num_beams: 1,
            length_penalty: 1.0,
            no_repeat_ngram_size: 0,
        }
    }
}

/// A summarization task with its tokenised splits, prepared once per sweep.
#[derive(Debug, Clone)]
pub struct SummaryData {
    /// The articles and reference summaries.
    pub splits: SummarySplits,
    /// Encoder inputs of the training articles (special tokens added, cut to `max_len`).
    pub train: Vec<Encoding>,
    /// Target token ids of the training summaries (no special tokens, cut to `max_target_len`).
    pub targets: Vec<Vec<i64>>,
    /// Encoder inputs of the validation articles.
    pub val: Vec<Encoding>,
    /// Encoder inputs of the test articles.
    pub test: Vec<Encoding>,
    /// Whether the references are Latin script (ROUGE on `rouge_score`'s tokens); otherwise ROUGE runs on
    /// the tokenizer's pieces, as XL-Sum's multilingual scorer does.
    pub latin: bool,
    /// The tokenizer's padding id.
    pub pad_id: i64,
}

impl SummaryData {
    /// Tokenises a task's splits.
    pub fn prepare(splits: SummarySplits, tokenizer: &TextTokenizer, g: &GenerationSpec) -> Result<SummaryData> {
        fn texts(a: &[pelt_data::summarization::Article]) -> Vec<&str> {
            a.iter().map(|x| x.text.as_str()).collect()
        }
        let train = tokenizer.encode_texts(&texts(&splits.train))?;
        let summaries: Vec<&str> = splits.train.iter().map(|a| a.summary.as_str()).collect();
        let targets = tokenizer.encode_targets(&summaries, g.max_target_len)?;
        let val = tokenizer.encode_texts(&texts(&splits.val))?;
        let test = tokenizer.encode_texts(&texts(&splits.test))?;
        let sample: String = splits.test.iter().take(50).map(|a| a.summary.as_str()).collect::<Vec<_>>().join(" ");
        if splits.train.is_empty() || splits.val.is_empty() || splits.test.is_empty() {
            return Err(anyhow!("{}: every split needs at least one article", splits.name));
        }
        Ok(SummaryData { latin: is_latin(&sample), splits, train, targets, val, test, pad_id: tokenizer.pad_id })
    }
}

/// Loads a summarization task: BBC headlines and ACLSum from the assets, an XL-Sum language from the
/// experiment's folder.
pub fn load_summaries(
    name: &str,
    assets: &Path,
    xlsum_dir: Option<&Path>,
    d2t_dir: Option<&Path>,
) -> Result<pelt_data::summarization::SummarySplits> {
    use pelt_data::summarization as s;
    let hint = " (run the set-up: scripts/setup.sh)";
    let d2t = || d2t_dir.ok_or_else(|| anyhow!("task `{name}` needs d2t_dir (the folder of e2e/ and webnlg2017/)"));
    match name {
        "e2e" => pelt_data::d2t::e2e(&d2t()?.join("e2e")).map_err(|e| anyhow!("{e}")),
        "webnlg" => pelt_data::d2t::webnlg(&d2t()?.join("webnlg2017")).map_err(|e| anyhow!("{e}")),
        "bbc_headlines" => s::bbc_headlines(&assets.join("bbcnews")).map_err(|e| anyhow!("{e}{hint}")),
        "aclsum" => s::aclsum(&assets.join("aclsum")).map_err(|e| anyhow!("{e}{hint}")),
        other => {
            let language =
                other.strip_prefix("xlsum:").ok_or_else(|| anyhow!("unknown summarization task `{other}`"))?;
            let dir = xlsum_dir.ok_or_else(|| anyhow!("task `{other}` needs xlsum_dir"))?;
            s::xlsum(&dir.join(language)).map_err(|e| anyhow!("{e}"))
        }
    }
}

/// The encoder-decoder of a summarization experiment: its T5 / mT5, or a BERT2BERT warm-started from its
/// BERT-family backbone (the decoder's start, end and padding ids from the tokenizer).
pub fn load_seq2seq(backbone: &Path, tokenizer: &TextTokenizer, device: Device) -> Result<Box<dyn Seq2Seq>> {
    let dims = pelt_backbone::dims_of(backbone)?;
    if dims.is_t5() {
        return Ok(Box::new(pelt_backbone::T5::load(backbone, device)?));
    }
    let Some((start, eos)) = tokenizer.decoder_ids() else {
        bail!("{}: the tokenizer has neither [CLS]/[SEP] nor <s>/</s> to start and end summaries", backbone.display());
    };
    let special = pelt_backbone::seq2seq::SpecialIds { start, eos, pad: tokenizer.pad_id };
    Ok(Box::new(pelt_backbone::Bert2Bert::warm_start(backbone, special, 0, device)?))
}
