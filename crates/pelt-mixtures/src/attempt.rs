//! ATTEMPT (Asai et al., "ATTEMPT: Parameter-Efficient Multi-task Tuning via Attentional Mixtures of
//! Soft Prompts", EMNLP 2022): soft prompts trained on source tasks are frozen, and a target task's
//! input gets its own mixture of them.
//!
//! For an input with embedded tokens X, the instance prompt is
//! P(X) = P_target + Σ_j a_j P_j over the sources and the target itself, with
//! a = softmax(⟨G(x̂), p̂_j⟩ / T), x̂ the max-pool of X over its real tokens, p̂_j the max-pool of prompt j
//! over its positions, and G(x̂) = LayerNorm(W_up SiLU(W_down x̂)) the small attention network of the
//! reference code; T = d·e as there. The attention weights' means over the last evaluation are reported
//! as diagnostics (`attn_source_j`, `attn_target`), so a table shows which sources a task drew on.
//!
//! Protocol: on the source tasks, each source prompt is trained on its own task's examples (plain
//! prompt tuning, routed by task id); for the target, the sources freeze and the target prompt and the
//! attention network train. Built without sources, the method is prompt tuning with the target prompt
//! alone (there is nothing to attend to).

use pelt_core::{Attachment, Backbone, BackboneDims, ConfigError, Identity, Method, MethodConfig, PeltError, Result};
use pelt_prompts::prompt::{draw, vocab_pool};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// ATTEMPT settings: prompt length P (20, as prompt tuning here; the paper's T5 runs used 100), the
/// attention network's bottleneck (100 as the reference code) and the softmax temperature (`None`:
/// d·e, the reference code's choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttemptConfig {
    /// Soft tokens per prompt.
    pub length: i64,
    /// Width of G's bottleneck.
    pub attention_dim: i64,
    /// Softmax temperature T; `None` is d·e.
    pub temperature: Option<f64>,
}

impl Default for AttemptConfig {
    fn default() -> Self {
        AttemptConfig { length: 20, attention_dim: 100, temperature: None }
    }
}

