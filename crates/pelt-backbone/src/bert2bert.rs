//! BERT2BERT: an encoder-decoder warm-started from one BERT-family checkpoint (Rothe et al. 2020,
//! "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks"). The encoder is the checkpoint;
//! the decoder's layers start as copies of the encoder's, with causal self-attention; the
//! cross-attention of every decoder layer (q, k, v, output projection and its LayerNorm) is new, as in
//! the paper; the output layer is BERT's MLM prediction head — a new transform (dense, GELU,
//! LayerNorm) and bias — over the word-embedding matrix, which the encoder, the decoder's input and the
//! output share.
//!
//! pelt uses it where no pretrained seq2seq checkpoint can be installed: the shipped all-MiniLM-L6-v2
//! (which has no MLM head) becomes a 6 + 6-layer encoder-decoder. The warm-started weights form the
//! frozen backbone that methods attach to; the new parts live in their own store
//! ([`Seq2Seq::new_parts`]) and train in every run, as a task head does.
//!
//! Sites follow the T5 convention: encoder layers 0..L, decoder layers L..2L, each with the encoder's
//! sites on its self-attention and FFN, and the decoder's cross-attention with the `cross_*` sites.
//! Variables mirror the checkpoint's names (`encoder.layer.N.…`); the decoder's copies are
//! `decoder.layer.N.…`, its cross-attention `decoder.layer.N.crossattention.…` (HF's
//! `BertLMHeadModel` names) in the new store, and the head `cls.predictions.…`.

use crate::{
    bert::{encode, merge_linear, Attention, BertConfig, Embeddings, Layer, LayerNorm, Linear, CROSS_SITES},
    seq2seq::{DecodeCache, Seq2Seq, SpecialIds, Stepper},
    Bert,
};
use pelt_core::{Attachment, Backbone, BackboneDims, Encoded, Inputs, PeltError, Result, Site};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// A decoder layer: the warm-started layer (causal self-attention, FFN) and a new cross-attention.
#[derive(Debug)]
struct DecoderLayer {
    layer: Layer,
    cross: Attention,
}

/// BERT's MLM prediction head over the tied word embeddings.
#[derive(Debug)]
struct LmHead {
    dense: Linear,
    norm: LayerNorm,
    bias: Tensor,
}

/// A BERT2BERT encoder-decoder.
#[derive(Debug)]
pub struct Bert2Bert {
    vs: nn::VarStore,
    new: nn::VarStore,
    config: BertConfig,
    dims: BackboneDims,
    special: SpecialIds,
    embeddings: Embeddings,
    encoder: Vec<Layer>,
    decoder: Vec<DecoderLayer>,
    head: LmHead,
}

