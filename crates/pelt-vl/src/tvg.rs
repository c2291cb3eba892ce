//! Temporal video grounding (TVG): given an untrimmed video's frame features and a query sentence, find
//! the span of frames the query describes. The model follows the seed paper's setting — a pretrained
//! language model encodes the query (tuned fully, with a PEFT method, or frozen) inside a TVG model
//! whose other parts train from scratch:
//!
//! - the frames' features (a frozen vision backbone's, computed once) are projected to width h and
//!   given learned positions;
//! - the query vector (the text encoder's mean over the query's tokens) modulates every frame
//!   (feature-wise linear modulation, x·(1 + γ(q)) + β(q)), so that the temporal encoder sees
//!   query-aware frames;
//! - a small pre-norm transformer over the frames (the temporal encoder) contextualises them;
//! - a linear layer gives each frame a start and an end logit; the predicted span maximises
//!   start(i) + end(j) over i ≤ j among real frames.
//!
//! The loss is the mean of the start and end cross-entropies over the video's frames; the metrics are
//! the field's: R@1 at temporal IoU ≥ 0.3 / 0.5 / 0.7 and the mean IoU, ×100.

use pelt_core::Dropout;
use pelt_data::vl::temporal_iou;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn, nn::Module, Kind, Tensor};

/// The grounding model's own sizes (it trains in every run, as a task head does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TvgConfig {
    /// Width h of the temporal encoder.
    pub hidden: i64,
    /// Its layers.
    pub layers: usize,
    /// Its attention heads (h must divide by them).
    pub heads: i64,
    /// The most frames a video may have (the learned positions).
    pub max_frames: i64,
    /// Dropout in the temporal encoder while training.
    pub dropout: f64,
}

impl Default for TvgConfig {
    fn default() -> Self {
        TvgConfig { hidden: 256, layers: 2, heads: 4, max_frames: 64, dropout: 0.1 }
    }
}

/// One pre-norm transformer layer over the frames.
#[derive(Debug)]
struct TemporalLayer {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    out: nn::Linear,
    norm2: nn::LayerNorm,
    ff1: nn::Linear,
    ff2: nn::Linear,
}

/// The grounding model: frame projection, positions, query modulation, temporal encoder, span head.
#[derive(Debug)]
pub struct GroundingHead {
    config: TvgConfig,
    frame_in: nn::Linear,
    positions: Tensor,
    film: nn::Linear,
    layers: Vec<TemporalLayer>,
    norm: nn::LayerNorm,
    span: nn::Linear,
}

impl GroundingHead {
    /// Builds the model under `p` for frame features of width `frame_dim` and query vectors of width
    /// `query_dim` (nn.Linear's init; positions N(0, 0.02); the modulation starts at the identity).
    pub fn new(p: nn::Path, frame_dim: i64, query_dim: i64, config: TvgConfig) -> GroundingHead {
        let h = config.hidden;
        let ln = |name: &str| nn::layer_norm(&p / name, vec![h], Default::default());
        let layers = (0..config.layers)
            .map(|i| {
                let l = &p / "layer" / i;
                TemporalLayer {
                    norm1: nn::layer_norm(&l / "norm1", vec![h], Default::default()),
                    qkv: nn::linear(&l / "qkv", h, 3 * h, Default::default()),
                    out: nn::linear(&l / "out", h, h, Default::default()),
                    norm2: nn::layer_norm(&l / "norm2", vec![h], Default::default()),
                    ff1: nn::linear(&l / "ff1", h, 4 * h, Default::default()),
                    ff2: nn::linear(&l / "ff2", 4 * h, h, Default::default()),
                }
            })
            .collect();
        let zeros = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        GroundingHead {
            frame_in: nn::linear(&p / "frame_in", frame_dim, h, Default::default()),
            positions: p.var("positions", &[config.max_frames, h], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
            film: nn::linear(&p / "film", query_dim, 2 * h, zeros),
            layers,
            norm: ln("norm"),
            span: nn::linear(&p / "span", h, 2, Default::default()),
            config,
        }
    }

    /// Start and end logits (batch, T) of frames (batch, T, frame_dim) whose real ones `mask` (batch, T)
    /// marks, for query vectors (batch, query_dim); padding frames get −∞.
    pub fn forward(&self, frames: &Tensor, mask: &Tensor, query: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (b, t, _) = frames.size3().expect("frames are (batch, T, d)");
        let c = &self.config;
        let (h, heads, p) = (c.hidden, c.heads, if train { c.dropout } else { 0.0 });
        let mut x = self.frame_in.forward(frames) + self.positions.narrow(0, 0, t).unsqueeze(0);
        let film = self.film.forward(query).unsqueeze(1);
        let (gamma, beta) = (film.narrow(2, 0, h), film.narrow(2, h, h));
        x = &x * (gamma + 1.0) + beta;
        let keep = mask.to_kind(Kind::Bool);
        let attn_mask = keep.view([b, 1, 1, t]);
        for l in &self.layers {
            let y = l.norm1.forward(&x);
            let qkv = l.qkv.forward(&y).view([b, t, 3, heads, h / heads]).permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&attn_mask), 0.0, false, None, false);
            let ctx = ctx.transpose(1, 2).reshape([b, t, h]);
            x = &x + l.out.forward(&ctx).drop_out(p, train);
            let y = l.norm2.forward(&x);
            x = &x + l.ff2.forward(&l.ff1.forward(&y).gelu("none").drop_out(p, train)).drop_out(p, train);
        }
        let logits = self.span.forward(&self.norm.forward(&x));
        let masked = |z: Tensor| z.masked_fill(&keep.logical_not(), f64::NEG_INFINITY);
        (masked(logits.select(2, 0)), masked(logits.select(2, 1)))
    }
}

