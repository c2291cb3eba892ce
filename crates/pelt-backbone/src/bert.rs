//! BERT encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding"), covering BERT, MiniLM (Wang et al. 2020), RoBERTa-style configs and MPNet (Song et al.
//! 2020), whose encoder is BERT's with RoBERTa's positions, no segments and one relative-position bias
//! table shared by all layers (its checkpoint names map onto BERT's in [`crate::loader`]).
//!
//! Variable names mirror Hugging Face's `BertModel` (`encoder.layer.0.attention.self.query.weight`), so a
//! checkpoint loads by name. Sites: query/key/value and both FFN projections call
//! [`Attachment::projection`]; the attention and FFN sublayers call [`Attachment::sublayer`] before
//! their residual + LayerNorm; attention takes [`Attachment::prefix`] positions; the embeddings take
//! [`Attachment::prompt`] positions; the FFN activation can be replaced through
//! [`Attachment::activation`].

use crate::{loader, seq2seq::StepKv};
use pelt_core::{
    compose, hooked_sublayer, Attachment, Backbone, BackboneDims, Dropout, Encoded, Inputs, PeltError, Result, Site,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `config.json` of a BERT-family model, with Hugging Face's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// `bert`, `roberta`, ... (RoBERTa offsets position ids past the padding index).
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Hidden size d.
    pub hidden_size: i64,
    /// Number of layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// FFN inner size.
    pub intermediate_size: i64,
    /// FFN activation: `gelu`, `gelu_new` / `gelu_pytorch_tanh`, or `relu`.
    pub hidden_act: String,
    /// Dropout on hidden states.
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    pub attention_probs_dropout_prob: f64,
    /// Learned absolute positions.
    pub max_position_embeddings: i64,
    /// Segment vocabulary.
    pub type_vocab_size: i64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id.
    pub pad_token_id: i64,
    /// Std of the normal initialiser (random models only).
    pub initializer_range: f64,
    /// ELECTRA: the embeddings' width when it differs from `hidden_size` (a linear
    /// `embeddings_project` then maps it up); `None`: the hidden size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<i64>,
    /// MPNet: buckets of the relative-position bias every layer adds to its attention scores (32 in
    /// MPNet's config; distances beyond 128 share the last ones); `None`: no relative positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_attention_num_buckets: Option<i64>,
}

/// MPNet's largest distinguished relative distance (`relative_position_bucket`'s `max_distance`).
const MPNET_MAX_DISTANCE: i64 = 128;

/// The `model_type`s read as a BERT-family encoder.
pub const BERT_FAMILY: [&str; 7] = ["bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet"];

/// DistilBERT's `config.json` (its own key names), for translation into a [`BertConfig`].
#[derive(Debug, Deserialize)]
#[serde(default)]
struct DistilBertConfig {
    vocab_size: i64,
    dim: i64,
    n_layers: i64,
    n_heads: i64,
    hidden_dim: i64,
    activation: String,
    dropout: f64,
    attention_dropout: f64,
    max_position_embeddings: i64,
    pad_token_id: i64,
    initializer_range: f64,
}

impl Default for DistilBertConfig {
    fn default() -> Self {
        DistilBertConfig {
            vocab_size: 30522,
            dim: 768,
            n_layers: 6,
            n_heads: 12,
            hidden_dim: 3072,
            activation: "gelu".into(),
            dropout: 0.1,
            attention_dropout: 0.1,
            max_position_embeddings: 512,
            pad_token_id: 0,
            initializer_range: 0.02,
        }
    }
}

impl Default for BertConfig {
    fn default() -> Self {
        BertConfig {
            model_type: "bert".into(),
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            initializer_range: 0.02,
            embedding_size: None,
            relative_attention_num_buckets: None,
        }
    }
}

impl BertConfig {
    /// A tiny config for tests: 2 layers, d = 16, 2 heads, vocabulary 100.
    pub fn tiny() -> BertConfig {
        BertConfig {
            vocab_size: 100,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 32,
            max_position_embeddings: 64,
            ..BertConfig::default()
        }
    }