impl MethodConfig for AttemptConfig {
    fn validate(&self, dims: &BackboneDims) -> std::result::Result<(), ConfigError> {
        let most = dims.positions / 2;
        if self.length < 1 || self.length > most {
            return Err(ConfigError::new("length", format!("must be in 1..={most}, got {}", self.length)));
        }
        pelt_core::config::check_bottleneck("attention_dim", self.attention_dim, dims)?;
        if let Some(t) = self.temperature {
            pelt_core::config::check_positive("temperature", t)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Sources,
    Target,
}

/// Source prompts, a target prompt and the attention that mixes them per instance.
#[derive(Debug)]
pub struct Attempt {
    vs: nn::VarStore,
    config: AttemptConfig,
    hidden: i64,
    target: Tensor,
    sources: Vec<Tensor>,
    down: Tensor,
    up: Tensor,
    ln_gain: Tensor,
    ln_bias: Tensor,
    stage: Stage,
    /// Normalised vocabulary rows for initialising prompts created after `init_from`.
    pool: RefCell<Option<Tensor>>,
    task_ids: RefCell<Option<Tensor>>,
    /// Sum of attention weights over examples and how many, since the last training pass.
    attention: RefCell<(Option<Tensor>, i64)>,
}

impl Attempt {
    /// Builds the target prompt (uniform ±0.5 until [`Method::init_from`] draws vocabulary rows) and the
    /// attention network (frozen until there are sources to attend to).
    pub fn new(config: AttemptConfig, dims: &BackboneDims, device: Device) -> Result<Attempt> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (d, k) = (dims.hidden, config.attention_dim);
        let prompt_init = nn::Init::Uniform { lo: -0.5, up: 0.5 };
        let target = root.var("target", &[config.length, d], prompt_init);
        let attn = &root / "attention";
        // nn.Linear's default init for both projections, LayerNorm at (1, 0).
        let (bd, bu) = (1.0 / (d as f64).sqrt(), 1.0 / (k as f64).sqrt());
        let down = attn.var("down", &[d, k], nn::Init::Uniform { lo: -bd, up: bd });
        let up = attn.var("up", &[k, d], nn::Init::Uniform { lo: -bu, up: bu });
        let ln_gain = attn.var("ln_gain", &[d], nn::Init::Const(1.0));
        let ln_bias = attn.var("ln_bias", &[d], nn::Init::Const(0.0));
        for t in [&down, &up, &ln_gain, &ln_bias] {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
        Ok(Attempt {
            vs,
            config,
            hidden: d,
            target,
            sources: Vec::new(),
            down,
            up,
            ln_gain,
            ln_bias,
            stage: Stage::Target,
            pool: RefCell::new(None),
            task_ids: RefCell::new(None),
            attention: RefCell::new((None, 0)),
        })
    }

    fn attention_vars(&self) -> [&Tensor; 4] {
        [&self.down, &self.up, &self.ln_gain, &self.ln_bias]
    }

    /// A fresh prompt's init: vocabulary rows when a pool was taken from the backbone, else uniform.
    fn fresh(&self, n: i64) -> Option<Tensor> {
        self.pool.borrow().as_ref().map(|pool| draw(pool, n))
    }

    fn temperature(&self) -> f64 {
        self.config.temperature.unwrap_or(self.hidden as f64 * std::f64::consts::E)
    }

    /// Mixture weights (batch, sources + 1) for embedded inputs and their mask.
    fn weights(&self, embeddings: &Tensor, mask: &Tensor, all: &Tensor) -> Tensor {
        let real = mask.unsqueeze(-1).to_kind(Kind::Bool);
        let pooled = embeddings.masked_fill(&real.logical_not(), f64::NEG_INFINITY).amax([1].as_slice(), false);
        let h = pooled.matmul(&self.down).silu().matmul(&self.up).layer_norm(
            [self.hidden],
            Some(&self.ln_gain),
            Some(&self.ln_bias),
            1e-5,
            false,
        );
        let keys = all.amax([1].as_slice(), false);
        (h.matmul(&keys.tr()) / self.temperature()).softmax(-1, Kind::Float)
    }
}

impl Attachment for Attempt {
    fn prompt(&self, embeddings: &Tensor, mask: &Tensor, train: bool) -> Option<Tensor> {
        let b = embeddings.size()[0];
        match self.stage {
            Stage::Sources => {
                let all = Tensor::stack(&self.sources, 0);
                let ids = self.task_ids.borrow();
                Some(match ids.as_ref() {
                    Some(ids) => all.index_select(0, ids),
                    None => all.get(0).unsqueeze(0).expand([b, -1, -1], false),
                })
            }
            Stage::Target if self.sources.is_empty() => Some(self.target.unsqueeze(0).expand([b, -1, -1], false)),
            Stage::Target => {
                let mut prompts: Vec<&Tensor> = self.sources.iter().collect();
                prompts.push(&self.target);
                let all = Tensor::stack(&prompts, 0);
                let a = self.weights(embeddings, mask, &all);
                let mut seen = self.attention.borrow_mut();
                if train {
                    *seen = (None, 0);
                } else {
                    let sum = a.detach().sum_dim_intlist([0].as_slice(), false, Kind::Float);
                    seen.0 = Some(match seen.0.take() {
                        Some(s) => s + sum,
                        None => sum,
                    });
                    seen.1 += b;
                }
                Some(self.target.unsqueeze(0) + Tensor::einsum("bj,jpd->bpd", &[&a, &all], None::<&[i64]>))
            }
        }
    }
}

impl Method for Attempt {
    fn name(&self) -> &str {
        "attempt"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let (p, d, k) = (self.config.length, dims.hidden, self.config.attention_dim);
        match self.stage {
            Stage::Sources => self.sources.len() as i64 * p * d,
            Stage::Target if self.sources.is_empty() => p * d,
            Stage::Target => p * d + 2 * d * k + 2 * d,
        }
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        let pool = vocab_pool(backbone);
        *self.pool.borrow_mut() = pool;
        if let Some(init) = self.fresh(self.config.length) {
            tch::no_grad(|| self.target.shallow_clone().copy_(&init));
        }
    }
    fn routes_tasks(&self) -> bool {
        true
    }
    fn begin_sources(&mut self, n: usize) -> Result<()> {
        if self.stage != Stage::Target || !self.sources.is_empty() || n == 0 {
            return Err(PeltError::Protocol("attempt: begin_sources needs a fresh method and n ≥ 1".into()));
        }
        let root = self.vs.root();
        let (p, d) = (self.config.length, self.hidden);
        for j in 0..n {
            let prompt = root.var(&format!("source_{j}"), &[p, d], nn::Init::Uniform { lo: -0.5, up: 0.5 });
            if let Some(init) = self.fresh(p) {
                tch::no_grad(|| prompt.shallow_clone().copy_(&init));
            }
            self.sources.push(prompt);
        }
        let _ = self.target.shallow_clone().set_requires_grad(false);
        self.stage = Stage::Sources;
        Ok(())
    }
    fn begin_target(&mut self) -> Result<()> {
        if self.stage != Stage::Sources {
            return Err(PeltError::Protocol("attempt: begin_target before begin_sources".into()));
        }
        for s in &self.sources {
            let _ = s.shallow_clone().set_requires_grad(false);
        }
        let _ = self.target.shallow_clone().set_requires_grad(true);
        for t in self.attention_vars() {
            let _ = t.shallow_clone().set_requires_grad(true);
        }
        self.stage = Stage::Target;
        Ok(())
    }
    fn set_task_ids(&self, ids: Option<&Tensor>) {
        *self.task_ids.borrow_mut() = ids.map(Tensor::shallow_clone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        let seen = self.attention.borrow();
        let (Some(sum), n) = (seen.0.as_ref(), seen.1) else {
            return Vec::new();
        };
        let means = Vec::<f64>::try_from((sum / n as f64).to_kind(Kind::Double)).unwrap_or_default();
        let last = means.len().saturating_sub(1);
        means
            .iter()
            .enumerate()
            .map(|(j, &m)| (if j == last { "attn_target".to_owned() } else { format!("attn_source_{j}") }, m))
            .collect()
    }
}
