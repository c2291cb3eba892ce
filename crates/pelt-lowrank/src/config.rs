//! Low-rank method configurations.

use pelt_core::{
    config::{check_dropout, check_positive, check_sublayers, check_width},
    BackboneDims, ConfigError, MethodConfig, Site, Width,
};
use serde::{Deserialize, Serialize};

/// How LoRA's pair starts (`init:`); B A = 0 at init except under PiSSA, which moves the principal part
/// of W into the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraInit {
    /// A Kaiming-uniform (a = √5, as nn.Linear and loralib), B = 0: the paper's reference code.
    #[default]
    Kaiming,
    /// A ~ N(0, 1/r²) (std 1/r), B = 0: peft's `init_lora_weights="gaussian"`.
    Gaussian,
    /// PiSSA (Meng et al. 2024): W = U S Vᵀ; with the top r triplets, A = √(S_r/s) V_rᵀ, B = U_r √(S_r/s),
    /// and the frozen weight becomes the residual W − s·B A (s the LoRA scale), so the output is
    /// unchanged at init while the pair trains the principal directions.
    Pissa,
}

fn is_kaiming(init: &LoraInit) -> bool {
    *init == LoraInit::Kaiming
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// LoRA settings; defaults follow the paper's GLUE setup for base models (r 8, α 16, query and value)
/// with the dropout of the reference implementation (loralib) at 0.1. `init` and `rslora` stay out of
/// the serialised config at their defaults, so LoRA runs recorded before they existed keep their hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank r.
    pub r: i64,
    /// Scaling numerator α; the update is scaled by α/r (α/√r under `rslora`).
    pub alpha: f64,
    /// Dropout on the LoRA branch's input during training.
    pub dropout: f64,
    /// Projections to adapt: any of query, key, value, attention_output, ffn_intermediate, ffn_output.
    pub targets: Vec<Site>,
    /// How the pair starts: `kaiming` (default), `gaussian` or `pissa`.
    #[serde(skip_serializing_if = "is_kaiming")]
    pub init: LoraInit,
    /// Rank-stabilised scaling α/√r (Kalajdzievski 2023), which keeps the update's size from shrinking
    /// as r grows.
    #[serde(skip_serializing_if = "is_false")]
    pub rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: vec![Site::Query, Site::Value],
            init: LoraInit::Kaiming,
            rslora: false,
        }
    }
}

impl LoraConfig {
    /// The scale of B A x: α/r, or α/√r under `rslora`.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }
}

impl MethodConfig for LoraConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.r < 1 || self.r > dims.hidden {
            return Err(ConfigError::new("r", format!("must be in 1..={}, got {}", dims.hidden, self.r)));
        }
        check_positive("alpha", self.alpha)?;
        check_dropout("dropout", self.dropout)?;
        check_targets("targets", &self.targets, dims)
    }
}

/// (d_in, d_out) of a projection site.
pub fn projection_shape(site: Site, dims: &BackboneDims) -> (i64, i64) {
    let (d, a) = (dims.hidden, dims.attention_width());
    match site {
        Site::FfnIntermediate => (d, dims.intermediate),
        Site::FfnOutput => (dims.intermediate, d),
        Site::AttentionOutput | Site::CrossOutput => (a, d),
        _ => (d, a),
    }
}

/// Checks a list of LoRA-style targets: non-empty, projections only, no repeats, cross-attention ones
/// only on an encoder-decoder.
pub fn check_targets(field: &str, targets: &[Site], dims: &BackboneDims) -> Result<(), ConfigError> {
    if targets.is_empty() {
        return Err(ConfigError::new(field, "must name at least one projection"));
    }
    if let Some(s) = targets.iter().find(|s| !Site::PROJECTIONS.contains(s)) {
        return Err(ConfigError::new(
            field,
            format!(
                "`{s}` is not a projection (query, key, value, attention_output, ffn_intermediate, ffn_output, \
                 cross_query, cross_key, cross_value, cross_output)"
            ),
        ));
    }
    pelt_core::config::check_unique_sites(field, targets, "projection")?;
    pelt_core::config::check_present(field, targets, dims)
}