    /// The sizes of all-MiniLM-L6-v2 (6 layers, d = 384, 12 heads, FFN 1536), for benches that need the
    /// real model's cost without its weights.
    pub fn minilm() -> BertConfig {
        BertConfig { hidden_size: 384, num_hidden_layers: 6, intermediate_size: 1536, ..BertConfig::default() }
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<BertConfig> {
        let err = |message: String| PeltError::Weights { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path)
            .map_err(|source| PeltError::Io { path: path.display().to_string(), source })?;
        let config: BertConfig =
            serde_json::from_str(&text).map_err(|e| err(format!("not a BERT config.json: {e}")))?;
        if !BERT_FAMILY.contains(&config.model_type.as_str()) {
            return Err(err(format!(
                "model_type `{}` is not supported; pelt reads {} (BERT family), vit, t5 and mt5",
                config.model_type,
                BERT_FAMILY.join(", ")
            )));
        }
        // DistilBERT names its sizes its own way and has no segment embeddings.
        let config = if config.model_type == "distilbert" {
            let d: DistilBertConfig =
                serde_json::from_str(&text).map_err(|e| err(format!("not a DistilBERT config.json: {e}")))?;
            BertConfig {
                model_type: "distilbert".into(),
                vocab_size: d.vocab_size,
                hidden_size: d.dim,
                num_hidden_layers: d.n_layers,
                num_attention_heads: d.n_heads,
                intermediate_size: d.hidden_dim,
                hidden_act: d.activation,
                hidden_dropout_prob: d.dropout,
                attention_probs_dropout_prob: d.attention_dropout,
                max_position_embeddings: d.max_position_embeddings,
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
                pad_token_id: d.pad_token_id,
                initializer_range: d.initializer_range,
                embedding_size: None,
                relative_attention_num_buckets: None,
            }
        } else if config.model_type == "mpnet" {
            // MPNet has no segment embeddings, and its config leaves the bucket count at its default.
            BertConfig {
                type_vocab_size: 0,
                relative_attention_num_buckets: Some(config.relative_attention_num_buckets.unwrap_or(32)),
                ..config
            }
        } else {
            config
        };
        if config.relative_attention_num_buckets.is_some_and(|n| n < 2) {
            return Err(err("relative_attention_num_buckets must be at least 2".into()));
        }
        if config.hidden_size % config.num_attention_heads != 0 {
            return Err(err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if !matches!(config.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu") {
            return Err(err(format!("hidden_act `{}` is not supported (gelu, gelu_new, relu)", config.hidden_act)));
        }
        Ok(config)
    }

    /// The sizes methods are built for.
    pub fn dims(&self) -> BackboneDims {
        BackboneDims {
            arch: self.model_type.clone(),
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            vocab: self.vocab_size,
            positions: self.max_position_embeddings,
            type_vocab: self.type_vocab_size,
            image: None,
            decoder_layers: 0,
            activation: self.hidden_act.clone(),
            embedding_dim: self.embedding_size.filter(|&e| e != self.hidden_size).unwrap_or(0),
            position_buckets: self.relative_attention_num_buckets.unwrap_or(0),
            ..BackboneDims::default()
        }
    }
}

/// A linear layer with `weight` (out × in) and `bias`, named as in the checkpoint.
#[derive(Debug)]
pub struct Linear {
    /// Weight, (out, in).
    pub weight: Tensor,
    /// Bias, (out).
    pub bias: Tensor,
}

impl Linear {
    pub(crate) fn new(p: nn::Path, input: i64, output: i64, std: f64) -> Linear {
        Linear {
            weight: p.var("weight", &[output, input], nn::Init::Randn { mean: 0.0, stdev: std }),
            bias: p.var("bias", &[output], nn::Init::Const(0.0)),
        }
    }

    /// The projection plus whatever `method` attaches at `site`: its input replaced
    /// ([`Attachment::projection_input`]), its Δ added, its output replaced
    /// ([`Attachment::projection_output`]).
    pub(crate) fn forward(&self, x: &Tensor, layer: usize, site: Site, method: &dyn Attachment, train: bool) -> Tensor {
        let input = method.projection_input(layer, site, x, train);
        let h = input.as_ref().unwrap_or(x).linear(&self.weight, Some(&self.bias));
        let h = match method.projection(layer, site, x, train) {
            Some(d) => compose(&h, &d.value, &d.scale),
            None => h,
        };
        method.projection_output(layer, site, &h, train).unwrap_or(h)
    }
}

/// Adds ΔW to a projection's weight (the shared body of the backbones' `merge_projection`).
pub(crate) fn merge_linear(lin: Option<&mut Linear>, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
    let lin = lin.ok_or_else(|| PeltError::Shape(format!("no projection `{site}` in layer {layer}")))?;
    if lin.weight.size() != delta_w.size() {
        return Err(PeltError::Shape(format!(
            "ΔW for {site} of layer {layer} is {:?}, the weight is {:?}",
            delta_w.size(),
            lin.weight.size()
        )));
    }
    tch::no_grad(|| {
        let _ = lin.weight.f_add_(delta_w)?;
        Ok(())
    })
}

/// Puts a method's prompt positions (if any) in front of the embedded input and extends the mask over
/// them: (hidden, mask, number of prompt positions). `words`: the backbone put any
/// [`Attachment::input_prompt`] in front of its word embeddings itself; otherwise (no absolute
/// positions) it goes in front of the embedded input here.
pub(crate) fn prepend_prompt(
    h: Tensor,
    mask: &Tensor,
    method: &dyn Attachment,
    words: bool,
    train: bool,
) -> (Tensor, Tensor, i64) {
    let prompt = method.prompt(&h, mask, train);
    let prompt = if words { prompt } else { prompt.or_else(|| method.input_prompt(h.size()[0], train)) };
    match prompt {
        Some(prompt) => {
            let (b, p, _) = prompt.size3().expect("prompt is (batch, positions, d)");
            let ones = Tensor::ones([b, p], (Kind::Int64, h.device()));
            (Tensor::cat(&[&prompt, &h], 1), Tensor::cat(&[&ones, mask], 1), p)
        }
        None => (h, mask.shallow_clone(), 0),
    }
}

/// `h` with `new` (batch, P, d) put at position `at`, in place of the `replaced` positions there (0 to
/// insert): where prompt positions enter a sequence and where deep prompts replace them.
pub(crate) fn splice(h: &Tensor, at: i64, replaced: i64, new: &Tensor) -> Tensor {
    let len = h.size()[1];
    Tensor::cat(&[h.narrow(1, 0, at), new.shallow_clone(), h.narrow(1, at + replaced, len - at - replaced)], 1)
}

/// The FFN activation named by a config's `hidden_act` (checked when the config is read).
pub(crate) fn activate(act: &str, x: &Tensor) -> Tensor {
    match act {
        "relu" => x.relu(),
        "gelu" => x.gelu("none"),
        _ => x.gelu("tanh"),
    }
}

/// LayerNorm with `weight` and `bias`.
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    size: i64,
}

impl LayerNorm {
    pub(crate) fn new(p: nn::Path, size: i64, eps: f64) -> LayerNorm {
        LayerNorm {
            weight: p.var("weight", &[size], nn::Init::Const(1.0)),
            bias: p.var("bias", &[size], nn::Init::Const(0.0)),
            eps,
            size,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.size], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// Word, position and segment embeddings, summed and normalised (ELECTRA: then projected up to the
/// hidden size; DistilBERT: no segment embeddings).
#[derive(Debug)]
pub struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    norm: LayerNorm,
    project: Option<Linear>,
    dropout: f64,
    roberta_positions: bool,
    pad: i64,
}

impl Embeddings {
    /// The embeddings under `root / "embeddings"`, and an ELECTRA's `root / "embeddings_project"`
    /// (HF's names).
    pub(crate) fn new(root: &nn::Path, c: &BertConfig) -> Embeddings {
        let p = root / "embeddings";
        let init = nn::Init::Randn { mean: 0.0, stdev: c.initializer_range };
        let width = c.embedding_size.unwrap_or(c.hidden_size);
        let project = (width != c.hidden_size)
            .then(|| Linear::new(root / "embeddings_project", width, c.hidden_size, c.initializer_range));
        Embeddings {
            word: (&p / "word_embeddings").var("weight", &[c.vocab_size, width], init),
            position: (&p / "position_embeddings").var("weight", &[c.max_position_embeddings, width], init),
            token_type: (c.type_vocab_size > 0)
                .then(|| (&p / "token_type_embeddings").var("weight", &[c.type_vocab_size, width], init)),
            norm: LayerNorm::new(&p / "LayerNorm", width, c.layer_norm_eps),
            project,
            dropout: c.hidden_dropout_prob,
            roberta_positions: matches!(c.model_type.as_str(), "roberta" | "xlm-roberta" | "camembert" | "mpnet"),
            pad: c.pad_token_id,
        }
    }

    /// The word-embedding matrix (vocab, d).
    pub(crate) fn word_embeddings(&self) -> &Tensor {
        &self.word
    }

    /// The embedding of decoder tokens `ids` (batch, 1) at position `step` of an all-real sequence
    /// (segment 0), in evaluation mode: what [`Embeddings::forward`] gives that position.
    pub(crate) fn forward_at(&self, ids: &Tensor, step: i64) -> Tensor {
        // RoBERTa numbers real tokens from pad + 1.
        let position = if self.roberta_positions { self.pad + 1 + step } else { step };
        let words = Tensor::embedding(&self.word, ids, -1, false, false);
        let mut e = words + self.position.get(position).view([1, 1, -1]);
        if let Some(token_type) = &self.token_type {
            e += token_type.get(0).view([1, 1, -1]);
        }
        let e = self.norm.forward(&e);
        match &self.project {
            Some(project) => e.linear(&project.weight, Some(&project.bias)),
            None => e,
        }
    }

    /// The embedded input; `prompt` (batch, P, width), if any, goes in front of the word embeddings
    /// before positions and segments are added (see [`Attachment::input_prompt`]), so the output has
    /// P + len positions.
    pub(crate) fn forward(&self, inputs: &Inputs, prompt: Option<&Tensor>, train: bool) -> Tensor {
        let (b, len) = inputs.input_ids.size2().expect("input_ids is (batch, len)");
        let device = inputs.input_ids.device();
        let words = Tensor::embedding(&self.word, &inputs.input_ids, -1, false, false);
        let (words, types, mask, len) = match prompt {
            Some(prompt) => {
                let p = prompt.size()[1];
                let ones = Tensor::ones([b, p], (Kind::Int64, device));
                (
                    Tensor::cat(&[prompt, &words], 1),
                    Tensor::cat(&[&ones.zeros_like(), &inputs.token_type_ids], 1),
                    Tensor::cat(&[&ones, &inputs.attention_mask], 1),
                    len + p,
                )
            }
            None => (words, inputs.token_type_ids.shallow_clone(), inputs.attention_mask.shallow_clone(), len),
        };
        let positions = if self.roberta_positions {
            // RoBERTa numbers real tokens from pad + 1 and gives padding the pad index.
            let m = mask.to_kind(Kind::Int64);
            m.cumsum(1, Kind::Int64) * &m + self.pad
        } else {
            Tensor::arange(len, (Kind::Int64, device)).unsqueeze(0)
        };
        let mut e = words + Tensor::embedding(&self.position, &positions, -1, false, false);
        if let Some(token_type) = &self.token_type {
            e += Tensor::embedding(token_type, &types, -1, false, false);
        }
        let e = self.norm.forward(&e).drop_out(self.dropout, train);
        match &self.project {
            Some(project) => e.linear(&project.weight, Some(&project.bias)),
            None => e,
        }
    }
}

/// Attention of queries `q` (batch, heads, t, hd) over keys and values (batch, heads, s, hd): scores
/// scaled by `scale`, plus an additive `bias` broadcast to (batch, heads, t, s) (T5's relative positions,
/// a causal mask), positions where `keep` (batch, s) is false masked out. A method's `prefix` positions
/// go in front of the keys and values, visible to every query with no bias; a gated prefix scales its
/// columns of the attention probabilities (UniPELT), which the fused kernel cannot do, so that case is
/// spelled out. Returns (batch, heads, t, hd).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &Tensor,
    mut k: Tensor,
    mut v: Tensor,
    keep: &Tensor,
    bias: Option<&Tensor>,
    scale: f64,
    prefix: Option<pelt_core::Prefix>,
    p_drop: f64,
    train: bool,
) -> Tensor {
    let (b, t) = (q.size()[0], q.size()[2]);
    let mut keep = keep.shallow_clone();
    let mut bias = bias.map(Tensor::shallow_clone);
    let mut gate = None;
    if let Some(prefix) = prefix {
        let p = prefix.keys.size()[2];
        k = Tensor::cat(&[&prefix.keys, &k], 2);
        v = Tensor::cat(&[&prefix.values, &v], 2);
        keep = Tensor::cat(&[&Tensor::ones([b, p], (Kind::Bool, q.device())), &keep], 1);
        bias = bias.map(|bias| {
            let shape = bias.size();
            let zeros = Tensor::zeros([shape[0], shape[1], shape[2], p], (bias.kind(), bias.device()));
            Tensor::cat(&[zeros, bias], 3)
        });
        gate = prefix.gate.map(|g| (p, g));
    }
    let keep = keep.view([b, 1, 1, -1]);
    // A batch without padding (every fixed-length batch, many bucketed ones) needs no mask at all; one
    // check here saves a masking pass over every layer's scores.
    let all_kept = keep.all().int64_value(&[]) != 0;
    // On a GPU the fused kernel draws its own dropout; on a CPU pelt's masks are drawn here instead
    // (libtorch draws its CPU masks serially on non-Intel processors; see pelt_core::dropout), and with
    // dropout libtorch's CPU kernel takes this same math path anyway.
    let own_dropout = train && p_drop > 0.0 && q.device() == tch::Device::Cpu;
    if gate.is_none() && !own_dropout {
        // The fused kernel takes one mask: boolean alone, or additive when there is a bias.
        let mask = match &bias {
            None if all_kept => None,
            None => Some(keep.shallow_clone()),
            Some(bias) if all_kept => Some(bias.shallow_clone()),
            Some(bias) => Some(bias.masked_fill(&keep.logical_not(), f64::NEG_INFINITY)),
        };
        let p = if train { p_drop } else { 0.0 };
        return Tensor::scaled_dot_product_attention(q, &k, &v, mask.as_ref(), p, false, Some(scale), false);
    }
    // Spelled out (dropout on a CPU, or a gate that scales the prefix positions' probabilities, which
    // the fused kernel cannot do), with heads folded into the batch of three-dimensional products.
    let (heads, hd) = (q.size()[1], q.size()[3]);
    let s = k.size()[2];
    let bh = b * heads;
    let q3 = q.reshape([bh, t, hd]);
    let kt = k.reshape([bh, s, hd]).transpose(1, 2);
    let v3 = v.reshape([bh, s, hd]);
    // The mask and any bias enter the score product as its added operand (β = 1) and the scale as its
    // α: no separate scaling and masking passes over the (batch · heads, t, s) scores, forward or back.
    let additive = match &bias {
        Some(bias) => {
            let bias =
                if all_kept { bias.shallow_clone() } else { bias.masked_fill(&keep.logical_not(), f64::NEG_INFINITY) };
            Some(bias.expand([b, heads, t, s], false).reshape([bh, t, s]))
        }
        None if all_kept => None,
        None => Some(
            Tensor::zeros([b, 1, 1, s], (q.kind(), q.device()))
                .masked_fill(&keep.logical_not(), f64::NEG_INFINITY)
                .expand([b, heads, 1, s], false)
                .reshape([bh, 1, s]),
        ),
    };
    let scores = match additive {
        Some(c) => c.baddbmm(&q3, &kt, 1.0, scale),
        // β = 0: the added operand is never read.
        None => Tensor::zeros([1, 1, 1], (q.kind(), q.device())).baddbmm(&q3, &kt, 0.0, scale),
    };
    let probs = scores.softmax(-1, Kind::Float);
    let probs = match gate {
        Some((p, g)) => {
            let probs = probs.view([b, heads, t, s]);
            let g = g.view([b, 1, t, 1]);
            Tensor::cat(&[probs.narrow(3, 0, p) * g, probs.narrow(3, p, s - p)], 3).view([bh, t, s])
        }
        None => probs,
    };
    probs.drop_out(p_drop, train).bmm(&v3).view([b, heads, t, hd])
}

/// Query, key and value projections and the scaled dot-product attention over them, shared by the BERT
/// and ViT layers (which differ in where their LayerNorms sit).
#[derive(Debug)]
pub(crate) struct SelfAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) heads: i64,
    pub(crate) attn_dropout: f64,
}

