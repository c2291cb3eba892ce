//! Polytropon (Ponti et al., "Combining Modular Skills in Multitask Learning", 2022), Poly-S / multi-head
//! routing (Caccia et al., "Multi-Head Adapter Routing for Cross-Task Generalization", NeurIPS 2023) and
//! Poly-μ (the same paper's averaging baseline, MHR-μ).
//!
//! Every adapted projection holds an inventory of `skills` LoRA modules (A_k, B_k) and, per task, a row
//! of routing logits. A task's adapter is a weighted average of the inventory in parameter space,
//! A = Σ_k w_k A_k and B = Σ_k w_k B_k, with w = σ(logits) normalised to sum to one; during training
//! the logits are perturbed with logistic noise at temperature τ (a relaxed Bernoulli, as the
//! reference code), so the router learns a soft subset of skills. Poly-S splits A along its input and
//! B along its output into `splits` blocks, each with its own routing, so tasks can combine skills more
//! finely at the same parameter count. Δ = (α/r)·x A B, per example, so one batch may mix tasks.
//!
//! Two-stage protocol: on the source tasks, the inventory and every source's routing train together;
//! for the target, Polytropon and Poly-S add a fresh routing row (logits near zero) and train it with
//! the inventory (the source rows freeze, the target never reads them), while Poly-μ averages the
//! inventory into one plain LoRA module, freezes the inventory and routing, and trains that module
//! alone. Built without sources, a method is its own single-task version: one routing row over the
//! inventory.

use pelt_core::{
    config::{check_dropout, check_positive},
    Attachment, Backbone, BackboneDims, ConfigError, Delta, Dropout, Identity, Method, MethodConfig, PeltError, Result,
    Site, SiteTable,
};
use pelt_lowrank::config::{check_divides, check_targets, projection_shape};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// How a Poly method adapts to a new target task after source training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolyAdaptation {
    /// A new routing row for the target, trained with the inventory (Polytropon, Poly-S).
    Route,
    /// The inventory averaged into one LoRA module, trained alone (Poly-μ).
    Average,
}

/// Polytropon / Poly-S / Poly-μ settings. Defaults: the PEFT implementation's rank 8 and 4 skills, on
/// query and value; α 16 (the LoRA default here, so learning rates carry over — the reference code
/// scales by 1/r, which under Adam only rescales B's step); Gumbel temperature 1 as the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolyConfig {
    /// Rank r of every inventory module.
    pub r: i64,
    /// Scaling numerator α; Δ is scaled by α/r.
    pub alpha: f64,
    /// Modules in each projection's inventory.
    pub skills: i64,
    /// Routing blocks per projection (1: Polytropon; more: Poly-S); must divide d_in and d_out.
    pub splits: i64,
    /// Temperature τ of the relaxed-Bernoulli routing during training.
    pub temperature: f64,
    /// Dropout on the branch's input during training.
    pub dropout: f64,
    /// Projections to adapt.
    pub targets: Vec<Site>,
    /// How the target task is adapted after source training.
    pub adaptation: PolyAdaptation,
    /// Peak learning rate of the routing logits, trained without weight decay: the reference code
    /// (mttl) gives them a parameter group of their own at 0.1; at the inventory's rate they barely move
    /// from uniform routing in a short run.
    pub router_lr: f64,
}

impl Default for PolyConfig {
    fn default() -> Self {
        PolyConfig {
            r: 8,
            alpha: 16.0,
            skills: 4,
            splits: 1,
            temperature: 1.0,
            dropout: 0.1,
            targets: vec![Site::Query, Site::Value],
            adaptation: PolyAdaptation::Route,
            router_lr: 0.1,
        }
    }
}

impl PolyConfig {
    /// Poly-S: multi-head routing over 4 blocks.
    pub fn poly_s() -> PolyConfig {
        PolyConfig { splits: 4, ..PolyConfig::default() }
    }

    /// Poly-μ: the inventory averaged before adapting to the target.
    pub fn poly_mu() -> PolyConfig {
        PolyConfig { adaptation: PolyAdaptation::Average, ..PolyConfig::default() }
    }
}

impl MethodConfig for PolyConfig {
    fn validate(&self, dims: &BackboneDims) -> std::result::Result<(), ConfigError> {
        if self.r < 1 || self.r > dims.hidden {
            return Err(ConfigError::new("r", format!("must be in 1..={}, got {}", dims.hidden, self.r)));
        }
        check_positive("alpha", self.alpha)?;
        if !(1..=64).contains(&self.skills) {
            return Err(ConfigError::new("skills", format!("must be in 1..=64, got {}", self.skills)));
        }
        check_positive("temperature", self.temperature)?;
        if !(self.router_lr > 0.0 && self.router_lr < 1.0) {
            return Err(ConfigError::new("router_lr", format!("must be in (0, 1), got {}", self.router_lr)));
        }
        check_dropout("dropout", self.dropout)?;
        check_targets("targets", &self.targets, dims)?;
        let mut sizes = Vec::new();
        for &t in &self.targets {
            let (i, o) = projection_shape(t, dims);
            sizes.push(("d_in of a target", i));
            sizes.push(("d_out of a target", o));
        }
        check_divides("splits", self.splits, &sizes)
    }
}