/// Checks that `n` is at least 1 and divides every named size.
pub fn check_divides(field: &str, n: i64, sizes: &[(&str, i64)]) -> Result<(), ConfigError> {
    if n < 1 {
        return Err(ConfigError::new(field, format!("must be at least 1, got {n}")));
    }
    if let Some((what, size)) = sizes.iter().find(|(_, size)| size % n != 0) {
        return Err(ConfigError::new(field, format!("must divide {what} ({size}), got {n}")));
    }
    Ok(())
}

/// KronA settings (Edalati et al. 2022): ΔW = s·(A ⊗ B) with A of shape `a_shape` and B of shape
/// (d_out / a_rows, d_in / a_cols); A starts Kaiming-uniform and B at zero, so ΔW = 0 at init.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KronaConfig {
    /// (rows, cols) of the Kronecker factor A; they must divide each target's d_out and d_in.
    pub a_shape: [i64; 2],
    /// The fixed scale s.
    pub scale: f64,
    /// Dropout on the branch's input during training.
    pub dropout: f64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for KronaConfig {
    fn default() -> Self {
        KronaConfig { a_shape: [32, 32], scale: 1.0, dropout: 0.0, targets: vec![Site::Query, Site::Value] }
    }
}

impl MethodConfig for KronaConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_targets("targets", &self.targets, dims)?;
        for &t in &self.targets {
            let (d_in, d_out) = projection_shape(t, dims);
            check_divides("a_shape", self.a_shape[0], &[(&format!("{t} d_out"), d_out)])?;
            check_divides("a_shape", self.a_shape[1], &[(&format!("{t} d_in"), d_in)])?;
        }
        check_positive("scale", self.scale)?;
        check_dropout("dropout", self.dropout)
    }
}

/// Which KronA^B_res pelt builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KronaResForm {
    /// Edalati et al.'s "learnable residual connection": Δ = s·(A ⊗ B)x + s_res·x beside the FFN, s
    /// fixed, s_res a learned per-layer scalar on an extra identity path.
    Residual,
    /// pelt's form before the fidelity review: Δ = s_l·(A ⊗ B)x with s_l learned (starting at `scale`)
    /// and no identity path. Kept so that its records still name their method; a config without `form`
    /// (every record made before the field existed) reads as this.
    ScaledBranch,
}

impl KronaResForm {
    fn scaled_branch() -> KronaResForm {
        KronaResForm::ScaledBranch
    }
    fn is_scaled_branch(&self) -> bool {
        *self == KronaResForm::ScaledBranch
    }
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// KronA^B_res settings (Edalati et al. 2022): a Kronecker adapter (A ⊗ B, d × d) beside each layer's
/// FFN, reading the FFN's input. The default is the `residual` form, Δ = s·(A ⊗ B)x + s_res·x: the
/// paper's text was not at hand, and this form follows the secondary accounts of its Figure 2 (a
/// fixed scale on the Kronecker branch plus a learned scalar on an identity path); s_res starts at 1
/// as in the one public reimplementation found, A is Kaiming-uniform and B zero (pelt's KronA init).
/// See `docs/protocols.md` ("KronA^B_res") for the sources and what is uncertain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KronaResConfig {
    /// (rows, cols) of A; both must divide d.
    pub a_shape: [i64; 2],
    /// The Kronecker branch's scale: fixed in the `residual` form, the learned scale's start in
    /// `scaled_branch`.
    pub scale: f64,
    /// The form (see [`KronaResForm`]); left out of the serialised config for `scaled_branch`, which a
    /// config without it means, so that older records keep their hashes and their meaning.
    #[serde(default = "KronaResForm::scaled_branch", skip_serializing_if = "KronaResForm::is_scaled_branch")]
    pub form: KronaResForm,
    /// Start of the learned residual scale s_res (`residual` form only); left out at 1.
    #[serde(skip_serializing_if = "is_one")]
    pub residual_init: f64,
}