impl SelfAttention {
    /// The attention context (batch, len, d) of `x` before the output projection; `keep` is the
    /// (batch, len) boolean mask of real positions. Prefix positions a method adds are visible to every
    /// token.
    pub(crate) fn context(&self, x: &Tensor, keep: &Tensor, layer: usize, m: &dyn Attachment, train: bool) -> Tensor {
        self.context_over(x, x, keep, None, (layer, SELF_SITES), m, train)
    }

    /// The context of queries from `x` over keys and values from `kv` (`x` itself for self-attention,
    /// the encoder's output for cross-attention), with an additive `bias` (a causal mask); `hooks` =
    /// the layer and the sites of the q, k, v and o projections. Prefix positions go into
    /// self-attention only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn context_over(
        &self,
        x: &Tensor,
        kv: &Tensor,
        keep: &Tensor,
        bias: Option<&Tensor>,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
        train: bool,
    ) -> Tensor {
        let (layer, sites) = hooks;
        let (b, t, d) = x.size3().expect("hidden is (batch, len, d)");
        let (q, k, v) = self.qkv(x, kv, hooks, m, train);
        let p_drop = if train { self.attn_dropout } else { 0.0 };
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let prefix = if sites == SELF_SITES { m.prefix(layer, x, train) } else { None };
        let ctx = attend(&q, k, v, keep, bias, scale, prefix, p_drop, train);
        ctx.transpose(1, 2).reshape([b, t, d])
    }

    /// One step of incremental decoding: the context of the new position(s) `x` (batch, 1, d) given
    /// what `cache` holds — in self-attention (`memory` `None`) the keys and values of the earlier
    /// positions, to which this step's are appended; in cross-attention the keys and values of the
    /// encoder's output `memory`, projected at the first step and reused. `keep` (batch, s) marks the
    /// memory's real positions (cross-attention only). Equal to the whole-prefix pass at the last
    /// position for methods whose hooks act on each position alone (see
    /// [`Attachment::decodes_incrementally`]).
    pub(crate) fn context_step(
        &self,
        x: &Tensor,
        memory: Option<(&Tensor, &Tensor)>,
        cache: &mut StepKv,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
    ) -> Tensor {
        let (layer, sites) = hooks;
        let (b, t, d) = x.size3().expect("hidden is (batch, len, d)");
        let (q, k, v, keep) = match memory {
            None => {
                let (q, k, v) = self.qkv(x, x, hooks, m, false);
                let (k, v, keep) = cache.append(k, v);
                (q, k, v, keep)
            }
            Some((memory, keep)) => {
                // Cross-attention projects one by one (as `qkv` does off the self-attention sites).
                let split = |h: Tensor, n: i64| h.view([b, n, self.heads, d / self.heads]).transpose(1, 2);
                let q = split(self.query.forward(x, layer, sites[0], m, false), t);
                let (k, v) = cache.memory(|| {
                    let s = memory.size()[1];
                    (
                        split(self.key.forward(memory, layer, sites[1], m, false), s),
                        split(self.value.forward(memory, layer, sites[2], m, false), s),
                    )
                });
                (q, k, v, keep.shallow_clone())
            }
        };
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let prefix = if sites == SELF_SITES { m.prefix(layer, x, false) } else { None };
        let ctx = attend(&q, k, v, &keep, None, scale, prefix, 0.0, false);
        ctx.transpose(1, 2).reshape([b, t, d])
    }

    /// Queries from `x` and keys and values from `kv`, each (batch, heads, len, d/heads), with every
    /// projection's method hooks.
    fn qkv(
        &self,
        x: &Tensor,
        kv: &Tensor,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
        train: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let (layer, sites) = hooks;
        let (b, t, d) = x.size3().expect("hidden is (batch, len, d)");
        let s = kv.size()[1];
        let split = |h: Tensor, n: i64| h.view([b, n, self.heads, d / self.heads]).transpose(1, 2);
        // A method that replaces a projection's input (OFT, (IA)³) gets the three projections one by one.
        let replaced =
            sites == SELF_SITES && sites[..3].iter().any(|&s| m.projection_input(layer, s, x, train).is_some());
        let (q, k, v) = if sites == SELF_SITES && !replaced {
            // One GEMM for q, k and v (and one for their input gradient) instead of three: the wider
            // product runs closer to the machine's matmul peak. Each projection's method hook still
            // sees x and adds its own Δ, exactly as `Linear::forward` would.
            let w = Tensor::cat(&[&self.query.weight, &self.key.weight, &self.value.weight], 0);
            let bias = Tensor::cat(&[&self.query.bias, &self.key.bias, &self.value.bias], 0);
            let qkv = x.linear(&w, Some(&bias)).split(d, -1);
            let hooked = |h: &Tensor, site: Site| {
                let h = match m.projection(layer, site, x, train) {
                    Some(delta) => compose(h, &delta.value, &delta.scale),
                    None => h.shallow_clone(),
                };
                m.projection_output(layer, site, &h, train).unwrap_or(h)
            };
            (
                split(hooked(&qkv[0], sites[0]), t),
                split(hooked(&qkv[1], sites[1]), t),
                split(hooked(&qkv[2], sites[2]), t),
            )
        } else {
            (
                split(self.query.forward(x, layer, sites[0], m, train), t),
                split(self.key.forward(kv, layer, sites[1], m, train), s),
                split(self.value.forward(kv, layer, sites[2], m, train), s),
            )
        };
        (q, k, v)
    }
}

