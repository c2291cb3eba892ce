//! The unified view: sites, forms, scales, and the one composition function.

use crate::method::Attachment;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// A place in the backbone where a method modifies the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// The input embeddings (prompt tuning, VPT, ATTEMPT prepend positions here).
    Embeddings,
    /// The attention query projection.
    Query,
    /// The attention key projection.
    Key,
    /// The attention value projection.
    Value,
    /// Keys and values as extra attention positions (prefix tuning, deep prompts).
    AttentionKv,
    /// The attention output projection, and the attention sublayer's output.
    AttentionOutput,
    /// The query projection of an encoder-decoder's cross-attention (decoder layers only).
    CrossQuery,
    /// The cross-attention's key projection (over the encoder's output).
    CrossKey,
    /// The cross-attention's value projection (over the encoder's output).
    CrossValue,
    /// The cross-attention's output projection, and the cross-attention sublayer's output.
    CrossOutput,
    /// The FFN's first projection (its input side).
    FfnIntermediate,
    /// The FFN's second projection, and the FFN sublayer's output.
    FfnOutput,
    /// LayerNorm gains and biases.
    LayerNorm,
    /// The activation function inside the FFN.
    Activation,
    /// Bias terms of every linear and LayerNorm.
    Bias,
    /// The task head on top of the backbone.
    Head,
    /// Every backbone weight (full fine-tuning).
    All,
}

impl Site {
    /// The name used in configs and in `pelt list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Embeddings => "embeddings",
            Site::Query => "query",
            Site::Key => "key",
            Site::Value => "value",
            Site::AttentionKv => "attention_kv",
            Site::AttentionOutput => "attention_output",
            Site::CrossQuery => "cross_query",
            Site::CrossKey => "cross_key",
            Site::CrossValue => "cross_value",
            Site::CrossOutput => "cross_output",
            Site::FfnIntermediate => "ffn_intermediate",
            Site::FfnOutput => "ffn_output",
            Site::LayerNorm => "layer_norm",
            Site::Activation => "activation",
            Site::Bias => "bias",
            Site::Head => "head",
            Site::All => "all",
        }
    }

    /// Sites that are linear projections, where a reparameterised ΔW can attach (the cross-attention's
    /// exist only in an encoder-decoder's decoder layers).
    pub const PROJECTIONS: [Site; 10] = [
        Site::Query,
        Site::Key,
        Site::Value,
        Site::AttentionOutput,
        Site::FfnIntermediate,
        Site::FfnOutput,
        Site::CrossQuery,
        Site::CrossKey,
        Site::CrossValue,
        Site::CrossOutput,
    ];

    /// Whether the site belongs to an encoder-decoder's cross-attention, which only decoder layers have.
    pub fn is_cross(self) -> bool {
        matches!(self, Site::CrossQuery | Site::CrossKey | Site::CrossValue | Site::CrossOutput)
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Δ relates to the sublayer it modifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Δ is computed from the sublayer's output h (Houlsby, Pfeiffer).
    Sequential,
    /// Δ is computed from the sublayer's input x (parallel adapter, LoRA seen as a module).
    Parallel,
    /// Δ is extra positions concatenated to keys/values or inputs (prefix, prompt).
    Concatenated,
    /// Δ is a weight update ΔW that can be merged into the frozen weight (LoRA, KronA).
    Reparameterized,
    /// No new module: a chosen subset of the backbone's own parameters trains (BitFit, full FT).
    Selective,
}

impl Form {
    /// The name shown in `pelt list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Sequential => "sequential",
            Form::Parallel => "parallel",
            Form::Concatenated => "concatenated",
            Form::Reparameterized => "reparameterized",
            Form::Selective => "selective",
        }
    }
}

/// The kind of scale a method applies to its Δ, as listed in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKind {
    /// A constant s (1 for most adapters, α/r for LoRA).
    Fixed,
    /// A learned scalar.
    Learned,
    /// A gate computed from the hidden state (UniPELT).
    Gated,
    /// Not applicable (selective methods).
    None,
}

impl ScaleKind {
    /// The name shown in `pelt list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleKind::Fixed => "fixed",
            ScaleKind::Learned => "learned",
            ScaleKind::Gated => "gated",
            ScaleKind::None => "-",
        }
    }
}

/// The runtime value of a scale.
#[derive(Debug)]
pub enum Scale {
    /// A constant.
    Fixed(f64),
    /// A learned scalar or a gate, broadcastable against Δ.
    Tensor(Tensor),
}

/// h ← h + s·Δ: the single composition used by every backbone for every method.
pub fn compose(h: &Tensor, delta: &Tensor, scale: &Scale) -> Tensor {
    match scale {
        // Skipping the multiply for s = 1 saves one elementwise pass per site in the hot loop.
        Scale::Fixed(s) if *s == 1.0 => h + delta,
        Scale::Fixed(s) => h + delta * *s,
        Scale::Tensor(s) => h + delta * s,
    }
}

/// A sublayer's output `h` after the method's sublayer hooks: [`Attachment::sublayer`]'s Δ (from the
/// sublayer input `x` and `h`), then [`Attachment::residual_sublayer`]'s (from `sum` of the result: the
/// residual sum as the backbone defines it). Every backbone calls this at every sublayer site, so the
/// hooks' order is written once.
pub fn hooked_sublayer(
    m: &dyn Attachment,
    hook: (usize, Site),
    x: &Tensor,
    h: Tensor,
    sum: &dyn Fn(&Tensor) -> Tensor,
    train: bool,
) -> Tensor {
    let (layer, site) = hook;
    let h = match m.sublayer(layer, site, x, &h, train) {
        Some(delta) => compose(&h, &delta.value, &delta.scale),
        None => h,
    };
    match m.residual_sublayer(layer, site, &|| sum(&h), train) {
        Some(delta) => compose(&h, &delta.value, &delta.scale),
        None => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_applies_scale() {
        let h = Tensor::from_slice(&[1.0f32, 2.0]);
        let d = Tensor::from_slice(&[0.5f32, -1.0]);
        let out = compose(&h, &d, &Scale::Fixed(4.0));
        assert_eq!(Vec::<f32>::try_from(&out).unwrap(), vec![3.0, -2.0]);
        let out = compose(&h, &d, &Scale::Fixed(1.0));
        assert_eq!(Vec::<f32>::try_from(&out).unwrap(), vec![1.5, 1.0]);
        let gate = Tensor::from_slice(&[0.0f32, 0.5]);
        let out = compose(&h, &d, &Scale::Tensor(gate));
        assert_eq!(Vec::<f32>::try_from(&out).unwrap(), vec![1.0, 1.5]);
    }

    #[test]
    fn site_names_round_trip_through_serde() {
        for s in Site::PROJECTIONS {
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            let back: Site = serde_json::from_str(&j).unwrap();
            assert_eq!(back, s);
        }
    }
}
