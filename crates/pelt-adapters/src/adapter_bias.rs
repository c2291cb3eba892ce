//! AdapterBias (Fu et al. 2022, "AdapterBias: Parameter-efficient Token-dependent Representation Shift
//! for Adapters in NLP Tasks"): a token-dependent shift Δh_i = α_i·v of the sublayer's output, with one
//! vector v ∈ R^d per layer and a scalar α_i = w·a_i + c per token.
//!
//! As in the reference code (Allen0307/AdapterBias), α reads the input of the sublayer's output
//! projection — the FFN's intermediate activation (d_ff wide) — so the shift attaches at the output
//! projection; v starts at zero (identity at init) and α's weight at N(0, 0.02). The embeddings'
//! LayerNorm and every non-attention LayerNorm train too, as there.

use crate::config::AdapterBiasConfig;
use pelt_core::{is_layer_norm, Attachment, BackboneDims, Delta, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// One shift: v (d), α's weight (1 × d_in) and bias (1).
#[derive(Debug)]
struct Shift {
    v: Tensor,
    alpha_w: Tensor,
    alpha_b: Tensor,
}

/// AdapterBias in every layer.
#[derive(Debug)]
pub struct AdapterBias {
    vs: nn::VarStore,
    config: AdapterBiasConfig,
    /// One shift per (layer, configured site).
    shifts: SiteTable<Shift>,
}

/// Width of the input of the output projection of a sublayer.
fn alpha_input(site: Site, dims: &BackboneDims) -> i64 {
    if site == Site::FfnOutput {
        dims.intermediate
    } else {
        dims.hidden
    }
}

impl AdapterBias {
    /// Builds the shifts for a backbone of `dims`.
    pub fn new(config: AdapterBiasConfig, dims: &BackboneDims, device: Device) -> Result<AdapterBias> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let shifts = SiteTable::new(dims, &config.sites, |l, s| {
            let p = &root / "layer" / l / s.as_str();
            Shift {
                v: p.var("vector", &[dims.hidden], nn::Init::Const(0.0)),
                alpha_w: p.var("alpha_weight", &[1, alpha_input(s, dims)], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
                alpha_b: p.var("alpha_bias", &[1], nn::Init::Const(0.0)),
            }
        });
        Ok(AdapterBias { vs, config, shifts })
    }
}

impl Attachment for AdapterBias {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Delta> {
        let shift = self.shifts.get(layer, site)?;
        // (batch, len, 1) · (d) → (batch, len, d).
        Some(Delta::fixed(x.linear(&shift.alpha_w, Some(&shift.alpha_b)) * &shift.v, 1.0))
    }
}

impl Method for AdapterBias {
    fn name(&self) -> &str {
        "adapter_bias"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        // The attention's LayerNorm stays frozen: BERT's `attention.output.LayerNorm`, a pre-norm ViT's
        // `layernorm_before`; the FFN's and the one outside the layers (embeddings or final) train. T5's
        // FFN norm is its block's last sublayer's: `layer.1` in the encoder, `layer.2` in the decoder
        // (after the cross-attention's).
        self.config.train_layer_norm && is_layer_norm(name) && {
            if name.contains(".block.") {
                (name.starts_with("encoder.") && name.contains(".layer.1.layer_norm"))
                    || (name.starts_with("decoder.") && name.contains(".layer.2.layer_norm"))
            } else {
                !name.contains("attention") && !name.contains("layernorm_before")
            }
        }
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        let shifts: i64 =
            self.config.sites.iter().map(|&s| d.layers_with(s) * (alpha_input(s, d) + 1 + d.hidden)).sum();
        // One LayerNorm per layer and one outside them (BERT, ViT: gain and bias); T5: each stack's FFN
        // norms and final norm, gains only.
        let norms = match (self.config.train_layer_norm, d.is_t5()) {
            (false, _) => 0,
            (true, false) => 2 * d.hidden + d.layers * 2 * d.hidden,
            (true, true) => 2 * d.hidden + d.layers * d.hidden,
        };
        shifts + norms
    }
}