/// Multi-head self-attention with its output projection (`attention.self` + `attention.output`).
#[derive(Debug)]
pub struct Attention {
    core: SelfAttention,
    output: Linear,
    norm: LayerNorm,
    dropout: f64,
}

impl Attention {
    pub(crate) fn new(p: nn::Path, c: &BertConfig) -> Attention {
        let (d, std) = (c.hidden_size, c.initializer_range);
        let s = &p / "self";
        let o = &p / "output";
        Attention {
            core: SelfAttention {
                query: Linear::new(&s / "query", d, d, std),
                key: Linear::new(&s / "key", d, d, std),
                value: Linear::new(&s / "value", d, d, std),
                heads: c.num_attention_heads,
                attn_dropout: c.attention_probs_dropout_prob,
            },
            output: Linear::new(&o / "dense", d, d, std),
            norm: LayerNorm::new(&o / "LayerNorm", d, c.layer_norm_eps),
            dropout: c.hidden_dropout_prob,
        }
    }

    /// The projection at `site`: q, k, v or output, named by the self- or the cross-attention's site.
    /// The projection at `site`, read-only (see [`Attention::projection_mut`]).
    pub(crate) fn projection(&self, site: Site) -> Option<&Linear> {
        match site {
            Site::Query | Site::CrossQuery => Some(&self.core.query),
            Site::Key | Site::CrossKey => Some(&self.core.key),
            Site::Value | Site::CrossValue => Some(&self.core.value),
            Site::AttentionOutput | Site::CrossOutput => Some(&self.output),
            _ => None,
        }
    }

