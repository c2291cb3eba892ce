//! T5 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
//! Transformer"), T5 v1.1 and mT5 (Xue et al. 2021): an encoder-decoder with RMS LayerNorms before every
//! sublayer, no biases, relative position buckets shared by a stack's layers instead of absolute
//! positions, unscaled dot-product attention, and a ReLU FFN (T5) or a gated-GELU one (v1.1, mT5).
//!
//! Variable names mirror Hugging Face's `T5ForConditionalGeneration` (`encoder.block.0.layer.0.
//! SelfAttention.q.weight`), so an HF T5 / mT5 folder loads by name. Sites: the encoder's layers are
//! layers 0..L_enc and the decoder's L_enc..L_enc + L_dec of [`BackboneDims::layers`], each with the
//! BERT encoder's sites on its self-attention (q, k, v, o; prefix positions; the sublayer) and FFN (its
//! first projection — `wi`, or `wi_0`, the gate's input, in the gated FFN — the activation and `wo`).
//! A decoder layer's cross-attention has the `cross_*` sites (its q, k, v and o projections, and its
//! sublayer's output); prefix positions go into self-attention only. Prompt positions go in front of
//! the encoder's input.

use crate::{
    bert::{attend, merge_linear, prepend_prompt, Linear, CROSS_SITES, SELF_SITES},
    loader,
    seq2seq::{DecodeCache, Seq2Seq, SpecialIds, StepKv, Stepper},
};
use pelt_core::{
    hooked_sublayer, Attachment, Backbone, BackboneDims, Dropout, Encoded, Inputs, PeltError, Result, Site,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `config.json` of an HF T5 / mT5, with Hugging Face's defaults (t5-small).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct T5Config {
    /// `t5` or `mt5`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Hidden size d.
    pub d_model: i64,
    /// Size of one attention head (heads · d_kv need not equal d).
    pub d_kv: i64,
    /// FFN inner size.
    pub d_ff: i64,
    /// Encoder layers.
    pub num_layers: i64,
    /// Decoder layers (`None`: as many as the encoder).
    pub num_decoder_layers: Option<i64>,
    /// Attention heads.
    pub num_heads: i64,
    /// Relative position buckets.
    pub relative_attention_num_buckets: i64,
    /// Distance beyond which relative positions share a bucket.
    pub relative_attention_max_distance: i64,
    /// Dropout everywhere.
    pub dropout_rate: f64,
    /// RMS LayerNorm epsilon.
    pub layer_norm_epsilon: f64,
    /// `relu` (T5) or `gated-gelu` (v1.1, mT5).
    pub feed_forward_proj: String,
    /// Whether the LM head is the shared embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether decoder outputs are scaled by d^-0.5 before the LM head (written by transformers ≥ 5;
    /// older files imply it from `tie_word_embeddings`, as the original T5 did).
    pub scale_decoder_outputs: Option<bool>,
    /// First decoder input.
    pub decoder_start_token_id: i64,
    /// Padding id.
    pub pad_token_id: i64,
    /// End of sequence.
    pub eos_token_id: i64,
}

impl Default for T5Config {
    fn default() -> Self {
        T5Config {
            model_type: "t5".into(),
            vocab_size: 32128,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            num_layers: 6,
            num_decoder_layers: None,
            num_heads: 8,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            dropout_rate: 0.1,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "relu".into(),
            tie_word_embeddings: true,
            scale_decoder_outputs: None,
            decoder_start_token_id: 0,
            pad_token_id: 0,
            eos_token_id: 1,
        }
    }
}

