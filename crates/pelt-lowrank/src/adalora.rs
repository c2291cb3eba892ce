//! AdaLoRA (Zhang et al., ICLR 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning"):
//! each target's update in SVD form, ΔW = P Λ Q·α/r₀ (P d_out × r₀, Λ = diag(λ) with λ starting at 0,
//! Q r₀ × d_in), trained with the penalty ‖PᵀP − I‖_F + ‖QQᵀ − I‖_F that keeps P and Q near orthogonal,
//! and a rank budget that falls from r₀ per target to `target_r` on average over a cubic schedule: after
//! each step every triplet (Pᵢ, λᵢ, Qᵢ) is scored by its smoothed sensitivity |w·∂L/∂w| times its
//! uncertainty, and the lowest-scoring λᵢ across all targets are masked to zero until the budget holds.
//! The schedule is part of the method: it needs the run's length ([`Method::begin_training`]).
//!
//! As peft's `RankAllocator`: a masked λᵢ is set to zero after every optimizer step (peft does so at each
//! reallocation, which its default Δt = 1 makes every step), so the weights themselves — what selection,
//! saving and merging see — always hold the current rank pattern.

use crate::config::{projection_shape, AdaloraConfig};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable};
use std::cell::{Cell, RefCell};
use tch::{nn, Device, Kind, Tensor};

/// One target's triplets: P (d_out × r₀), λ (r₀), Q (r₀ × d_in), and the mask of kept triplets.
#[derive(Debug)]
struct Triplets {
    p: Tensor,
    lambda: Tensor,
    q: Tensor,
    mask: RefCell<Tensor>,
}

/// Smoothed sensitivity and uncertainty of one variable's entries.
#[derive(Debug)]
struct Score {
    sensitivity: Tensor,
    uncertainty: Tensor,
}

impl Score {
    fn new(like: &Tensor) -> Score {
        Score { sensitivity: like.zeros_like(), uncertainty: like.zeros_like() }
    }

    /// One step: I = |w·∂L/∂w|, Ī ← β₁Ī + (1 − β₁)I, Ū ← β₂Ū + (1 − β₂)|I − Ī|.
    fn update(&mut self, w: &Tensor, beta1: f64, beta2: f64) {
        let g = w.grad();
        if !g.defined() {
            return;
        }
        let now = (w * g).abs();
        self.sensitivity = &self.sensitivity * beta1 + &now * (1.0 - beta1);
        self.uncertainty = &self.uncertainty * beta2 + (&now - &self.sensitivity).abs() * (1.0 - beta2);
    }

    /// Ī · Ū per entry.
    fn value(&self) -> Tensor {
        &self.sensitivity * &self.uncertainty
    }
}

/// The allocator's state.
#[derive(Debug)]
struct Allocator {
    /// Per target, in table order: the scores of P, λ and Q.
    scores: Vec<[Score; 3]>,
}

/// AdaLoRA on the configured projections of every layer.
#[derive(Debug)]
pub struct Adalora {
    vs: nn::VarStore,
    config: AdaloraConfig,
    triplets: SiteTable<Triplets>,
    allocator: RefCell<Allocator>,
    /// Optimizer steps taken, and the run's total (0: no schedule, the budget stays at its start).
    step: Cell<usize>,
    total: Cell<usize>,
}