    pub(crate) fn projection_mut(&mut self, site: Site) -> Option<&mut Linear> {
        match site {
            Site::Query | Site::CrossQuery => Some(&mut self.core.query),
            Site::Key | Site::CrossKey => Some(&mut self.core.key),
            Site::Value | Site::CrossValue => Some(&mut self.core.value),
            Site::AttentionOutput | Site::CrossOutput => Some(&mut self.output),
            _ => None,
        }
    }

    /// One incremental decoding step of the sublayer (see [`SelfAttention::context_step`]): attention,
    /// output projection, the output site's sublayer hook, residual and LayerNorm, in evaluation mode.
    pub(crate) fn forward_step(
        &self,
        x: &Tensor,
        memory: Option<(&Tensor, &Tensor)>,
        cache: &mut StepKv,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
    ) -> Tensor {
        let (layer, sites) = hooks;
        let ctx = self.core.context_step(x, memory, cache, hooks, m);
        let h = self.output.forward(&ctx, layer, sites[3], m, false);
        let h = hooked_sublayer(m, (layer, sites[3]), x, h, &|h| self.norm.forward(&(h + x)), false);
        self.norm.forward(&(h + x))
    }

    /// Attention of `x` over `kv` (see [`SelfAttention::context_over`]), output projection, the
    /// sublayer hook at the output site, residual and LayerNorm.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_over(
        &self,
        x: &Tensor,
        kv: &Tensor,
        keep: &Tensor,
        bias: Option<&Tensor>,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
        train: bool,
    ) -> Tensor {
        let (layer, sites) = hooks;
        let ctx = self.core.context_over(x, kv, keep, bias, hooks, m, train);
        let h = self.output.forward(&ctx, layer, sites[3], m, train).drop_out(self.dropout, train);
        let h = hooked_sublayer(m, (layer, sites[3]), x, h, &|h| self.norm.forward(&(h + x)), train);
        self.norm.forward(&(h + x))
    }
}