impl Default for KronaResConfig {
    fn default() -> Self {
        KronaResConfig { a_shape: [32, 32], scale: 1.0, form: KronaResForm::Residual, residual_init: 1.0 }
    }
}

impl MethodConfig for KronaResConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_divides("a_shape", self.a_shape[0], &[("d", dims.hidden)])?;
        check_divides("a_shape", self.a_shape[1], &[("d", dims.hidden)])?;
        check_positive("scale", self.scale)?;
        if !self.residual_init.is_finite() {
            return Err(ConfigError::new("residual_init", format!("must be finite, got {}", self.residual_init)));
        }
        if self.form == KronaResForm::ScaledBranch && self.residual_init != 1.0 {
            return Err(ConfigError::new("residual_init", "only the `residual` form has an identity path"));
        }
        Ok(())
    }
}

/// Compacter settings (Karimi Mahabadi et al. 2021), defaults from the reference configs: n = 4
/// Kronecker terms, rank-1 fast weights, the rule matrices shared by every PHM layer and drawn from
/// N(0, 1e-4), GELU (tanh form), LayerNorms trained. `Default` is Compacter (after attention and the
/// FFN); [`CompacterConfig::plus_plus`] is Compacter++ (after the FFN only). The bottleneck is the
/// reference's reduction factor 32 (`d/32`: 24 at d = 768, 12 at MiniLM's d = 384), so the budget
/// scales with the backbone as the paper's does; an integer fixes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompacterConfig {
    /// Bottleneck size k, an integer or `d/r` for reduction factor r; n must divide it.
    pub bottleneck: Width,
    /// Number of Kronecker terms n (the hypercomplex division); must divide d and k.
    pub n: i64,
    /// Rank of each fast matrix B_i = s_i t_iᵀ.
    pub rank: i64,
    /// Std of the shared rule matrices' normal init.
    pub rule_init_std: f64,
    /// Sublayers that get an adapter.
    pub sites: Vec<Site>,
    /// Also train the layers' LayerNorms.
    pub train_layer_norm: bool,
}

impl Default for CompacterConfig {
    fn default() -> Self {
        CompacterConfig {
            bottleneck: Width::Reduction(32),
            n: 4,
            rank: 1,
            rule_init_std: 1e-4,
            sites: vec![Site::AttentionOutput, Site::FfnOutput],
            train_layer_norm: true,
        }
    }
}

impl CompacterConfig {
    /// Compacter++: one adapter after the FFN.
    pub fn plus_plus() -> CompacterConfig {
        CompacterConfig { sites: vec![Site::FfnOutput], ..CompacterConfig::default() }
    }
}

impl MethodConfig for CompacterConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        let k = check_width("bottleneck", self.bottleneck, dims)?;
        check_divides("n", self.n, &[("d", dims.hidden), ("the bottleneck", k)])?;
        let widest = (dims.hidden / self.n).min(k / self.n);
        if self.rank < 1 || self.rank > widest {
            return Err(ConfigError::new("rank", format!("must be in 1..={widest}, got {}", self.rank)));
        }
        check_positive("rule_init_std", self.rule_init_std)?;
        check_sublayers("sites", &self.sites, dims)
    }
}

/// KAdaptation settings (He et al. 2023, "Parameter-efficient Model Adaptation for Vision
/// Transformers"), defaults from the reference code (PEViT): n = 32 Kronecker terms, rank-1 shared
/// A_i and rank-1 per-layer B_i, scale 160, on query and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KAdaptationConfig {
    /// Number of Kronecker terms n; must divide each target's d_in and d_out.
    pub n: i64,
    /// Rank of each per-layer factor B_i = u_i v_iᵀ.
    pub rank: i64,
    /// The fixed scale of ΔW.
    pub scale: f64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for KAdaptationConfig {
    fn default() -> Self {
        KAdaptationConfig { n: 32, rank: 1, scale: 160.0, targets: vec![Site::Query, Site::Value] }
    }
}

