//! RAFT: rational activations with tuned coefficients (Fang et al., "Transformers with Learnable
//! Activation Functions", 2022; the rational unit of Molina et al., "Padé Activation Units", 2020).
//!
//! Each layer's FFN activation becomes R(x) = P(x) / Q(x) with P of degree 5 and the "safe"
//! denominator Q(x) = 1 + |b₁x + … + b₄x⁴|, which never falls below 1, so R has no poles. The ten
//! coefficients of every layer start at a least-squares fit of GELU and are the only method
//! parameters that train.

use crate::config::RaftConfig;
use pelt_core::{Attachment, BackboneDims, Identity, Method, Result};
use tch::{nn, Device, Kind, Tensor};

/// Numerator degree.
pub const P_DEGREE: usize = 5;
/// Denominator degree.
pub const Q_DEGREE: usize = 4;

/// Fits P/Q to GELU on `[-bound, bound]` by Sanathanan–Koerner iteration: the linearised problem
/// P(x) − f(x)·(Q(x) − 1) = f(x) is solved by least squares, reweighted by 1/|Q| of the previous
/// solution so that the residual approaches the true error P/Q − f. Returns (numerator a₀..a₅,
/// denominator b₁..b₄).
pub fn fit_gelu(bound: f64, points: i64) -> (Vec<f64>, Vec<f64>) {
    let _guard = tch::no_grad_guard();
    let opts = (Kind::Double, Device::Cpu);
    let x = Tensor::linspace(-bound, bound, points, opts);
    // libtorch's own erf-form GELU, so the fit targets exactly what the backbone computes.
    let f = x.gelu("none");
    let pow = |k: usize| x.pow_tensor_scalar(k as f64);
    let num: Vec<Tensor> = (0..=P_DEGREE).map(pow).collect();
    let den: Vec<Tensor> = (1..=Q_DEGREE).map(|k| -(&f * pow(k))).collect();
    let design = Tensor::stack(&num.iter().chain(den.iter()).collect::<Vec<_>>(), 1);
    let mut weight = x.ones_like();
    let mut solution = Tensor::zeros([(P_DEGREE + 1 + Q_DEGREE) as i64], opts);
    for _ in 0..8 {
        let w = weight.unsqueeze(1);
        let (sol, _, _, _) = (&design * &w).linalg_lstsq(&(&f * &weight).unsqueeze(1), None, "gelsd");
        solution = sol.squeeze_dim(1);
        let q: Tensor = 1
            + (1..=Q_DEGREE)
                .fold(x.zeros_like(), |acc: Tensor, k| acc + pow(k) * solution.double_value(&[(P_DEGREE + k) as i64]));
        weight = q.abs().reciprocal();
    }
    let all: Vec<f64> = Vec::try_from(&solution).expect("f64 coefficients");
    (all[..=P_DEGREE].to_vec(), all[P_DEGREE + 1..].to_vec())
}

/// Evaluates P(x)/Q(x) with the safe denominator; `a` holds a₀..a₅ and `b` holds b₁..b₄ as 1-D tensors.
pub fn rational(x: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    // Horner's scheme: one fused multiply-add per degree keeps the saved activations few.
    let mut p = a.get(P_DEGREE as i64).expand_as(x);
    for k in (0..P_DEGREE).rev() {
        p = a.get(k as i64).addcmul(&p, x);
    }
    let mut q = b.get(Q_DEGREE as i64 - 1).expand_as(x);
    for k in (0..Q_DEGREE - 1).rev() {
        q = b.get(k as i64).addcmul(&q, x);
    }
    // q now holds b₁ + b₂x + b₃x² + b₄x³; one more factor of x gives Σ b_k x^k.
    p / ((q * x).abs() + 1.0)
}

/// Rational activations in every layer's FFN.
///
/// The trained variables are not the coefficients themselves but steps from the GELU fit measured in
/// units of the fit interval's edge c: a_k = a_k⁰ + θ_k / c^k (b_k likewise). Adam moves every variable
/// by about the learning rate per step whatever its scale, and the fit's coefficients span four orders
/// of magnitude (a₁ = 0.5, a₅ ≈ 2.6e-4): trained raw, a₅ changed by many times its own value in a few
/// steps and x⁵ at |x| = 5 is 3125, which wrecked the activation (SST-2 K = 100 at chance at lr 2e-3
/// and at 1e-4). In these units one step changes each term a_k x^k by about the learning rate at |x| = c.
#[derive(Debug)]
pub struct Raft {
    vs: nn::VarStore,
    /// Per layer: the trained steps (θ numerator, θ denominator).
    steps: Vec<(Tensor, Tensor)>,
    /// The GELU fit (numerator, denominator), shared by every layer.
    fit: (Tensor, Tensor),
    /// 1 / c^k for the numerator's k = 0..5 and the denominator's k = 1..4.
    units: (Tensor, Tensor),
}

