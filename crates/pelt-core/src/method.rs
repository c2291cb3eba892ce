//! The method trait and the hooks a backbone calls at its sites.

use crate::{
    backbone::{Backbone, BackboneDims},
    site::{Scale, Site},
    Result,
};
use tch::{nn::VarStore, Tensor};

/// A peak learning rate (and optionally a weight decay) of its own for some of a method's variables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnRate {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay; `None`: the run's.
    pub weight_decay: Option<f64>,
}

/// A content planner's settings (see [`Method::content_planner`]): a BiLSTM-CRF over an input's keys.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerSettings {
    /// Hidden size of each LSTM direction.
    pub hidden: i64,
    /// Passes over the training tables (the one whose plans agree best with the dev set's is kept).
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        PlannerSettings { hidden: 128, epochs: 40, lr: 5e-3 }
    }
}

/// A Δ with its scale, returned by an [`Attachment`] hook and composed by [`crate::compose`].
#[derive(Debug)]
pub struct Delta {
    /// The modification, shaped like the hidden state it modifies.
    pub value: Tensor,
    /// How much of it to add.
    pub scale: Scale,
}

impl Delta {
    /// Δ with a fixed scale.
    pub fn fixed(value: Tensor, scale: f64) -> Delta {
        Delta { value, scale: Scale::Fixed(scale) }
    }
}

/// Keys and values prepended as extra attention positions, each (batch, heads, positions, head_dim).
#[derive(Debug)]
pub struct Prefix {
    /// Extra keys.
    pub keys: Tensor,
    /// Extra values.
    pub values: Tensor,
    /// A gate per query token, (batch, len) in [0, 1], scaling the attention probabilities of the
    /// prefix positions (UniPELT's prefix gate in a decoder, where it differs per query); `None` leaves
    /// them as softmax made them.
    pub gate: Option<Tensor>,
}

/// Hooks a backbone calls at its sites; every hook defaults to "no change".
///
/// Hooks return Δs and never compose them: the backbone calls [`crate::compose`] so that composition
/// is written once.
pub trait Attachment {
    /// Δ for the output of the linear projection at `site` of `layer`, from the projection's input `x`
    /// (reparameterised methods: Δ = ΔW·x).
    fn projection(&self, _layer: usize, _site: Site, _x: &Tensor, _train: bool) -> Option<Delta> {
        None
    }

    /// A replacement for the input `x` of the projection at `site` (OFT rotates it; (IA)³ rescales the
    /// FFN output projection's input, the FFN's activations). [`Attachment::projection`] still sees the
    /// original `x`.
    fn projection_input(&self, _layer: usize, _site: Site, _x: &Tensor, _train: bool) -> Option<Tensor> {
        None
    }

    /// A replacement for the output `h` of the projection at `site`, after its bias and any
    /// [`Attachment::projection`] Δ ((IA)³ rescales keys and values).
    fn projection_output(&self, _layer: usize, _site: Site, _h: &Tensor, _train: bool) -> Option<Tensor> {
        None
    }

    /// Δ for a sublayer's output `h` (`site` is [`Site::AttentionOutput`] or [`Site::FfnOutput`]),
    /// given the sublayer's input `x`; added before the residual connection and LayerNorm.
    fn sublayer(&self, _layer: usize, _site: Site, _x: &Tensor, _h: &Tensor, _train: bool) -> Option<Delta> {
        None
    }

    /// Δ for a sublayer's output computed from the residual sum instead of the output alone, for
    /// adapters placed after the residual connection (Pfeiffer et al. 2021; the adapters library's
    /// `original_ln_before`): `sum()` is the sublayer's output (after any [`Attachment::sublayer`] Δ)
    /// plus its residual input, normalised by the sublayer's own LayerNorm on a post-norm backbone (BERT)
    /// and as is on a pre-norm one (ViT, T5). The Δ is added to the output before the residual
    /// connection, like a sublayer Δ; `sum` is computed only if the hook calls it.
    fn residual_sublayer(&self, _layer: usize, _site: Site, _sum: &dyn Fn() -> Tensor, _train: bool) -> Option<Delta> {
        None
    }

    /// Called by the backbone before the layers of each stack run (an encoder's, a decoder's): `keep`
    /// (batch, len) marks the real positions its layers see (inserted prompt positions included), and
    /// `causal` says whether position t may depend only on positions ≤ t (a decoder). For methods that
    /// pool over the sequence (UniPELT's gates). Default: nothing.
    fn begin_stack(&self, _keep: &Tensor, _causal: bool) {}