impl Adalora {
    /// Builds the triplets with peft's init: P and Q ~ N(0, 0.02²), λ = 0.
    pub fn new(config: AdaloraConfig, dims: &BackboneDims, device: Device) -> Result<Adalora> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let r = config.init_r;
        let normal = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let triplets = SiteTable::new(dims, &config.targets, |l, site| {
            let path = &root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            Triplets {
                p: path.var("lora_b", &[d_out, r], normal),
                lambda: path.var("lora_e", &[r], nn::Init::Const(0.0)),
                q: path.var("lora_a", &[r, d_in], normal),
                mask: RefCell::new(Tensor::ones([r], (Kind::Float, device))),
            }
        });
        let scores =
            triplets.iter().map(|(_, _, t)| [Score::new(&t.p), Score::new(&t.lambda), Score::new(&t.q)]).collect();
        Ok(Adalora {
            vs,
            config,
            triplets,
            allocator: RefCell::new(Allocator { scores }),
            step: Cell::new(0),
            total: Cell::new(0),
        })
    }

    fn scale(&self) -> f64 {
        self.config.alpha / self.config.init_r as f64
    }

    /// The budget (triplets kept in all) at `step`, and whether to reallocate then: peft's
    /// `budget_schedule` with the warm-up and final phases as fractions of the run.
    fn budget(&self, step: usize) -> (i64, bool) {
        let total = self.total.get() as f64;
        let (tinit, tfinal) = ((self.config.tinit * total).round(), (self.config.tfinal * total).round());
        let targets = self.triplets.iter().count() as i64;
        let (start, end) = (targets * self.config.init_r, targets * self.config.target_r);
        let t = step as f64;
        if t <= tinit {
            (start, false)
        } else if t > total - tfinal {
            (end, true)
        } else {
            let left = 1.0 - (t - tinit) / (total - tfinal - tinit);
            (((start - end) as f64 * left.powi(3)) as i64 + end, step.is_multiple_of(self.config.delta_t))
        }
    }

    /// Masks the lowest-scoring triplets until `budget` remain, zeroing their λ.
    fn mask_to(&self, budget: i64) {
        let allocator = self.allocator.borrow();
        // A triplet's score: its λ's, plus the means of its Q row's and its P column's.
        let per_target: Vec<Tensor> = allocator
            .scores
            .iter()
            .map(|[p, lambda, q]| {
                lambda.value()
                    + q.value().mean_dim(&[1i64][..], false, Kind::Float)
                    + p.value().mean_dim(&[0i64][..], false, Kind::Float)
            })
            .collect();
        let all = Tensor::cat(&per_target, 0);
        let drop = all.size()[0] - budget;
        // The lowest `drop` scores go, across all targets: one threshold for every target.
        let threshold = (drop > 0).then(|| all.kthvalue(drop, 0, false).0);
        tch::no_grad(|| {
            for ((_, _, t), score) in self.triplets.iter().zip(&per_target) {
                *t.mask.borrow_mut() = match &threshold {
                    Some(th) => score.gt_tensor(th).to_kind(Kind::Float),
                    None => score.ones_like(),
                };
            }
        });
    }

    /// Triplets kept now, over all targets.
    pub fn kept(&self) -> i64 {
        self.triplets.iter().map(|(_, _, t)| t.mask.borrow().sum(Kind::Float).double_value(&[]) as i64).sum()
    }
}

impl Attachment for Adalora {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let t = self.triplets.get(layer, site)?;
        let x = x.drop_out(self.config.dropout, train);
        // (x Qᵀ ⊙ λ) Pᵀ, the scale folded into λ (r entries); masked λ are zero in the weights.
        Some(Delta::fixed((x.matmul(&t.q.tr()) * (&t.lambda * self.scale())).matmul(&t.p.tr()), 1.0))
    }
}

impl Method for Adalora {
    fn name(&self) -> &str {
        "adalora"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let r = self.config.init_r;
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (i, o) = projection_shape(s, dims);
                dims.layers_with(s) * r * (i + o + 1)
            })
            .sum()
    }
    fn begin_training(&self, total_steps: usize) {
        self.total.set(total_steps);
        self.step.set(0);
    }
    fn regularizer(&self) -> Option<Tensor> {
        if self.config.orth_reg_weight == 0.0 {
            return None;
        }
        let mut terms = Vec::new();
        for (_, _, t) in self.triplets.iter() {
            let r = self.config.init_r;
            let eye = Tensor::eye(r, (t.q.kind(), t.q.device()));
            terms.push((t.q.matmul(&t.q.tr()) - &eye).frobenius_norm(&[0i64, 1][..], false));
            terms.push((t.p.tr().matmul(&t.p) - &eye).frobenius_norm(&[0i64, 1][..], false));
        }
        let n = terms.len() as f64;
        Some(Tensor::stack(&terms, 0).sum(Kind::Float) * (self.config.orth_reg_weight / n))
    }
    fn after_step(&self) {
        let step = self.step.get();
        self.step.set(step + 1);
        let total = self.total.get();
        if total == 0 {
            return;
        }
        let tfinal = (self.config.tfinal * total as f64).round() as usize;
        if step < total.saturating_sub(tfinal) {
            tch::no_grad(|| {
                let mut allocator = self.allocator.borrow_mut();
                let (b1, b2) = (self.config.beta1, self.config.beta2);
                for ((_, _, t), [p, lambda, q]) in self.triplets.iter().zip(allocator.scores.iter_mut()) {
                    p.update(&t.p, b1, b2);
                    lambda.update(&t.lambda, b1, b2);
                    q.update(&t.q, b1, b2);
                }
            });
        }
        let (budget, reallocate) = self.budget(step);
        if reallocate {
            self.mask_to(budget);
        }
        // The step just moved every λ; the masked ones go back to zero.
        tch::no_grad(|| {
            for (_, _, t) in self.triplets.iter() {
                let _ = t.lambda.shallow_clone().g_mul_(&t.mask.borrow());
            }
        });
    }
    fn federates(&self) -> std::result::Result<(), String> {
        Err("its rank allocation scores triplets by each client's own gradients and masks them in state that \
             FedAvg does not aggregate"
            .into())
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        let targets = self.triplets.iter().count().max(1) as f64;
        vec![("adalora_mean_rank".to_owned(), self.kept() as f64 / targets)]
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        self.triplets.merge(backbone, |_, _, t| (&t.p * (&t.lambda * self.scale()).unsqueeze(0)).matmul(&t.q))?;
        Ok(true)
    }
}