impl MethodConfig for KAdaptationConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_targets("targets", &self.targets, dims)?;
        for &t in &self.targets {
            let (d_in, d_out) = projection_shape(t, dims);
            check_divides("n", self.n, &[(&format!("{t} d_in"), d_in), (&format!("{t} d_out"), d_out)])?;
            let widest = (d_in / self.n).min(d_out / self.n);
            if self.rank < 1 || self.rank > widest {
                return Err(ConfigError::new("rank", format!("must be in 1..={widest}, got {}", self.rank)));
            }
        }
        check_positive("scale", self.scale)
    }
}

/// VeRA settings (Kopiczko et al., ICLR 2024), defaults as peft's `VeraConfig`: r = 256 for the shared
/// frozen pair, λ_d starting at 0.1 (`d_initial`), no dropout, on query and value; the shared pair is
/// drawn from `projection_seed` (peft: `projection_prng_key = 0`), apart from the run's seed, so every
/// run and every client of a federated run holds the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VeraConfig {
    /// Rank r of the shared random pair.
    pub r: i64,
    /// Initial value of every entry of λ_d.
    pub d_initial: f64,
    /// Dropout on the branch's input during training.
    pub dropout: f64,
    /// Seed of the shared frozen pair A, B.
    pub projection_seed: u64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for VeraConfig {
    fn default() -> Self {
        VeraConfig { r: 256, d_initial: 0.1, dropout: 0.0, projection_seed: 0, targets: vec![Site::Query, Site::Value] }
    }
}

impl MethodConfig for VeraConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        // VeRA's r is not bounded by the model's width: the shared pair is random, and the paper runs
        // r = 256 to 1024 on d = 768 and 1024.
        if self.r < 1 {
            return Err(ConfigError::new("r", format!("must be at least 1, got {}", self.r)));
        }
        check_positive("d_initial", self.d_initial)?;
        check_dropout("dropout", self.dropout)?;
        check_targets("targets", &self.targets, dims)
    }
}

/// LoHa settings (Hyeon-Woo et al., ICLR 2022, FedPara; as LyCORIS and peft's `LoHaConfig`): ΔW =
/// (W₁ₐW₁ᵦ) ⊙ (W₂ₐW₂ᵦ)·α/r, defaults r = 8, α = 8 on query and value. peft's rank and module dropout
/// (0 by default) are not implemented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LohaConfig {
    /// Rank r of each of the two factor pairs.
    pub r: i64,
    /// Scaling numerator α; ΔW is scaled by α/r.
    pub alpha: f64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for LohaConfig {
    fn default() -> Self {
        LohaConfig { r: 8, alpha: 8.0, targets: vec![Site::Query, Site::Value] }
    }
}

impl MethodConfig for LohaConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.r < 1 || self.r > dims.hidden {
            return Err(ConfigError::new("r", format!("must be in 1..={}, got {}", dims.hidden, self.r)));
        }
        check_positive("alpha", self.alpha)?;
        check_targets("targets", &self.targets, dims)
    }
}

/// LoKr settings (Yeh et al., ICLR 2024, "Navigating Text-To-Image Customization"; as LyCORIS and peft's
/// `LoKrConfig`): ΔW = (W₁ ⊗ W₂)·α/r with d_out = l·k and d_in = m·n factored by peft's
/// `factorization` (`decompose_factor`, −1: the most square split); W₁ (l × m) full unless
/// `decompose_both`, W₂ (k × n) as W₂ₐW₂ᵦ of rank r when r < max(k, n)/2, else full. Defaults r = 8,
/// α = 8 on query and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokrConfig {
    /// Rank of the decomposed factors.
    pub r: i64,
    /// Scaling numerator α; ΔW is scaled by α/r (also when no factor is decomposed, as peft does).
    pub alpha: f64,
    /// The factor peft's `factorization` aims at (−1: the most square split).
    pub decompose_factor: i64,
    /// Also decompose the small factor W₁ (when r < max(l, m)/2).
    pub decompose_both: bool,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for LokrConfig {
    fn default() -> Self {
        LokrConfig {
            r: 8,
            alpha: 8.0,
            decompose_factor: -1,
            decompose_both: false,
            targets: vec![Site::Query, Site::Value],
        }
    }
}