/// The mean of the start and end cross-entropies of gold spans: `start` and `last` (batch,) int64, the
/// first and the last frame of each span (inclusive).
pub fn span_loss(start_logits: &Tensor, end_logits: &Tensor, start: &Tensor, last: &Tensor) -> Tensor {
    let ce = |logits: &Tensor, target: &Tensor| logits.log_softmax(-1, Kind::Float).nll_loss(target);
    (ce(start_logits, start) + ce(end_logits, last)) / 2.0
}

/// Each video's best span (first, last frame, inclusive): the i ≤ j maximising start(i) + end(j) among
/// frames with finite logits.
pub fn best_spans(start_logits: &Tensor, end_logits: &Tensor) -> Vec<(usize, usize)> {
    let rows = |t: &Tensor| Vec::<Vec<f32>>::try_from(t.to_kind(Kind::Float).contiguous()).unwrap_or_default();
    let (starts, ends) = (rows(start_logits), rows(end_logits));
    starts
        .iter()
        .zip(&ends)
        .map(|(s, e)| {
            let mut best = (f32::NEG_INFINITY, (0, 0));
            // The best start so far for each end j: one pass.
            let mut top = (f32::NEG_INFINITY, 0);
            for j in 0..s.len().min(e.len()) {
                if s[j] > top.0 {
                    top = (s[j], j);
                }
                let score = top.0 + e[j];
                if score > best.0 {
                    best = (score, (top.1, j));
                }
            }
            best.1
        })
        .collect()
}