impl T5Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<T5Config> {
        let err = |message: String| PeltError::Weights { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path)
            .map_err(|source| PeltError::Io { path: path.display().to_string(), source })?;
        let c: T5Config = serde_json::from_str(&text).map_err(|e| err(format!("not a T5 config.json: {e}")))?;
        if !matches!(c.model_type.as_str(), "t5" | "mt5") {
            return Err(err(format!("model_type `{}` is not t5 or mt5", c.model_type)));
        }
        if !matches!(c.feed_forward_proj.as_str(), "relu" | "gated-gelu") {
            return Err(err(format!(
                "feed_forward_proj `{}` is not supported (relu, gated-gelu)",
                c.feed_forward_proj
            )));
        }
        Ok(c)
    }

    fn decoder_layers(&self) -> i64 {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    fn gated(&self) -> bool {
        self.feed_forward_proj == "gated-gelu"
    }

    /// The sizes methods are built for: `layers` counts encoder and decoder layers.
    pub fn dims(&self) -> BackboneDims {
        BackboneDims {
            arch: self.model_type.clone(),
            hidden: self.d_model,
            layers: self.num_layers + self.decoder_layers(),
            heads: self.num_heads,
            intermediate: self.d_ff,
            vocab: self.vocab_size,
            // Relative positions put no hard limit on length; this bounds prompt lengths.
            positions: 512,
            type_vocab: 0,
            image: None,
            decoder_layers: self.decoder_layers(),
            attention_dim: if self.num_heads * self.d_kv == self.d_model { 0 } else { self.num_heads * self.d_kv },
            activation: if self.gated() { "gelu_new".into() } else { "relu".into() },
            gated_ffn: self.gated(),
            position_buckets: self.relative_attention_num_buckets,
            untied_head: !self.tie_word_embeddings,
            embedding_dim: 0,
        }
    }
}

/// T5's LayerNorm: scale only, by the root mean square, no mean subtracted, no bias.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, d: i64, eps: f64) -> RmsNorm {
        RmsNorm { weight: p.var("weight", &[d], nn::Init::Const(1.0)), eps }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let variance = x.square().mean_dim([-1].as_slice(), true, Kind::Float);
        x * (variance + self.eps).rsqrt() * &self.weight
    }
}

/// A bias-free projection (T5 has no biases): a [`Linear`] whose bias is a zero buffer, so that merging
/// and the site hooks are shared with the other backbones.
fn projection(p: nn::Path, input: i64, output: i64) -> Linear {
    let linear = Linear {
        weight: p.var("weight", &[output, input], nn::Init::Randn { mean: 0.0, stdev: (input as f64).powf(-0.5) }),
        bias: Tensor::zeros([output], (Kind::Float, p.device())),
    };
    let _ = linear.bias.shallow_clone().set_requires_grad(false);
    linear
}

/// Self- or cross-attention with optional relative position buckets.
#[derive(Debug)]
struct T5Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: i64,
    d_kv: i64,
    relative: Option<Tensor>,
}

impl T5Attention {
    fn new(p: nn::Path, c: &T5Config, relative: bool) -> T5Attention {
        let inner = c.num_heads * c.d_kv;
        T5Attention {
            q: projection(&p / "q", c.d_model, inner),
            k: projection(&p / "k", c.d_model, inner),
            v: projection(&p / "v", c.d_model, inner),
            o: projection(&p / "o", inner, c.d_model),
            heads: c.num_heads,
            d_kv: c.d_kv,
            relative: relative.then(|| {
                (&p / "relative_attention_bias").var(
                    "weight",
                    &[c.relative_attention_num_buckets, c.num_heads],
                    nn::Init::Randn { mean: 0.0, stdev: (c.d_model as f64).powf(-0.5) },
                )
            }),
        }
    }

    /// Attention of `x` over `kv` (itself for self-attention); `hooks` = the layer index and the sites of
    /// its q, k, v and o ([`SELF_SITES`] or [`CROSS_SITES`]). Prefix positions go into self-attention.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        kv: &Tensor,
        keep: &Tensor,
        bias: Option<&Tensor>,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
        p_drop: f64,
        train: bool,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("(batch, len, d)");
        let s = kv.size()[1];
        let (layer, sites) = hooks;
        let split = |h: Tensor, n: i64| h.view([b, n, self.heads, self.d_kv]).transpose(1, 2);
        let q = split(self.q.forward(x, layer, sites[0], m, train), t);
        let k = split(self.k.forward(kv, layer, sites[1], m, train), s);
        let v = split(self.v.forward(kv, layer, sites[2], m, train), s);
        let prefix = if sites == SELF_SITES { m.prefix(layer, x, train) } else { None };
        let ctx = attend(&q, k, v, keep, bias, 1.0, prefix, p_drop, train);
        let ctx = ctx.transpose(1, 2).reshape([b, t, self.heads * self.d_kv]);
        self.o.forward(&ctx, layer, sites[3], m, train)
    }
}