impl Bert2Bert {
    /// A randomly initialised model (BERT's normal(0, initializer_range) init everywhere) from `seed`.
    pub fn random(config: &BertConfig, special: SpecialIds, seed: i64, device: Device) -> Bert2Bert {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let mut new = nn::VarStore::new(device);
        let (root, fresh) = (vs.root(), new.root());
        let embeddings = Embeddings::new(&root, config);
        let encoder =
            (0..config.num_hidden_layers).map(|i| Layer::new(&root / "encoder" / "layer" / i, config)).collect();
        let decoder = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer {
                layer: Layer::new(&root / "decoder" / "layer" / i, config),
                cross: Attention::new(&fresh / "decoder" / "layer" / i / "crossattention", config),
            })
            .collect();
        let (d, v) = (config.hidden_size, config.vocab_size);
        let p = &fresh / "cls" / "predictions";
        let head = LmHead {
            dense: Linear::new(&p / "transform" / "dense", d, d, config.initializer_range),
            norm: LayerNorm::new(&p / "transform" / "LayerNorm", d, config.layer_norm_eps),
            bias: p.var("bias", &[v], nn::Init::Const(0.0)),
        };
        // The new parts train only when a run asks for them (the runner, as it does a task head), so
        // that a method's conformance sees the backbone frozen.
        new.freeze();
        let mut dims = config.dims();
        dims.layers *= 2;
        dims.decoder_layers = config.num_hidden_layers;
        Bert2Bert { vs, new, config: config.clone(), dims, special, embeddings, encoder, decoder, head }
    }

    /// Warm-starts from a Hugging Face BERT-family folder (`config.json` + `model.safetensors`): the
    /// encoder is the checkpoint, each decoder layer a copy of the encoder layer of the same depth, the
    /// cross-attention and the output transform new (drawn from `seed`). `special` holds the
    /// tokenizer's [CLS] (decoder start), [SEP] (end) and [PAD] ids.
    pub fn warm_start(dir: &Path, special: SpecialIds, seed: i64, device: Device) -> Result<Bert2Bert> {
        let bert = Bert::load(dir, device)?;
        if bert.config().relative_attention_num_buckets.is_some() {
            // Its relative-position bias would have no place in the decoder: refuse rather than drop it.
            return Err(PeltError::Weights {
                path: dir.display().to_string(),
                message: format!(
                    "warm start: a `{}` encoder (relative-position bias) cannot warm-start a BERT2BERT; use a \
                     BERT-family model without one, or a T5",
                    bert.config().model_type
                ),
            });
        }
        let model = Bert2Bert::random(bert.config(), special, seed, device);
        let source = bert.var_store().variables();
        let err = |name: &str| PeltError::Weights {
            path: dir.display().to_string(),
            message: format!("warm start: no tensor for `{name}`"),
        };
        tch::no_grad(|| {
            for (name, mut var) in model.vs.variables() {
                // A decoder layer starts from the encoder layer of the same depth.
                let from = name.strip_prefix("decoder.").map_or(name.clone(), |rest| format!("encoder.{rest}"));
                var.copy_(source.get(&from).ok_or_else(|| err(&from))?);
            }
            Ok(model)
        })
    }

    /// The encoder's configuration (`config.json` of the checkpoint).
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The decoder's final hidden states (batch, t, d) for `decoder_ids` given the encoder's output:
    /// BERT embeddings (positions from 0), causal self-attention, cross-attention over the encoder's
    /// real positions, FFN, each post-norm.
    pub fn decoder_states(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        let (b, t) = decoder_ids.size2().expect("decoder ids are (batch, len)");
        let device = decoder_ids.device();
        let inputs = Inputs::text(
            decoder_ids.shallow_clone(),
            Tensor::ones([b, t], (Kind::Int64, device)),
            Tensor::zeros([b, t], (Kind::Int64, device)),
        );
        let mut h = self.embeddings.forward(&inputs, None, train);
        let keep = Tensor::ones([b, t], (Kind::Bool, device));
        let future = Tensor::ones([t, t], (Kind::Bool, device)).triu(1).view([1, 1, t, t]);
        let causal = Tensor::zeros([1, 1, t, t], (Kind::Float, device)).masked_fill(&future, f64::NEG_INFINITY);
        let enc_keep = encoded.mask.ne(0);
        let offset = self.encoder.len();
        m.begin_stack(&keep, true);
        for (i, d) in self.decoder.iter().enumerate() {
            let layer = offset + i;
            let a = d.layer.attention.forward_over(&h, &h, &keep, Some(&causal), (layer, SELF), m, train);
            let c = d.cross.forward_over(&a, &encoded.hidden, &enc_keep, None, (layer, CROSS_SITES), m, train);
            h = d.layer.ffn.forward(&c, layer, m, train);
        }
        h
    }

    fn projection(&self, layer: usize, site: Site) -> Option<&Linear> {
        let l_enc = self.encoder.len();
        if site.is_cross() {
            return self.decoder.get(layer.checked_sub(l_enc)?)?.cross.projection(site);
        }
        let l = if layer < l_enc { self.encoder.get(layer)? } else { &self.decoder.get(layer - l_enc)?.layer };
        l.projection(site)
    }

    fn projection_mut(&mut self, layer: usize, site: Site) -> Option<&mut Linear> {
        let l_enc = self.encoder.len();
        if site.is_cross() {
            let cross = &mut self.decoder.get_mut(layer.checked_sub(l_enc)?)?.cross;
            return cross.projection_mut(site);
        }
        let l =
            if layer < l_enc { self.encoder.get_mut(layer)? } else { &mut self.decoder.get_mut(layer - l_enc)?.layer };
        l.projection_mut(site)
    }
}

/// The self-attention sites (the decoder's causal self-attention takes the same hooks as the encoder's).
const SELF: [Site; 4] = [Site::Query, Site::Key, Site::Value, Site::AttentionOutput];