/// The field's metrics (×100) of predicted spans against gold ones, each [start, end) in frames:
/// `r1_iou0.3`, `r1_iou0.5`, `r1_iou0.7` (the share of videos whose top span reaches that IoU) and
/// `miou`.
pub fn grounding_metrics(predicted: &[(f64, f64)], gold: &[(f64, f64)]) -> BTreeMap<String, f64> {
    let ious: Vec<f64> = predicted.iter().zip(gold).map(|(p, g)| temporal_iou(*p, *g)).collect();
    let n = ious.len().max(1) as f64;
    let share = |at: f64| 100.0 * ious.iter().filter(|&&i| i >= at - 1e-12).count() as f64 / n;
    BTreeMap::from([
        ("r1_iou0.3".to_owned(), share(0.3)),
        ("r1_iou0.5".to_owned(), share(0.5)),
        ("r1_iou0.7".to_owned(), share(0.7)),
        ("miou".to_owned(), 100.0 * ious.iter().sum::<f64>() / n),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_best_span_maximises_start_plus_end_with_start_first() {
        let s = Tensor::from_slice(&[0.0f32, 5.0, 0.0, 0.0, f32::NEG_INFINITY]).view([1, 5]);
        let e = Tensor::from_slice(&[9.0f32, 0.0, 0.0, 3.0, f32::NEG_INFINITY]).view([1, 5]);
        // End 0 scores 9 but needs a start ≤ 0 (0 + 9 = 9); start 1 with end 3: 5 + 3 = 8.
        assert_eq!(best_spans(&s, &e), vec![(0, 0)]);
        let e = Tensor::from_slice(&[3.0f32, 0.0, 0.0, 4.0, f32::NEG_INFINITY]).view([1, 5]);
        assert_eq!(best_spans(&s, &e), vec![(1, 3)]);
        // Brute force agrees on random logits.
        tch::manual_seed(1);
        let (s, e) =
            (Tensor::randn([20, 9], (Kind::Float, Device::Cpu)), Tensor::randn([20, 9], (Kind::Float, Device::Cpu)));
        let rows = |t: &Tensor| Vec::<Vec<f32>>::try_from(t.contiguous()).unwrap();
        let (rs, re) = (rows(&s), rows(&e));
        for (k, got) in best_spans(&s, &e).into_iter().enumerate() {
            let mut best = (f32::NEG_INFINITY, (0, 0));
            for (i, si) in rs[k].iter().enumerate() {
                for (j, ej) in re[k].iter().enumerate().skip(i) {
                    if si + ej > best.0 {
                        best = (si + ej, (i, j));
                    }
                }
            }
            assert_eq!(got, best.1);
        }
    }

    #[test]
    fn metrics_count_recall_at_iou_thresholds_and_mean_iou() {
        let gold = [(2.0, 6.0), (0.0, 4.0), (5.0, 7.0), (1.0, 3.0)];
        // IoUs: 1.0, 2/4 = 0.5, 1/3, 0.
        let predicted = [(2.0, 6.0), (0.0, 2.0), (6.0, 8.0), (5.0, 8.0)];
        let m = grounding_metrics(&predicted, &gold);
        assert_eq!((m["r1_iou0.3"], m["r1_iou0.5"], m["r1_iou0.7"]), (75.0, 50.0, 25.0));
        assert!((m["miou"] - 100.0 * (1.0 + 0.5 + 1.0 / 3.0) / 4.0).abs() < 1e-9);
    }

    #[test]
    fn the_model_learns_to_ground_a_query_in_a_toy_video() {
        // Frames are one-hot "classes"; the query names a class; the gold span is where it is shown.
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let config = TvgConfig { hidden: 32, layers: 1, heads: 2, max_frames: 8, dropout: 0.0 };
        let model = GroundingHead::new(vs.root(), 4, 4, config);
        let mut opt = nn::OptimizerConfig::build(nn::Adam::default(), &vs, 1e-2).unwrap();
        let classes = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 2, 3, 3, 2, 2, 0, 0, 3, 3, 1, 1]).view([2, 8]);
        let frames = classes.one_hot(4).to_kind(Kind::Float);
        let mask = Tensor::ones([2, 8], (Kind::Bool, Device::Cpu));
        let query = Tensor::from_slice(&[1i64, 3]).one_hot(4).to_kind(Kind::Float);
        let (start, last) = (Tensor::from_slice(&[2i64, 6]), Tensor::from_slice(&[4i64, 7]));
        let loss_at = |train| {
            let (s, e) = model.forward(&frames, &mask, &query, train);
            span_loss(&s, &e, &start, &last)
        };
        let before = tch::no_grad(|| loss_at(false)).double_value(&[]);
        for _ in 0..150 {
            opt.backward_step(&loss_at(true));
        }
        let after = tch::no_grad(|| loss_at(false)).double_value(&[]);
        assert!(after < 0.1 * before, "{before} -> {after}");
        let (s, e) = tch::no_grad(|| model.forward(&frames, &mask, &query, false));
        assert_eq!(best_spans(&s, &e), vec![(2, 4), (6, 7)]);
        // Padding frames are never predicted.
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 0, 0]).view([1, 8]);
        let (s, _) = tch::no_grad(|| model.forward(&frames.narrow(0, 1, 1), &mask, &query.narrow(0, 1, 1), false));
        assert!(s.narrow(1, 6, 2).isinf().all().int64_value(&[]) != 0);
    }
}