/// One projection's inventory and routing.
#[derive(Debug)]
struct Slot {
    /// (splits, skills, d_in / splits, r).
    a: Tensor,
    /// (splits, skills, r, d_out / splits).
    b: Tensor,
    /// Routing logits (splits, skills), one per task.
    routers: Vec<Tensor>,
    /// Poly-μ's averaged module after `begin_target`: A (d_in, r), B (r, d_out).
    averaged: Option<(Tensor, Tensor)>,
}

/// Where the method is in the two-stage protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Training on `n` source tasks; routing by per-example task ids.
    Sources(usize),
    /// One task (the target): the last routing row, or the averaged module.
    Target,
}

/// Polytropon, Poly-S or Poly-μ on the configured projections of every layer.
#[derive(Debug)]
pub struct Poly {
    name: &'static str,
    vs: nn::VarStore,
    config: PolyConfig,
    dims: BackboneDims,
    /// One slot per (layer, target).
    slots: SiteTable<Slot>,
    stage: Stage,
    task_ids: RefCell<Option<Tensor>>,
}

impl Poly {
    /// Builds the inventory (A as LoRA's: Kaiming-uniform, B = 0, so Δ = 0 at init) and one routing row
    /// per projection, logits uniform in ±1e-3 as the reference code.
    pub fn new(config: PolyConfig, dims: &BackboneDims, device: Device) -> Result<Poly> {
        Poly::named("polytropon", config, dims, device)
    }

    /// The same, registered under another name (`poly_s`, `poly_mu`).
    pub fn named(name: &'static str, config: PolyConfig, dims: &BackboneDims, device: Device) -> Result<Poly> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (q, s, r) = (config.splits, config.skills, config.r);
        let slots = SiteTable::new(dims, &config.targets, |l, site| {
            let p = &root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            let bound = 1.0 / (d_in as f64).sqrt();
            Slot {
                a: p.var("poly_a", &[q, s, d_in / q, r], nn::Init::Uniform { lo: -bound, up: bound }),
                b: p.var("poly_b", &[q, s, r, d_out / q], nn::Init::Const(0.0)),
                routers: vec![p.var("router_0", &[q, s], nn::Init::Uniform { lo: -1e-3, up: 1e-3 })],
                averaged: None,
            }
        });
        Ok(Poly { name, vs, config, dims: dims.clone(), slots, stage: Stage::Target, task_ids: RefCell::new(None) })
    }

    fn scale(&self) -> f64 {
        self.config.alpha / self.config.r as f64
    }

    /// Routing weights (rows, splits, skills), each row summing to one over skills.
    fn weights(&self, slot: &Slot, batch: i64, train: bool) -> Tensor {
        let logits = match (self.stage, self.task_ids.borrow().as_ref()) {
            (Stage::Sources(_), Some(ids)) => Tensor::stack(&slot.routers, 0).index_select(0, ids),
            (Stage::Sources(_), None) => {
                // Without ids every example is taken as source 0, so the suite's single-batch checks
                // still run; the runner always sets them.
                slot.routers[0].unsqueeze(0).expand([batch, -1, -1], false)
            }
            (Stage::Target, _) => slot.routers[slot.routers.len() - 1].unsqueeze(0),
        };
        let logits = if train {
            // Relaxed Bernoulli: logistic noise log u − log(1 − u), then σ(·/τ).
            let u = logits.rand_like().clamp(1e-6, 1.0 - 1e-6);
            (&logits + u.log() - (-&u + 1.0).log()) / self.config.temperature
        } else {
            logits
        };
        let w = logits.sigmoid();
        &w / (w.sum_dim_intlist([-1].as_slice(), true, Kind::Float) + 1e-12)
    }

    /// The mixed (A, B) for each row of `w`: (rows, d_in, r) and (rows, r, d_out).
    fn mixed(slot: &Slot, w: &Tensor) -> (Tensor, Tensor) {
        let rows = w.size()[0];
        let r = slot.a.size()[3];
        let a = Tensor::einsum("bqs,qsdr->bqdr", &[w, &slot.a], None::<&[i64]>).reshape([rows, -1, r]);
        let b = Tensor::einsum("bqs,qsrd->bqrd", &[w, &slot.b], None::<&[i64]>).transpose(1, 2).reshape([rows, r, -1]);
        (a, b)
    }

    /// Σ over targets of f(d_in, d_out) times the layers that have the target.
    fn per_layer_params(&self, f: impl Fn(i64, i64) -> i64) -> i64 {
        self.config
            .targets
            .iter()
            .map(|&t| {
                let (i, o) = projection_shape(t, &self.dims);
                self.dims.layers_with(t) * f(i, o)
            })
            .sum()
    }
}