impl T5Attention {
    /// One incremental decoding step (see `SelfAttention::context_step` in `bert`): self-attention
    /// (`memory` `None`) appends this step's keys and values to `cache` and adds `bias`, the new
    /// position's row of the position bias; cross-attention projects the encoder's output at the first
    /// step and reuses it.
    fn forward_step(
        &self,
        x: &Tensor,
        memory: Option<(&Tensor, &Tensor)>,
        cache: &mut StepKv,
        bias: Option<&Tensor>,
        hooks: (usize, [Site; 4]),
        m: &dyn Attachment,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("(batch, len, d)");
        let (layer, sites) = hooks;
        let split = |h: Tensor, n: i64| h.view([b, n, self.heads, self.d_kv]).transpose(1, 2);
        let q = split(self.q.forward(x, layer, sites[0], m, false), t);
        let (k, v, keep) = match memory {
            None => cache.append(
                split(self.k.forward(x, layer, sites[1], m, false), t),
                split(self.v.forward(x, layer, sites[2], m, false), t),
            ),
            Some((enc, enc_keep)) => {
                let (k, v) = cache.memory(|| {
                    let s = enc.size()[1];
                    (
                        split(self.k.forward(enc, layer, sites[1], m, false), s),
                        split(self.v.forward(enc, layer, sites[2], m, false), s),
                    )
                });
                (k, v, enc_keep.shallow_clone())
            }
        };
        let prefix = if sites == SELF_SITES { m.prefix(layer, x, false) } else { None };
        let ctx = attend(&q, k, v, &keep, bias, 1.0, prefix, 0.0, false);
        let ctx = ctx.transpose(1, 2).reshape([b, t, self.heads * self.d_kv]);
        self.o.forward(&ctx, layer, sites[3], m, false)
    }
}

/// T5's relative position bucket of `relative` = key position − query position (Mesh TensorFlow's).
pub(crate) fn bucket(relative: i64, bidirectional: bool, buckets: i64, max_distance: i64) -> i64 {
    let (mut n, mut out, mut r) = (buckets, 0, relative);
    if bidirectional {
        n /= 2;
        if r > 0 {
            out += n;
        }
        r = r.abs();
    } else {
        r = -r.min(0);
    }
    let exact = n / 2;
    if r < exact {
        return out + r;
    }
    let large = exact
        + ((r as f64 / exact as f64).ln() / (max_distance as f64 / exact as f64).ln() * (n - exact) as f64) as i64;
    out + large.min(n - 1)
}

/// The (1, heads, t, s) position bias of a stack from its first layer's bucket table.
fn position_bias(table: &Tensor, t: i64, s: i64, bidirectional: bool, c: &T5Config) -> Tensor {
    position_bias_from(table, 0, t, s, bidirectional, c)
}

/// The position bias of queries `first..first + t` over keys `0..s`, (1, heads, t, s).
fn position_bias_from(table: &Tensor, first: i64, t: i64, s: i64, bidirectional: bool, c: &T5Config) -> Tensor {
    let ids: Vec<i64> = (first..first + t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                bucket(j - i, bidirectional, c.relative_attention_num_buckets, c.relative_attention_max_distance)
            })
        })
        .collect();
    let ids = Tensor::from_slice(&ids).view([t, s]).to_device(table.device());
    Tensor::embedding(table, &ids, -1, false, false).permute([2, 0, 1]).unsqueeze(0)
}