/// The position-wise feed-forward sublayer (`intermediate` + `output`).
#[derive(Debug)]
pub struct FeedForward {
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    act: String,
    dropout: f64,
}

impl FeedForward {
    pub(crate) fn new(p: nn::Path, c: &BertConfig) -> FeedForward {
        let std = c.initializer_range;
        let o = &p / "output";
        FeedForward {
            intermediate: Linear::new(&p / "intermediate" / "dense", c.hidden_size, c.intermediate_size, std),
            output: Linear::new(&o / "dense", c.intermediate_size, c.hidden_size, std),
            norm: LayerNorm::new(&o / "LayerNorm", c.hidden_size, c.layer_norm_eps),
            act: c.hidden_act.clone(),
            dropout: c.hidden_dropout_prob,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor, layer: usize, m: &dyn Attachment, train: bool) -> Tensor {
        let i = self.intermediate.forward(x, layer, Site::FfnIntermediate, m, train);
        let a = m.activation(layer, &i, train).unwrap_or_else(|| activate(&self.act, &i));
        let h = self.output.forward(&a, layer, Site::FfnOutput, m, train).drop_out(self.dropout, train);
        let h = hooked_sublayer(m, (layer, Site::FfnOutput), x, h, &|h| self.norm.forward(&(h + x)), train);
        self.norm.forward(&(h + x))
    }
}

/// One transformer layer: attention then feed-forward, each post-norm.
#[derive(Debug)]
pub struct Layer {
    pub(crate) attention: Attention,
    pub(crate) ffn: FeedForward,
}

impl Layer {
    /// A layer under `p` (`encoder.layer.N`), named as in the checkpoint.
    pub(crate) fn new(p: nn::Path, c: &BertConfig) -> Layer {
        Layer { attention: Attention::new(&p / "attention", c), ffn: FeedForward::new(p, c) }
    }

