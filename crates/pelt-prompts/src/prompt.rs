//! Prompt tuning (Lester et al., "The Power of Scale for Parameter-Efficient Prompt Tuning", EMNLP
//! 2021): P trainable vectors prepended to the embedded input; the backbone attends to them as to
//! real tokens and its mask covers them.
//!
//! By default pelt prepends them to the embedding block's output (after its LayerNorm), so they carry
//! no position embedding; the vocabulary init therefore normalises the drawn word embeddings with the
//! embeddings' LayerNorm, putting the soft tokens at the scale of real ones. With `placement:
//! input_embeddings` they go in front of the word embeddings instead, as peft puts them, and the
//! vocabulary init copies raw word embeddings.

use crate::config::{PromptConfig, PromptInit, PromptPlacement};
use pelt_core::{Attachment, Backbone, BackboneDims, Identity, Method, Result};
use tch::{nn, Device, Kind, Tensor};

/// Soft tokens prepended to the input.
#[derive(Debug)]
pub struct PromptTuning {
    vs: nn::VarStore,
    config: PromptConfig,
    prompt: Tensor,
}

impl PromptTuning {
    /// Builds P soft tokens of width d (random until [`Method::init_from`] for the vocabulary init).
    pub fn new(config: PromptConfig, dims: &BackboneDims, device: Device) -> Result<PromptTuning> {
        let vs = nn::VarStore::new(device);
        let width = match config.placement {
            PromptPlacement::EmbeddingOutput => dims.hidden,
            PromptPlacement::InputEmbeddings => dims.embedding_width(),
        };
        let prompt = vs.root().var("prompt", &[config.length, width], nn::Init::Uniform { lo: -0.5, up: 0.5 });
        Ok(PromptTuning { vs, config, prompt })
    }

    /// The soft tokens, (P, width).
    pub fn tokens(&self) -> &Tensor {
        &self.prompt
    }

    /// The settings.
    pub fn config(&self) -> &PromptConfig {
        &self.config
    }
}

impl Attachment for PromptTuning {
    fn prompt(&self, embeddings: &Tensor, _mask: &Tensor, _train: bool) -> Option<Tensor> {
        let b = embeddings.size()[0];
        (self.config.placement == PromptPlacement::EmbeddingOutput)
            .then(|| self.prompt.unsqueeze(0).expand([b, -1, -1], false))
    }

    fn input_prompt(&self, batch: i64, _train: bool) -> Option<Tensor> {
        (self.config.placement == PromptPlacement::InputEmbeddings)
            .then(|| self.prompt.unsqueeze(0).expand([batch, -1, -1], false))
    }
}

impl Method for PromptTuning {
    fn name(&self) -> &str {
        "prompt_tuning"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.config.length * dims.hidden
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        if self.config.init != PromptInit::Vocab {
            return;
        }
        let pool = match self.config.placement {
            PromptPlacement::EmbeddingOutput => vocab_pool(backbone),
            // In front of the word embeddings the soft tokens are word embeddings: no normalising.
            PromptPlacement::InputEmbeddings => {
                let vars = backbone.var_store().variables();
                vars.get("embeddings.word_embeddings.weight").or_else(|| vars.get("shared.weight")).map(|w| {
                    let (lo, hi) = common_token_ids(w.size()[0]);
                    w.narrow(0, lo, hi - lo).detach()
                })
            }
        };
        if let Some(pool) = pool {
            tch::no_grad(|| self.prompt.shallow_clone().copy_(&draw(&pool, self.config.length)));
        }
    }
}

/// Candidate soft-token inits: word embeddings normalised by the embeddings' LayerNorm, so that soft
/// tokens prepended after that LayerNorm sit at the scale of real ones. `None` when the backbone has
/// no BERT-style embedding block.
pub fn vocab_pool(backbone: &dyn Backbone) -> Option<Tensor> {
    let vars = backbone.var_store().variables();
    let (words, gain, bias) = (
        vars.get("embeddings.word_embeddings.weight")?,
        vars.get("embeddings.LayerNorm.weight")?,
        vars.get("embeddings.LayerNorm.bias")?,
    );
    let (lo, hi) = common_token_ids(words.size()[0]);
    tch::no_grad(|| {
        let rows = words.narrow(0, lo, hi - lo);
        let d = rows.size()[1];
        let normed = rows.layer_norm([d], Some(gain), Some(bias), 1e-12, false);
        // An ELECTRA's narrower embeddings are projected up to the hidden size, as its real tokens are.
        Some(match (vars.get("embeddings_project.weight"), vars.get("embeddings_project.bias")) {
            (Some(w), Some(b)) => normed.linear(w, Some(b)),
            _ => normed,
        })
    })
}

/// The token ids the vocabulary inits draw from, `lo..hi`, for a vocabulary of `vocab`: Lester et al.
/// draw from the 5,000 most common tokens; WordPiece ids past the special and unused ones (~1,000 in
/// BERT's vocabulary) stand in for them here.
pub fn common_token_ids(vocab: i64) -> (i64, i64) {
    if vocab > 6000 {
        (1000, 6000)
    } else {
        (1, vocab)
    }
}

/// `n` rows drawn from a [`vocab_pool`] with the global torch generator (so the run's seed decides).
pub fn draw(pool: &Tensor, n: i64) -> Tensor {
    let ids = Tensor::randint(pool.size()[0], [n], (Kind::Int64, pool.device()));
    tch::no_grad(|| pool.index_select(0, &ids))
}