    /// Extra key/value positions for the attention of `layer`; `x` is the layer's input (batch, len, d),
    /// for input-dependent prefixes.
    fn prefix(&self, _layer: usize, _x: &Tensor, _train: bool) -> Option<Prefix> {
        None
    }

    /// Positions (batch, P, d) to prepend to the embedding output.
    fn prompt(&self, _embeddings: &Tensor, _mask: &Tensor, _train: bool) -> Option<Tensor> {
        None
    }

    /// Vectors (batch, P, word width) to prepend to the word embeddings of the input, before the
    /// position and segment embeddings and the embeddings' LayerNorm, as Hugging Face peft feeds prompt
    /// tuning's `inputs_embeds`: the prompt takes positions 0..P (segment 0) and the real tokens move
    /// to P.. . A backbone without absolute positions (T5) prepends them to its embedding output.
    fn input_prompt(&self, _batch: i64, _train: bool) -> Option<Tensor> {
        None
    }

    /// Replacement positions (batch, P, d) for the P prompt positions at the input of `layer` ≥ 1 (deep
    /// prompts as VPT-deep: every layer gets fresh prompt tokens instead of the layer below's outputs).
    /// Called only when [`Attachment::prompt`] inserted positions.
    fn layer_prompt(&self, _layer: usize, _batch: i64, _train: bool) -> Option<Tensor> {
        None
    }

    /// A replacement for the FFN activation of `layer`.
    fn activation(&self, _layer: usize, _x: &Tensor, _train: bool) -> Option<Tensor> {
        None
    }

    /// Whether a decoder may run one new position at a time, keeping the keys and values of earlier
    /// ones (incremental decoding): true when every hook acts on each position alone. A method whose
    /// hooks pool over the positions of a stack (UniPELT's gates, a running mean in a decoder) says
    /// false, and its outputs are decoded by rerunning the decoder over the whole prefix.
    fn decodes_incrementally(&self) -> bool {
        true
    }
}

/// The bare backbone: attaches nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMethod;

impl Attachment for NoMethod {}

/// What a method promises about its output before any training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Identity {
    /// Output equals the bare backbone's exactly (up to float rounding).
    Exact,
    /// Output is within the given max-abs tolerance of the bare backbone's (near-identity init).
    Approx(f64),
    /// No identity claim (prompt and prefix methods).
    None,
}

/// A parameter-efficient tuning method attached to one backbone.
pub trait Method: Attachment {
    /// The registry name, e.g. `lora`.
    fn name(&self) -> &str;

    /// The method's own variables (empty for selective methods).
    fn var_store(&self) -> &VarStore;

    /// Whether the backbone variable `name` trains (selective methods; default none).
    fn trains_backbone(&self, _name: &str) -> bool {
        false
    }

    /// The identity promise checked by the conformance suite.
    fn identity(&self) -> Identity;

    /// Trainable parameters predicted by the method's formula for `dims` (checked against the stores).
    fn formula_params(&self, dims: &BackboneDims) -> i64;

    /// Merges the method into the backbone's weights, if it is reparameterised. Returns `Ok(false)` for
    /// methods that cannot merge. After a merge the method must be detached (use [`NoMethod`]).
    fn merge_into(&self, _backbone: &mut dyn Backbone) -> Result<bool> {
        Ok(false)
    }

    /// Initialises from the pretrained backbone's weights, once, right after construction (prompt tuning
    /// starts its soft tokens from vocabulary embeddings). Default: nothing.
    fn init_from(&self, _backbone: &dyn Backbone) {}

    /// Called after each backward pass, before the optimizer step (e.g. to mask gradients).
    fn after_backward(&self) {}

    /// Called after each optimizer step, the step's gradients still in place (AdaLoRA scores its
    /// triplets by them and reallocates its rank budget).
    fn after_step(&self) {}

    /// Called by a training loop before its first step with the number of optimizer steps it will take
    /// (AdaLoRA's budget schedule runs over them).
    fn begin_training(&self, _total_steps: usize) {}

    /// A term the training loop adds to each step's loss (AdaLoRA's orthogonality penalty); `None`, the
    /// default, adds nothing.
    fn regularizer(&self) -> Option<Tensor> {
        None
    }