impl Bert2Bert {
    /// BERT's MLM prediction head on decoder states: transform, then scores against the tied embeddings.
    fn predict(&self, h: &Tensor) -> Tensor {
        let x = self.head.norm.forward(&activate_gelu(&h.linear(&self.head.dense.weight, Some(&self.head.dense.bias))));
        x.matmul(&self.embeddings.word_embeddings().tr()) + &self.head.bias
    }
}

impl Seq2Seq for Bert2Bert {
    fn logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        self.predict(&self.decoder_states(encoded, decoder_ids, m, train))
    }
    fn last_logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment) -> Tensor {
        let t = decoder_ids.size()[1];
        self.predict(&self.decoder_states(encoded, decoder_ids, m, false).select(1, t - 1))
    }
    fn special_ids(&self) -> SpecialIds {
        self.special
    }
    fn stepper<'a>(&'a self, encoded: &'a Encoded, m: &'a dyn Attachment) -> Option<Box<dyn Stepper + 'a>> {
        let cache = DecodeCache::new(encoded, self.decoder.len());
        Some(Box::new(Bert2BertStepper { model: self, encoded, m, cache }))
    }
    fn new_parts(&self) -> Option<&nn::VarStore> {
        Some(&self.new)
    }
    fn reset_new_parts(&self) {
        // BERT's init, as `random` draws them: weights normal(0, initializer_range), biases zero,
        // LayerNorms at (1, 0).
        let std = self.config.initializer_range;
        // Sorted, so the draws come in the same order on every run (the store is a hash map).
        let mut vars: Vec<(String, Tensor)> = self.new.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (name, mut var) in vars {
                if name.ends_with("LayerNorm.weight") {
                    let _ = var.fill_(1.0);
                } else if name.ends_with("bias") {
                    let _ = var.fill_(0.0);
                } else {
                    let _ = var.normal_(0.0, std);
                }
            }
        });
    }
}

/// Incremental decoding on a BERT2BERT: per decoder layer, the self-attention's keys and values of the
/// positions so far and the cross-attention's of the encoder output.
struct Bert2BertStepper<'a> {
    model: &'a Bert2Bert,
    encoded: &'a Encoded,
    m: &'a dyn Attachment,
    cache: DecodeCache,
}

impl Stepper for Bert2BertStepper<'_> {
    fn next_logits(&mut self, last: &Tensor) -> Tensor {
        let b = last.size()[0];
        let c = &mut self.cache;
        let mut h = self.model.embeddings.forward_at(last, c.step);
        // The stack is announced as a whole pass announces it (the new position is real, the decoder
        // causal); methods that pool over a stack do not decode incrementally.
        self.m.begin_stack(&Tensor::ones([b, 1], (Kind::Bool, last.device())), true);
        let offset = self.model.encoder.len();
        for (i, (d, (own, cross))) in self.model.decoder.iter().zip(&mut c.layers).enumerate() {
            let layer = offset + i;
            let a = d.layer.attention.forward_step(&h, None, own, (layer, SELF), self.m);
            let memory = Some((&self.encoded.hidden, &c.enc_keep));
            let out = d.cross.forward_step(&a, memory, cross, (layer, CROSS_SITES), self.m);
            h = d.layer.ffn.forward(&out, layer, self.m, false);
        }
        c.step += 1;
        self.model.predict(&h.select(1, 0))
    }

    fn reorder(&mut self, rows: &Tensor) {
        self.cache.reorder(rows);
    }
}

/// BERT's MLM transform uses the checkpoint's activation; BERT's and MiniLM's is the erf GELU.
fn activate_gelu(x: &Tensor) -> Tensor {
    x.gelu("none")
}

impl Backbone for Bert2Bert {
    fn dims(&self) -> &BackboneDims {
        &self.dims
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The encoder, with any prompt positions in front.
    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        encode(&self.embeddings, &self.encoder, None, inputs, method, train)
    }

    /// The decoder's states with the inputs teacher-forced as decoder inputs, so that every encoder and
    /// decoder layer is on the path.
    fn probe(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        let encoded = self.forward(inputs, method, train);
        let hidden = self.decoder_states(&encoded, &inputs.input_ids, method, train);
        Encoded { hidden, mask: inputs.attention_mask.shallow_clone(), inserted: (0, 0) }
    }

    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
        merge_linear(self.projection_mut(layer, site), layer, site, delta_w)
    }

    fn projection_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.projection(layer, site)?.weight.shallow_clone())
    }

    fn projection_bias(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.projection(layer, site)?.bias.shallow_clone())
    }
}