impl Raft {
    /// Builds one rational unit per layer, each initialised to the GELU fit.
    pub fn new(config: RaftConfig, dims: &BackboneDims, device: Device) -> Result<Raft> {
        if !dims.activation.is_empty() && !dims.activation.starts_with("gelu") {
            // A 5/4 rational fits GELU to 4e-3; ReLU's kink would start it far from the backbone.
            return Err(pelt_core::PeltError::Config(pelt_core::ConfigError::new(
                "",
                format!("RAFT's rational units are fitted to GELU; this backbone's FFN uses `{}`", dims.activation),
            )));
        }
        let (a, b) = fit_gelu(config.fit_bound, 2001);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let steps = (0..dims.layers)
            .map(|l| {
                let p = &root / "layer" / l;
                (p.zeros("numerator", &[P_DEGREE as i64 + 1]), p.zeros("denominator", &[Q_DEGREE as i64]))
            })
            .collect();
        let float = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float).to_device(device);
        let unit = |k: usize| config.fit_bound.powi(-(k as i32));
        let units = (
            float(&(0..=P_DEGREE).map(unit).collect::<Vec<_>>()),
            float(&(1..=Q_DEGREE).map(unit).collect::<Vec<_>>()),
        );
        Ok(Raft { vs, steps, fit: (float(&a), float(&b)), units })
    }

    /// Layer `layer`'s current coefficients (numerator a₀..a₅, denominator b₁..b₄).
    pub fn coefficients(&self, layer: usize) -> (Tensor, Tensor) {
        let (ta, tb) = &self.steps[layer];
        (&self.fit.0 + ta * &self.units.0, &self.fit.1 + tb * &self.units.1)
    }
}

impl Attachment for Raft {
    fn activation(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Tensor> {
        let (a, b) = self.coefficients(layer);
        Some(rational(x, &a, &b))
    }
}

impl Method for Raft {
    fn name(&self) -> &str {
        "raft"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        // The fit is within 4e-3 of GELU on [-5, 5]; LayerNorm keeps the difference of that order.
        Identity::Approx(0.05)
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        dims.layers * (P_DEGREE + 1 + Q_DEGREE) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_fit_is_close_on_the_fit_interval() {
        let (a, b) = fit_gelu(5.0, 2001);
        let x = Tensor::linspace(-5.0, 5.0, 10001, (Kind::Double, Device::Cpu));
        let r = rational(&x, &Tensor::from_slice(&a), &Tensor::from_slice(&b));
        let err = (r - x.gelu("none")).abs().max().double_value(&[]);
        println!("max |R - GELU| on [-5, 5]: {err:.2e}");
        // Measured 3.8e-3 (degrees 5/4, 8 reweighting rounds); a broken fit is off by orders more.
        assert!(err < 5e-3, "max |R - GELU| on [-5, 5] = {err}");
        // The safe denominator never drops below 1, even far outside the interval.
        let wide = Tensor::linspace(-100.0, 100.0, 2001, (Kind::Double, Device::Cpu));
        let r = rational(&wide, &Tensor::from_slice(&a), &Tensor::from_slice(&b));
        assert!(r.isfinite().all().int64_value(&[]) == 1);
    }

    #[test]
    fn a_step_of_the_learning_rate_moves_the_activation_by_about_that_much() {
        // One Adam step moves every trained variable by about lr; here 1e-3 on all ten at once.
        let dims = BackboneDims { layers: 1, ..BackboneDims::default() };
        let raft = Raft::new(RaftConfig::default(), &dims, Device::Cpu).unwrap();
        let x = Tensor::linspace(-5.0, 5.0, 1001, (Kind::Float, Device::Cpu));
        let before = raft.activation(0, &x, false).unwrap();
        tch::no_grad(|| {
            for v in raft.vs.trainable_variables() {
                let _ = v.shallow_clone().fill_(1e-3);
            }
        });
        let moved = (raft.activation(0, &x, false).unwrap() - &before).abs().max().double_value(&[]);
        assert!(moved > 1e-4 && moved < 2e-2, "the activation moved by {moved}");
        // The same step on the raw coefficients (the parameterisation this replaces) moves it by far more.
        let (a, b) = (&raft.fit.0, &raft.fit.1);
        let raw = (rational(&x, &(a + 1e-3), &(b + 1e-3)) - rational(&x, a, b)).abs().max().double_value(&[]);
        assert!(raw > 10.0 * moved, "raw step {raw} against scaled step {moved}");
    }

    #[test]
    fn rational_matches_its_definition() {
        let a = Tensor::from_slice(&[0.5f64, 1.0, -2.0, 0.25, 0.0, 0.1]);
        let b = Tensor::from_slice(&[1.0f64, -0.5, 0.0, 0.2]);
        for x in [-3.0f64, -0.5, 0.0, 0.7, 2.0] {
            let p = 0.5 + x - 2.0 * x * x + 0.25 * x.powi(3) + 0.1 * x.powi(5);
            let q = 1.0 + (x - 0.5 * x * x + 0.2 * x.powi(4)).abs();
            let got = rational(&Tensor::from_slice(&[x]), &a, &b).double_value(&[0]);
            assert!((got - p / q).abs() < 1e-12, "x = {x}: {got} vs {}", p / q);
        }
    }
}