    /// Masks of the method's variables that are held at zero (pruned methods): (variable name in the
    /// method's store, boolean tensor of the kept entries). Pruned entries are not counted as
    /// trainable, and the conformance suite checks that they stay zero through training.
    fn masks(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// How many training examples the method's calibration pass at init should see; 0 (the default)
    /// means none and [`Method::calibrate`] is never called. Runners pass it to [`run_calibration`],
    /// which runs that many examples (fewer if the training set is smaller) with dropout off, in
    /// training-size batches, summing the gradients of each batch's mean loss in the method's
    /// variables, then calls [`Method::calibrate`] (SNIP pruning scores weights by those gradients).
    fn calibration_examples(&self) -> usize {
        0
    }

    /// Uses the gradients left in the method's variables by the calibration pass at init (see
    /// [`Method::calibration_examples`]); the caller zeroes them afterwards.
    fn calibrate(&self) {}

    /// A learning rate of its own for the method variable `name` (its name in the method's store), as
    /// some reference implementations give part of a method (Polytropon's routing logits train at 0.1
    /// without weight decay); `None`: the run's rate and decay. The rate follows the run's warm-up and
    /// decay schedule.
    fn own_rate(&self, _name: &str) -> Option<OwnRate> {
        None
    }

    /// Scalar diagnostics to record with a run's results (e.g. mean gate values).
    fn diagnostics(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Whether the method routes each example by its task (Polytropon, Poly-S, ATTEMPT). Such a method
    /// is built for one task, its target (id 0); the two-stage protocol calls
    /// [`Method::begin_sources`] before source training and [`Method::begin_target`] after it.
    fn routes_tasks(&self) -> bool {
        false
    }

    /// Switches to training on `n` source tasks (ids 0..n), before any training. Methods that share
    /// all their parameters across tasks keep the default: nothing changes.
    fn begin_sources(&mut self, _n: usize) -> Result<()> {
        Ok(())
    }

    /// Ends source training and starts adaptation to one new target task: freezes or folds what the
    /// target must not change and adds the target's own parameters. Later passes without task ids
    /// belong to the target.
    fn begin_target(&mut self) -> Result<()> {
        Ok(())
    }

    /// The task of each example of the following forward passes, (batch,) int64; `None` means every
    /// example belongs to the current target task.
    fn set_task_ids(&self, _ids: Option<&Tensor>) {}

    /// Token classification: whether the method scores tags by label-word embeddings against the token
    /// states (LightNER's verbalizer) instead of a linear head; the family builds that head. Default:
    /// no.
    fn label_words(&self) -> bool {
        false
    }

    /// Data-to-text: the content planner the method brings (PCG's input-specific prefix), which the
    /// family trains on the plans its training references follow and runs on every input; `None`, the
    /// default, plans nothing.
    fn content_planner(&self) -> Option<PlannerSettings> {
        None
    }

    /// Whether the method can train federated, where clients exchange only its trainable set (see
    /// [`crate::federated`]); `Err` says why not. Default: yes, unless the method calibrates on
    /// training examples at init — the server of a federated run holds none, and scoring on one
    /// client's shard would fix the method's shape from that client alone.
    fn federates(&self) -> std::result::Result<(), String> {
        match self.calibration_examples() {
            0 => Ok(()),
            n => Err(format!(
                "it calibrates on {n} training examples at init (SNIP pruning), which a federated server does not hold"
            )),
        }
    }
}

/// Runs a method's calibration pass at init (see [`Method::calibration_examples`]): the examples at
/// positions `0..n` of the training set, `n` the method's request capped at `available`, in chunks of
/// `batch`; `loss` gives one chunk's mean loss, from a forward pass with dropout off; each is
/// backpropagated, so the gradients of all chunks sum in the method's variables, and then
/// [`Method::calibrate`] reads them. The caller zeroes the gradients before training. Returns `n`
/// (0: the method wants no calibration and `loss` is never called).
pub fn run_calibration(
    method: &dyn Method,
    available: usize,
    batch: usize,
    mut loss: impl FnMut(&[usize]) -> Tensor,
) -> usize {
    let n = method.calibration_examples().min(available);
    if n == 0 {
        return 0;
    }
    let positions: Vec<usize> = (0..n).collect();
    for chunk in positions.chunks(batch.max(1)) {
        loss(chunk).backward();
    }
    method.calibrate();
    n
}

/// One `T` per (layer, site) of a method that attaches at a list of sites, for the layers that have
/// each site (cross-attention sites exist only in decoder layers, see [`BackboneDims::has_site`]).
#[derive(Debug)]
pub struct SiteTable<T> {
    sites: Vec<Site>,
    /// rows[layer][i] for sites[i]; `None` where the layer lacks the site.
    rows: Vec<Vec<Option<T>>>,
}

impl<T> SiteTable<T> {
    /// Builds `make(layer, site)` for every layer of `dims` that has each of `sites`.
    pub fn new(dims: &BackboneDims, sites: &[Site], mut make: impl FnMut(usize, Site) -> T) -> SiteTable<T> {
        let rows = (0..dims.layers)
            .map(|l| sites.iter().map(|&s| dims.has_site(l, s).then(|| make(l as usize, s))).collect())
            .collect();
        SiteTable { sites: sites.to_vec(), rows }
    }

    /// The entry of `site` in `layer`, if the method attaches there.
    pub fn get(&self, layer: usize, site: Site) -> Option<&T> {
        let i = self.sites.iter().position(|&s| s == site)?;
        self.rows.get(layer)?.get(i)?.as_ref()
    }

    /// Every entry with its layer and site.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Site, &T)> {
        self.rows.iter().enumerate().flat_map(move |(l, row)| {
            row.iter().zip(&self.sites).filter_map(move |(t, &s)| t.as_ref().map(|t| (l, s, t)))
        })
    }

    /// Every entry with its layer and site, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, Site, &mut T)> {
        let sites = &self.sites;
        self.rows.iter_mut().enumerate().flat_map(move |(l, row)| {
            row.iter_mut().zip(sites).filter_map(move |(t, &s)| t.as_mut().map(|t| (l, s, t)))
        })
    }