/// The FFN: ReLU (T5) or gated GELU (v1.1, mT5).
#[derive(Debug)]
struct T5Ffn {
    wi: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

impl T5Ffn {
    fn new(p: nn::Path, c: &T5Config) -> T5Ffn {
        let dr = &p / "DenseReluDense";
        if c.gated() {
            T5Ffn {
                wi: projection(&dr / "wi_0", c.d_model, c.d_ff),
                wi_1: Some(projection(&dr / "wi_1", c.d_model, c.d_ff)),
                wo: projection(&dr / "wo", c.d_ff, c.d_model),
            }
        } else {
            T5Ffn {
                wi: projection(&dr / "wi", c.d_model, c.d_ff),
                wi_1: None,
                wo: projection(&dr / "wo", c.d_ff, c.d_model),
            }
        }
    }

    fn forward(&self, x: &Tensor, layer: usize, m: &dyn Attachment, p_drop: f64, train: bool) -> Tensor {
        let inner = self.wi.forward(x, layer, Site::FfnIntermediate, m, train);
        let act = m.activation(layer, &inner, train).unwrap_or_else(|| match &self.wi_1 {
            Some(_) => inner.gelu("tanh"),
            None => inner.relu(),
        });
        let h = match &self.wi_1 {
            Some(wi_1) => act * x.matmul(&wi_1.weight.tr()),
            None => act,
        };
        self.wo.forward(&h.drop_out(p_drop, train), layer, Site::FfnOutput, m, train)
    }
}

/// One encoder (no cross-attention) or decoder layer.
#[derive(Debug)]
struct Block {
    self_norm: RmsNorm,
    self_attn: T5Attention,
    cross: Option<(RmsNorm, T5Attention)>,
    ff_norm: RmsNorm,
    ff: T5Ffn,
}

impl Block {
    fn new(p: nn::Path, c: &T5Config, first: bool, decoder: bool) -> Block {
        let l = &p / "layer";
        let eps = c.layer_norm_epsilon;
        let ff_index = if decoder { 2 } else { 1 };
        Block {
            self_norm: RmsNorm::new(&l / 0 / "layer_norm", c.d_model, eps),
            self_attn: T5Attention::new(&l / 0 / "SelfAttention", c, first),
            cross: decoder.then(|| {
                (
                    RmsNorm::new(&l / 1 / "layer_norm", c.d_model, eps),
                    T5Attention::new(&l / 1 / "EncDecAttention", c, false),
                )
            }),
            ff_norm: RmsNorm::new(&l / ff_index / "layer_norm", c.d_model, eps),
            ff: T5Ffn::new(&l / ff_index, c),
        }
    }

    /// `memory`: the encoder's output and mask, for a decoder layer.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        h: &Tensor,
        keep: &Tensor,
        bias: &Tensor,
        memory: Option<(&Tensor, &Tensor)>,
        layer: usize,
        m: &dyn Attachment,
        p_drop: f64,
        train: bool,
    ) -> Tensor {
        // Pre-norm: the residual sum a sublayer hook may read is the output plus the un-normed stream.
        let sublayer = |x: &Tensor, out: Tensor, h: &Tensor, site: Site| {
            hooked_sublayer(m, (layer, site), x, out, &|out| out + h, train) + h
        };
        let x = self.self_norm.forward(h);
        let a = self.self_attn.forward(&x, &x, keep, Some(bias), (layer, SELF_SITES), m, p_drop, train);
        let mut h = sublayer(&x, a.drop_out(p_drop, train), h, Site::AttentionOutput);
        if let (Some((norm, attn)), Some((enc, enc_keep))) = (&self.cross, memory) {
            let x = norm.forward(&h);
            let c = attn.forward(&x, enc, enc_keep, None, (layer, CROSS_SITES), m, p_drop, train);
            h = sublayer(&x, c.drop_out(p_drop, train), &h, Site::CrossOutput);
        }
        let x = self.ff_norm.forward(&h);
        let f = self.ff.forward(&x, layer, m, p_drop, train).drop_out(p_drop, train);
        sublayer(&x, f, &h, Site::FfnOutput)
    }
}