impl MethodConfig for LokrConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.r < 1 || self.r > dims.hidden {
            return Err(ConfigError::new("r", format!("must be in 1..={}, got {}", dims.hidden, self.r)));
        }
        if self.decompose_factor == 0 || self.decompose_factor < -1 {
            return Err(ConfigError::new(
                "decompose_factor",
                format!("must be -1 (most square) or a positive factor, got {}", self.decompose_factor),
            ));
        }
        check_positive("alpha", self.alpha)?;
        check_targets("targets", &self.targets, dims)
    }
}

/// (IA)³ settings (Liu et al., NeurIPS 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and
/// Cheaper than In-Context Learning"): learned vectors, starting at 1, that rescale keys, values and the
/// FFN's intermediate activations — the paper's sites. `ffn_intermediate` names the activations (after
/// the nonlinearity, the input of the FFN's output projection); any other projection has its output
/// rescaled, bias included. peft's BERT default (key, value and both `output.dense` inputs) differs from
/// the paper: pelt follows the paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ia3Config {
    /// Where to rescale.
    pub sites: Vec<Site>,
}

impl Default for Ia3Config {
    fn default() -> Self {
        Ia3Config { sites: vec![Site::Key, Site::Value, Site::FfnIntermediate] }
    }
}

impl MethodConfig for Ia3Config {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_targets("sites", &self.sites, dims)
    }
}

/// How OFT turns its skew-symmetric Q into a rotation (`cayley:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cayley {
    /// The Cayley transform R = (I + Q)(I − Q)⁻¹, exactly orthogonal (the paper).
    #[default]
    Exact,
    /// Its Neumann series I + 2Q + 2Q² + … + Q^(n−1) to `neumann_terms` terms (peft's default, n = 5):
    /// cheaper, orthogonal only approximately.
    Neumann,
}

/// OFT settings (Qiu et al., NeurIPS 2023, "Controlling Text-to-Image Diffusion by Orthogonal
/// Finetuning"): the projection's input rotated by a block-diagonal orthogonal R, W' = W Rᵀ, each b × b
/// block the Cayley transform of a skew-symmetric Q that starts at 0 (R = I). Defaults as peft: blocks
/// of 32 (moved to the nearest divisor of d_in, as peft does), query and value; COFT's projection,
/// block sharing and peft's multiplicative dropout (a no-op in peft 0.21) are not implemented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OftConfig {
    /// Block size b (d_in / b blocks).
    pub block_size: i64,
    /// `exact` (the paper) or `neumann` (peft's default).
    pub cayley: Cayley,
    /// Terms of the Neumann series.
    pub neumann_terms: usize,
    /// Projections to rotate.
    pub targets: Vec<Site>,
}

impl Default for OftConfig {
    fn default() -> Self {
        OftConfig { block_size: 32, cayley: Cayley::Exact, neumann_terms: 5, targets: vec![Site::Query, Site::Value] }
    }
}

impl OftConfig {
    /// The block size used for an input of `d_in`: `block_size` if it divides d_in, else the nearest
    /// divisor (the lower one on a tie), d_in itself when `block_size` ≥ d_in — peft's
    /// `adjust_oft_parameters`.
    pub fn block_for(&self, d_in: i64) -> i64 {
        let b = self.block_size;
        if b >= d_in {
            return d_in;
        }
        if d_in % b == 0 {
            return b;
        }
        let lower = (1..b).rev().find(|&c| d_in % c == 0).unwrap_or(1);
        let higher = (b + 1..=d_in).find(|&c| d_in % c == 0).unwrap_or(d_in);
        if b - lower <= higher - b {
            lower
        } else {
            higher
        }
    }
}