    /// The first entry (lowest layer, first site), if any.
    pub fn first(&self) -> Option<&T> {
        self.iter().next().map(|(_, _, t)| t)
    }

    /// Merges one ΔW (out × in) per entry, `delta_w(layer, site, entry)`, into the backbone
    /// (reparameterised methods).
    pub fn merge(&self, backbone: &mut dyn Backbone, delta_w: impl Fn(usize, Site, &T) -> Tensor) -> Result<()> {
        for (layer, site, item) in self.iter() {
            let dw = tch::no_grad(|| delta_w(layer, site, item));
            backbone.merge_projection(layer, site, &dw)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use tch::{nn, Device, Kind};

    /// A method with one variable that asks for `wants` calibration examples and keeps the gradient
    /// it was calibrated with.
    struct Probe {
        vs: VarStore,
        w: Tensor,
        wants: usize,
        seen: RefCell<Option<Tensor>>,
    }

    impl Probe {
        fn new(wants: usize) -> Probe {
            let vs = VarStore::new(Device::Cpu);
            let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
            Probe { vs, w, wants, seen: RefCell::new(None) }
        }
    }

    impl Attachment for Probe {}

    impl Method for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn var_store(&self) -> &VarStore {
            &self.vs
        }
        fn identity(&self) -> Identity {
            Identity::None
        }
        fn formula_params(&self, _: &BackboneDims) -> i64 {
            3
        }
        fn calibration_examples(&self) -> usize {
            self.wants
        }
        fn calibrate(&self) {
            *self.seen.borrow_mut() = Some(self.w.grad().copy());
        }
    }

    /// Runs a calibration in which example p contributes (p + 1)·Σw to its chunk's loss, so the
    /// gradient calibrate sees is the sum of (p + 1) over the examples that were run.
    fn calibrated(wants: usize, available: usize, batch: usize) -> (usize, Vec<Vec<usize>>, Option<f64>) {
        let probe = Probe::new(wants);
        let mut chunks = Vec::new();
        let n = run_calibration(&probe, available, batch, |chunk| {
            chunks.push(chunk.to_vec());
            let weight: usize = chunk.iter().map(|p| p + 1).sum();
            probe.w.sum(Kind::Float) * weight as f64
        });
        let grad = probe.seen.borrow().as_ref().map(|g| {
            let g = Vec::<f32>::try_from(g).unwrap();
            assert!(g.iter().all(|&x| x == g[0]), "every entry of w gets the same gradient: {g:?}");
            f64::from(g[0])
        });
        (n, chunks, grad)
    }

    #[test]
    fn calibration_sums_the_gradients_of_every_batch() {
        // 5 examples in batches of 2: three chunks, and calibrate sees 1 + 2 + 3 + 4 + 5 = 15 (the
        // first batch alone would give 3, a mean over batches 5).
        let (n, chunks, grad) = calibrated(5, 100, 2);
        assert_eq!(n, 5);
        assert_eq!(chunks, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(grad, Some(15.0));
    }

    #[test]
    fn calibration_stops_at_the_training_set_and_is_skipped_when_not_wanted() {
        let (n, chunks, grad) = calibrated(320, 3, 16);
        assert_eq!((n, chunks, grad), (3, vec![vec![0, 1, 2]], Some(6.0)));
        let (n, chunks, grad) = calibrated(0, 100, 16);
        assert_eq!((n, chunks.len(), grad), (0, 0, None), "no pass and no calibrate call");
    }
}