impl Block {
    /// One incremental decoding step of a decoder layer (see [`Block::forward`]), in evaluation mode:
    /// `caches` = the self- and cross-attention's kept keys and values, `bias` the new position's row.
    fn forward_step(
        &self,
        h: &Tensor,
        bias: &Tensor,
        memory: (&Tensor, &Tensor),
        caches: &mut (StepKv, StepKv),
        layer: usize,
        m: &dyn Attachment,
    ) -> Tensor {
        let sublayer = |x: &Tensor, out: Tensor, h: &Tensor, site: Site| {
            hooked_sublayer(m, (layer, site), x, out, &|out| out + h, false) + h
        };
        let x = self.self_norm.forward(h);
        let a = self.self_attn.forward_step(&x, None, &mut caches.0, Some(bias), (layer, SELF_SITES), m);
        let mut h = sublayer(&x, a, h, Site::AttentionOutput);
        if let Some((norm, attn)) = &self.cross {
            let x = norm.forward(&h);
            let c = attn.forward_step(&x, Some(memory), &mut caches.1, None, (layer, CROSS_SITES), m);
            h = sublayer(&x, c, &h, Site::CrossOutput);
        }
        let x = self.ff_norm.forward(&h);
        let f = self.ff.forward(&x, layer, m, 0.0, false);
        sublayer(&x, f, &h, Site::FfnOutput)
    }
}

/// Incremental decoding on a T5: per decoder layer, the kept keys and values, and the position bias
/// row of each new position.
struct T5Stepper<'a> {
    model: &'a T5,
    encoded: &'a Encoded,
    m: &'a dyn Attachment,
    cache: DecodeCache,
}

impl Stepper for T5Stepper<'_> {
    fn next_logits(&mut self, last: &Tensor) -> Tensor {
        let model = self.model;
        let b = last.size()[0];
        let mut h = Tensor::embedding(&model.shared, last, -1, false, false);
        let table = model.decoder[0].self_attn.relative.as_ref().expect("the first decoder layer holds the buckets");
        let c = &mut self.cache;
        let bias = position_bias_from(table, c.step, 1, c.step + 1, false, &model.config);
        self.m.begin_stack(&Tensor::ones([b, 1], (Kind::Bool, last.device())), true);
        let offset = model.encoder.len();
        for (i, (block, caches)) in model.decoder.iter().zip(&mut c.layers).enumerate() {
            let memory = (&self.encoded.hidden, &c.enc_keep);
            h = block.forward_step(&h, &bias, memory, caches, offset + i, self.m);
        }
        c.step += 1;
        model.lm_head(model.decoder_norm.forward(&h).select(1, 0))
    }

    fn reorder(&mut self, rows: &Tensor) {
        self.cache.reorder(rows);
    }
}

/// A T5 / mT5 encoder-decoder with its weights in a [`nn::VarStore`].
#[derive(Debug)]
pub struct T5 {
    vs: nn::VarStore,
    config: T5Config,
    dims: BackboneDims,
    shared: Tensor,
    encoder: Vec<Block>,
    encoder_norm: RmsNorm,
    decoder: Vec<Block>,
    decoder_norm: RmsNorm,
    lm_head: Option<Tensor>,
}