impl MethodConfig for OftConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.block_size < 2 {
            return Err(ConfigError::new("block_size", format!("must be at least 2, got {}", self.block_size)));
        }
        if self.cayley == Cayley::Neumann && self.neumann_terms < 2 {
            return Err(ConfigError::new("neumann_terms", format!("must be at least 2, got {}", self.neumann_terms)));
        }
        check_targets("targets", &self.targets, dims)
    }
}

/// AdaLoRA settings (Zhang et al., ICLR 2023, "Adaptive Budget Allocation for Parameter-Efficient
/// Fine-Tuning"), as peft's `AdaLoraConfig` where it has a default: each target starts with `init_r`
/// triplets (12) and the budget falls to `target_r` per target (8) on average, α = 8 (ΔW scaled by
/// α/init_r), no dropout, EMA factors β₁ = β₂ = 0.85, orthogonality weight 0.5, reallocation every step.
/// peft's warm-up and final phases are counted in steps and default to 0; pelt gives them as fractions of
/// the run (`tinit`: 0.1, `tfinal`: 0.2), as the paper sets them per task, so that the schedule fits runs
/// of any length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaloraConfig {
    /// Triplets per target at the start.
    pub init_r: i64,
    /// Average triplets per target at the end (the final budget is target_r × targets).
    pub target_r: i64,
    /// Scaling numerator α; ΔW is scaled by α/init_r.
    pub alpha: f64,
    /// Dropout on the branch's input during training.
    pub dropout: f64,
    /// Fraction of the run before the budget starts to fall.
    pub tinit: f64,
    /// Fraction of the run at the final budget, its mask fixed.
    pub tfinal: f64,
    /// Steps between reallocations while the budget falls.
    pub delta_t: usize,
    /// EMA factor of the sensitivity.
    pub beta1: f64,
    /// EMA factor of the uncertainty.
    pub beta2: f64,
    /// Weight of the penalty ‖PᵀP − I‖_F + ‖QQᵀ − I‖_F (averaged over the matrices).
    pub orth_reg_weight: f64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
}

impl Default for AdaloraConfig {
    fn default() -> Self {
        AdaloraConfig {
            init_r: 12,
            target_r: 8,
            alpha: 8.0,
            dropout: 0.0,
            tinit: 0.1,
            tfinal: 0.2,
            delta_t: 1,
            beta1: 0.85,
            beta2: 0.85,
            orth_reg_weight: 0.5,
            targets: vec![Site::Query, Site::Value],
        }
    }
}

impl MethodConfig for AdaloraConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.init_r < 1 || self.init_r > dims.hidden {
            return Err(ConfigError::new("init_r", format!("must be in 1..={}, got {}", dims.hidden, self.init_r)));
        }
        if self.target_r < 1 || self.target_r > self.init_r {
            return Err(ConfigError::new(
                "target_r",
                format!("must be in 1..={} (init_r), got {}", self.init_r, self.target_r),
            ));
        }
        check_positive("alpha", self.alpha)?;
        check_dropout("dropout", self.dropout)?;
        for (field, v) in [("tinit", self.tinit), ("tfinal", self.tfinal)] {
            if !(0.0..1.0).contains(&v) {
                return Err(ConfigError::new(field, format!("a fraction of the run in [0, 1), got {v}")));
            }
        }
        if self.tinit + self.tfinal >= 1.0 {
            return Err(ConfigError::new("tfinal", "tinit + tfinal must leave part of the run for the budget to fall"));
        }
        if self.delta_t == 0 {
            return Err(ConfigError::new("delta_t", "must be at least 1"));
        }
        for (field, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ConfigError::new(field, format!("must be in (0, 1), got {v}")));
            }
        }
        if !(self.orth_reg_weight >= 0.0 && self.orth_reg_weight.is_finite()) {
            return Err(ConfigError::new(
                "orth_reg_weight",
                format!("must be non-negative, got {}", self.orth_reg_weight),
            ));
        }
        check_targets("targets", &self.targets, dims)
    }
}