impl Attachment for Poly {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let slot = self.slots.get(layer, site)?;
        let x = x.drop_out(self.config.dropout, train);
        let value = match &slot.averaged {
            Some((a, b)) => x.matmul(a).matmul(b),
            None => {
                let (a, b) = Poly::mixed(slot, &self.weights(slot, x.size()[0], train));
                // (batch, len, d_in) × (rows, d_in, r): rows is the batch, or 1 for a single task.
                x.matmul(&a).matmul(&b)
            }
        };
        Some(Delta::fixed(value, self.scale()))
    }
}

impl Method for Poly {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, _dims: &BackboneDims) -> i64 {
        let (q, s, r) = (self.config.splits, self.config.skills, self.config.r);
        let routed = self.slots.first().is_some_and(|slot| slot.averaged.is_none());
        if !routed {
            return self.per_layer_params(|i, o| r * (i + o));
        }
        let rows = match self.stage {
            Stage::Sources(n) => n as i64,
            Stage::Target => 1,
        };
        self.per_layer_params(|i, o| s * r * (i + o) + rows * q * s)
    }
    fn routes_tasks(&self) -> bool {
        true
    }
    fn begin_sources(&mut self, n: usize) -> Result<()> {
        if self.stage != Stage::Target || self.slots.first().is_none_or(|s| s.routers.len() != 1) || n == 0 {
            return Err(PeltError::Protocol(format!("{}: begin_sources needs a fresh method and n ≥ 1", self.name)));
        }
        let root = self.vs.root();
        for (l, site, slot) in self.slots.iter_mut() {
            let p = &root / "layer" / l / site.as_str();
            let (q, s) = (self.config.splits, self.config.skills);
            for t in 1..n {
                slot.routers.push(p.var(&format!("router_{t}"), &[q, s], nn::Init::Uniform { lo: -1e-3, up: 1e-3 }));
            }
        }
        self.stage = Stage::Sources(n);
        Ok(())
    }
    fn begin_target(&mut self) -> Result<()> {
        let Stage::Sources(n) = self.stage else {
            return Err(PeltError::Protocol(format!("{}: begin_target before begin_sources", self.name)));
        };
        let root = self.vs.root();
        let (q, s, r) = (self.config.splits, self.config.skills, self.config.r);
        for (l, site, slot) in self.slots.iter_mut() {
            let p = &root / "layer" / l / site.as_str();
            for router in &slot.routers {
                let _ = router.shallow_clone().set_requires_grad(false);
            }
            match self.config.adaptation {
                PolyAdaptation::Route => {
                    slot.routers.push(p.var(&format!("router_{n}"), &[q, s], nn::Init::Uniform { lo: -1e-3, up: 1e-3 }))
                }
                PolyAdaptation::Average => {
                    let (d_in, d_out) = projection_shape(site, &self.dims);
                    let a = p.var("avg_a", &[d_in, r], nn::Init::Const(0.0));
                    let b = p.var("avg_b", &[r, d_out], nn::Init::Const(0.0));
                    tch::no_grad(|| {
                        // Uniform weights over skills, per block: the plain mean of the modules.
                        let w = Tensor::full([1, q, s], 1.0 / s as f64, (Kind::Float, slot.a.device()));
                        let (ma, mb) = Poly::mixed(slot, &w);
                        a.shallow_clone().copy_(&ma.squeeze_dim(0));
                        b.shallow_clone().copy_(&mb.squeeze_dim(0));
                    });
                    let _ = slot.a.shallow_clone().set_requires_grad(false);
                    let _ = slot.b.shallow_clone().set_requires_grad(false);
                    slot.averaged = Some((a, b));
                }
            }
        }
        self.stage = Stage::Target;
        Ok(())
    }
    fn set_task_ids(&self, ids: Option<&Tensor>) {
        *self.task_ids.borrow_mut() = ids.map(Tensor::shallow_clone);
    }
    fn own_rate(&self, name: &str) -> Option<pelt_core::OwnRate> {
        name.contains(".router_").then_some(pelt_core::OwnRate { lr: self.config.router_lr, weight_decay: Some(0.0) })
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        if self.stage != Stage::Target {
            return Ok(false);
        }
        self.slots.merge(backbone, |_, _, slot| {
            let (a, b) = match &slot.averaged {
                Some((a, b)) => (a.shallow_clone(), b.shallow_clone()),
                None => {
                    let (a, b) = Poly::mixed(slot, &self.weights(slot, 1, false));
                    (a.squeeze_dim(0), b.squeeze_dim(0))
                }
            };
            a.matmul(&b).tr() * self.scale()
        })?;
        Ok(true)
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        if self.stage != Stage::Target || self.slots.first().is_none_or(|s| s.averaged.is_some()) {
            return Vec::new();
        }
        // How concentrated the target's routing is: mean over projections and blocks of the largest
        // skill weight (1/skills = uniform, 1 = one skill).
        let mut total = 0.0;
        let mut n = 0.0;
        tch::no_grad(|| {
            for (_, _, slot) in self.slots.iter() {
                let w = self.weights(slot, 1, false);
                total += w.amax([-1].as_slice(), false).mean(Kind::Float).double_value(&[]);
                n += 1.0;
            }
        });
        vec![("routing_max_weight".into(), total / n)]
    }
}