impl T5 {
    /// Builds a randomly initialised model from `seed`.
    pub fn random(config: &T5Config, seed: i64, device: Device) -> T5 {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = config;
        let shared =
            (&root / "shared").var("weight", &[c.vocab_size, c.d_model], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let stack = |name: &str, n: i64, decoder: bool| -> Vec<Block> {
            (0..n).map(|i| Block::new(&root / name / "block" / i, c, i == 0, decoder)).collect()
        };
        let encoder = stack("encoder", c.num_layers, false);
        let decoder = stack("decoder", c.decoder_layers(), true);
        let encoder_norm = RmsNorm::new(&root / "encoder" / "final_layer_norm", c.d_model, c.layer_norm_epsilon);
        let decoder_norm = RmsNorm::new(&root / "decoder" / "final_layer_norm", c.d_model, c.layer_norm_epsilon);
        let lm_head = (!c.tie_word_embeddings).then(|| {
            (&root / "lm_head").var("weight", &[c.vocab_size, c.d_model], nn::Init::Randn { mean: 0.0, stdev: 1.0 })
        });
        T5 { dims: c.dims(), config: c.clone(), vs, shared, encoder, encoder_norm, decoder, decoder_norm, lm_head }
    }

    /// Loads a Hugging Face T5 / mT5 folder: `config.json` + `model.safetensors`.
    pub fn load(dir: &Path, device: Device) -> Result<T5> {
        let config = T5Config::from_file(&dir.join("config.json"))?;
        let model = T5::random(&config, 0, device);
        loader::load_safetensors(&model.vs, &dir.join("model.safetensors"))?;
        Ok(model)
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    fn p_drop(&self, train: bool) -> f64 {
        if train {
            self.config.dropout_rate
        } else {
            0.0
        }
    }

    /// Next-token logits (batch, t, vocab) for `decoder_ids` (batch, t) given the encoder's output.
    pub fn decode(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        self.lm_head(self.decoder_states(encoded, decoder_ids, m, train))
    }

    /// The LM head on decoder states: scaled by d^-0.5 where the original T5 did, then the (tied or own)
    /// output embedding.
    fn lm_head(&self, mut out: Tensor) -> Tensor {
        let scale = self.config.scale_decoder_outputs.unwrap_or(self.config.tie_word_embeddings);
        if scale {
            out *= (self.config.d_model as f64).powf(-0.5);
        }
        out.matmul(&self.lm_head.as_ref().unwrap_or(&self.shared).tr())
    }

    /// The decoder's final hidden states (batch, t, d) for `decoder_ids` given the encoder's output.
    pub fn decoder_states(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        let (b, t) = decoder_ids.size2().expect("decoder ids are (batch, len)");
        let p_drop = self.p_drop(train);
        let mut h = Tensor::embedding(&self.shared, decoder_ids, -1, false, false).drop_out(p_drop, train);
        let keep = Tensor::ones([b, t], (Kind::Bool, h.device()));
        let table = self.decoder[0].self_attn.relative.as_ref().expect("the first decoder layer holds the buckets");
        let causal = Tensor::ones([t, t], (Kind::Bool, h.device())).tril(0);
        let bias = position_bias(table, t, t, false, &self.config)
            .masked_fill(&causal.logical_not().view([1, 1, t, t]), f64::NEG_INFINITY);
        let enc_keep = encoded.mask.ne(0);
        let offset = self.encoder.len();
        m.begin_stack(&keep, true);
        for (i, block) in self.decoder.iter().enumerate() {
            h = block.forward(&h, &keep, &bias, Some((&encoded.hidden, &enc_keep)), offset + i, m, p_drop, train);
        }
        self.decoder_norm.forward(&h).drop_out(p_drop, train)
    }
}

impl Seq2Seq for T5 {
    fn logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        self.decode(encoded, decoder_ids, m, train)
    }
    fn last_logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment) -> Tensor {
        let t = decoder_ids.size()[1];
        self.lm_head(self.decoder_states(encoded, decoder_ids, m, false).select(1, t - 1))
    }
    fn stepper<'a>(&'a self, encoded: &'a Encoded, m: &'a dyn Attachment) -> Option<Box<dyn Stepper + 'a>> {
        Some(Box::new(T5Stepper { model: self, encoded, m, cache: DecodeCache::new(encoded, self.decoder.len()) }))
    }
    fn special_ids(&self) -> SpecialIds {
        let c = &self.config;
        SpecialIds { start: c.decoder_start_token_id, eos: c.eos_token_id, pad: c.pad_token_id }
    }
}