    /// The projection at `site` (self-attention and FFN sites).
    /// The projection at `site`, read-only (self-attention and FFN sites).
    pub(crate) fn projection(&self, site: Site) -> Option<&Linear> {
        match site {
            Site::FfnIntermediate => Some(&self.ffn.intermediate),
            Site::FfnOutput => Some(&self.ffn.output),
            s if s.is_cross() => None,
            s => self.attention.projection(s),
        }
    }

    pub(crate) fn projection_mut(&mut self, site: Site) -> Option<&mut Linear> {
        match site {
            Site::FfnIntermediate => Some(&mut self.ffn.intermediate),
            Site::FfnOutput => Some(&mut self.ffn.output),
            s if s.is_cross() => None,
            s => self.attention.projection_mut(s),
        }
    }

    /// Self-attention (with an additive `bias`, a decoder's causal mask) then the FFN.
    pub(crate) fn forward(
        &self,
        h: &Tensor,
        keep: &Tensor,
        bias: Option<&Tensor>,
        layer: usize,
        m: &dyn Attachment,
        train: bool,
    ) -> Tensor {
        let a = self.attention.forward_over(h, h, keep, bias, (layer, SELF_SITES), m, train);
        self.ffn.forward(&a, layer, m, train)
    }
}

/// A BERT encoder's pass: embeddings, a method's prompt positions in front, then every layer (deep
/// prompts replacing the prompt positions at each layer's input), layer `i` hooked as layer `i`.
/// The (1, heads, len, len) relative-position bias of an MPNet stack from its bucket table (buckets,
/// heads): bidirectional buckets of key position − query position, as T5's encoder computes them.
fn relative_bias(table: &Tensor, len: i64) -> Tensor {
    let buckets = table.size()[0];
    let ids: Vec<i64> = (0..len)
        .flat_map(|i| (0..len).map(move |j| crate::t5::bucket(j - i, true, buckets, MPNET_MAX_DISTANCE)))
        .collect();
    let ids = Tensor::from_slice(&ids).view([len, len]).to_device(table.device());
    Tensor::embedding(table, &ids, -1, false, false).permute([2, 0, 1]).unsqueeze(0)
}

/// Runs the embeddings and `layers` over `inputs` with `method` attached; `relative` is an MPNet's bucket
/// table, whose bias every layer adds to its scores (over the prompt positions too, which MPNet numbers
/// as positions like any other).
pub(crate) fn encode(
    embeddings: &Embeddings,
    layers: &[Layer],
    relative: Option<&Tensor>,
    inputs: &Inputs,
    method: &dyn Attachment,
    train: bool,
) -> Encoded {
    let words = method.input_prompt(inputs.input_ids.size()[0], train);
    let (embedded, mask, p) = match &words {
        Some(prompt) => {
            let p = prompt.size()[1];
            let ones = Tensor::ones([inputs.input_ids.size()[0], p], (Kind::Int64, inputs.input_ids.device()));
            (embeddings.forward(inputs, Some(prompt), train), Tensor::cat(&[&ones, &inputs.attention_mask], 1), p)
        }
        None => (embeddings.forward(inputs, None, train), inputs.attention_mask.shallow_clone(), 0),
    };
    let (mut h, mask, q) = prepend_prompt(embedded, &mask, method, true, train);
    let p = p + q;
    let keep = mask.ne(0);
    method.begin_stack(&keep, false);
    let bias = relative.map(|table| relative_bias(table, h.size()[1]));
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 && q > 0 {
            if let Some(next) = method.layer_prompt(i, h.size()[0], train) {
                // Deep prompts: fresh positions replace the prompt's outputs of the layer below — the
                // `q` positions [`Attachment::prompt`] put first, not what `input_prompt` put behind
                // them (a vision-language model's visual tokens).
                h = splice(&h, 0, q, &next);
            }
        }
        h = layer.forward(&h, &keep, bias.as_ref(), i, method, train);
    }
    Encoded { hidden: h, mask, inserted: (0, p) }
}