impl Backbone for T5 {
    fn dims(&self) -> &BackboneDims {
        &self.dims
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The encoder: its final hidden states, with any prompt positions in front.
    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        let p_drop = self.p_drop(train);
        let embedded = Tensor::embedding(&self.shared, &inputs.input_ids, -1, false, false).drop_out(p_drop, train);
        let (mut h, mask, p) = prepend_prompt(embedded, &inputs.attention_mask, method, false, train);
        let keep = mask.ne(0);
        let t = h.size()[1];
        let table = self.encoder[0].self_attn.relative.as_ref().expect("the first encoder layer holds the buckets");
        let bias = position_bias(table, t, t, true, &self.config);
        method.begin_stack(&keep, false);
        for (i, block) in self.encoder.iter().enumerate() {
            h = block.forward(&h, &keep, &bias, None, i, method, p_drop, train);
        }
        Encoded { hidden: self.encoder_norm.forward(&h).drop_out(p_drop, train), mask, inserted: (0, p) }
    }

    /// The decoder's states with the inputs teacher-forced as decoder inputs, so that the encoder's and
    /// the decoder's layers are all on the path; the mask is the inputs' own.
    fn probe(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        let encoded = self.forward(inputs, method, train);
        let hidden = self.decoder_states(&encoded, &inputs.input_ids, method, train);
        Encoded { hidden, mask: inputs.attention_mask.shallow_clone(), inserted: (0, 0) }
    }

    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
        let l_enc = self.encoder.len();
        let block = if layer < l_enc { self.encoder.get_mut(layer) } else { self.decoder.get_mut(layer - l_enc) };
        let lin = block.and_then(|b| match site {
            Site::Query => Some(&mut b.self_attn.q),
            Site::Key => Some(&mut b.self_attn.k),
            Site::Value => Some(&mut b.self_attn.v),
            Site::AttentionOutput => Some(&mut b.self_attn.o),
            Site::CrossQuery => b.cross.as_mut().map(|c| &mut c.1.q),
            Site::CrossKey => b.cross.as_mut().map(|c| &mut c.1.k),
            Site::CrossValue => b.cross.as_mut().map(|c| &mut c.1.v),
            Site::CrossOutput => b.cross.as_mut().map(|c| &mut c.1.o),
            Site::FfnIntermediate => Some(&mut b.ff.wi),
            Site::FfnOutput => Some(&mut b.ff.wo),
            _ => None,
        });
        merge_linear(lin, layer, site, delta_w)
    }

    fn projection_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.linear(layer, site)?.weight.shallow_clone())
    }

    fn projection_bias(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.linear(layer, site)?.bias.shallow_clone())
    }
}

impl T5 {
    /// The projection at `site` of `layer` (decoder layers after the encoder's).
    fn linear(&self, layer: usize, site: Site) -> Option<&Linear> {
        let l_enc = self.encoder.len();
        let b = if layer < l_enc { self.encoder.get(layer)? } else { self.decoder.get(layer - l_enc)? };
        let lin = match site {
            Site::Query => &b.self_attn.q,
            Site::Key => &b.self_attn.k,
            Site::Value => &b.self_attn.v,
            Site::AttentionOutput => &b.self_attn.o,
            Site::CrossQuery => &b.cross.as_ref()?.1.q,
            Site::CrossKey => &b.cross.as_ref()?.1.k,
            Site::CrossValue => &b.cross.as_ref()?.1.v,
            Site::CrossOutput => &b.cross.as_ref()?.1.o,
            Site::FfnIntermediate => &b.ff.wi,
            Site::FfnOutput => &b.ff.wo,
            _ => return None,
        };
        Some(lin)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn relative_buckets_match_mesh_tensorflow() {
        // Bidirectional, 32 buckets, max distance 128 (T5's defaults): exact for |r| < 8, log-spaced
        // after, the sign in the upper half.
        let b = |r| bucket(r, true, 32, 128);
        assert_eq!((b(0), b(1), b(7), b(-1), b(-7)), (0, 17, 23, 1, 7));
        assert_eq!((b(8), b(-8), b(-127), b(127), b(-1000)), (24, 8, 15, 31, 15));
        // Unidirectional (decoder): future positions share bucket 0.
        let u = |r| bucket(r, false, 32, 128);
        assert_eq!((u(3), u(0), u(-1), u(-15), u(-16), u(-1000)), (0, 0, 1, 15, 16, 31));
    }
}