/// The sites of a self-attention's q, k, v and output projections.
pub(crate) const SELF_SITES: [Site; 4] = [Site::Query, Site::Key, Site::Value, Site::AttentionOutput];
/// The sites of a decoder layer's cross-attention.
pub(crate) const CROSS_SITES: [Site; 4] = [Site::CrossQuery, Site::CrossKey, Site::CrossValue, Site::CrossOutput];

/// A BERT-family encoder with its weights in a [`nn::VarStore`].
#[derive(Debug)]
pub struct Bert {
    vs: nn::VarStore,
    config: BertConfig,
    dims: BackboneDims,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// MPNet's relative-position bucket table (buckets, heads), `encoder.relative_attention_bias`.
    relative: Option<Tensor>,
}

impl Bert {
    /// Builds a randomly initialised model (BERT's normal(0, initializer_range) init) from `seed`.
    pub fn random(config: &BertConfig, seed: i64, device: Device) -> Bert {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let embeddings = Embeddings::new(&root, config);
        let layers =
            (0..config.num_hidden_layers).map(|i| Layer::new(&root / "encoder" / "layer" / i, config)).collect();
        let relative = config.relative_attention_num_buckets.map(|n| {
            let init = nn::Init::Randn { mean: 0.0, stdev: config.initializer_range };
            (&root / "encoder" / "relative_attention_bias").var("weight", &[n, config.num_attention_heads], init)
        });
        Bert { dims: config.dims(), config: config.clone(), vs, embeddings, layers, relative }
    }

    /// Loads a Hugging Face model folder: `config.json` + `model.safetensors`.
    pub fn load(dir: &Path, device: Device) -> Result<Bert> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let model = Bert::random(&config, 0, device);
        loader::load_safetensors(&model.vs, &dir.join("model.safetensors"))?;
        Ok(model)
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    fn projection_mut(&mut self, layer: usize, site: Site) -> Option<&mut Linear> {
        self.layers.get_mut(layer)?.projection_mut(site)
    }
}

impl Backbone for Bert {
    fn dims(&self) -> &BackboneDims {
        &self.dims
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        encode(&self.embeddings, &self.layers, self.relative.as_ref(), inputs, method, train)
    }

    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
        merge_linear(self.projection_mut(layer, site), layer, site, delta_w)
    }

    fn projection_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.layers.get(layer)?.projection(site)?.weight.shallow_clone())
    }

    fn projection_bias(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.layers.get(layer)?.projection(site)?.bias.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spelled-out attention (mask and scale inside the score product) against libtorch's fused
    /// kernel: a gate of ones changes nothing but forces the spelled-out path.
    #[test]
    fn spelled_out_attention_matches_the_fused_kernel() {
        tch::manual_seed(3);
        let (b, h, t, hd, p) = (3, 2, 5, 4, 2);
        tch::manual_seed(11);
        let opts = (Kind::Float, Device::Cpu);
        let q = Tensor::randn([b, h, t, hd], opts);
        let k = Tensor::randn([b, h, t, hd], opts);
        let v = Tensor::randn([b, h, t, hd], opts);
        let prefix = |gate: bool| {
            Some(pelt_core::Prefix {
                keys: Tensor::randn([b, h, p, hd], opts).fill_(0.5),
                values: Tensor::randn([b, h, p, hd], opts).fill_(-0.25),
                gate: gate.then(|| Tensor::ones([b, t], opts)),
            })
        };
        let padded = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0]).view([b, t]).ne(0);
        let full = Tensor::ones([b, t], (Kind::Bool, Device::Cpu));
        let bias = Tensor::randn([1, h, t, t], opts);
        for keep in [&padded, &full] {
            for bias in [None, Some(&bias)] {
                let run = |gate| attend(&q, k.copy(), v.copy(), keep, bias, 0.3, prefix(gate), 0.0, false);
                let (spelled, fused) = (run(true), run(false));
                let diff = (&spelled - &fused).abs().max().double_value(&[]);
                // The two paths sum in different orders; on another CPU (MKL's AVX2 path) they part by
                // more than on this one, so the tolerance is the conformance suite's, not a float's.
                assert!(diff < 1e-4, "bias {}, padded {}: {diff}", bias.is_some(), keep == &padded);
            }
        }
        // Without a prefix or gate, training with dropout takes the spelled-out path on a CPU: at p → 0
        // it is the fused result.
        for keep in [&padded, &full] {
            let fused = attend(&q, k.copy(), v.copy(), keep, None, 0.3, None, 0.0, false);
            let spelled = attend(&q, k.copy(), v.copy(), keep, None, 0.3, None, 1e-9, true);
            assert!((&spelled - &fused).abs().max().double_value(&[]) < 1e-4);
        }
    }
}
