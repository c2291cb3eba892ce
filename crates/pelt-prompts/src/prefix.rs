//! Prefix tuning (Li & Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", ACL 2021)
//! and deep prompts (Liu et al., "P-Tuning v2", ACL 2022): P extra key/value positions in the attention
//! of every layer, visible to every token.
//!
//! Prefix tuning trains them through a reparameterisation — P embeddings E through an MLP,
//! tanh(E W₁ᵀ + b₁) W₂ᵀ + b₂, gives every layer's keys and values at once — which
//! [`PrefixTuning::fold`] replaces by its output for inference, with identical results. Deep prompts
//! train the keys and values directly.

use crate::config::{DeepPromptConfig, PrefixConfig, PrefixInit};
use pelt_core::{Attachment, Backbone, BackboneDims, Identity, Inputs, Method, Prefix, Result, Site};
use std::cell::{Cell, RefCell};
use tch::{nn, Device, Kind, Tensor};

/// Splits a (batch, P, L·2·d) block of per-example keys and values into layer `layer`'s
/// (batch, heads, P, d/heads) pair.
pub fn batched_layer_kv(all: &Tensor, layer: usize, dims: &BackboneDims) -> (Tensor, Tensor) {
    let (b, p, _) = all.size3().expect("(batch, P, L·2·d)");
    let hd = dims.head_dim();
    let kv = all.view([b, p, dims.layers, 2, dims.heads, hd]).select(2, layer as i64);
    let split = |i: i64| kv.select(2, i).permute([0, 2, 1, 3]);
    (split(0), split(1))
}

/// Splits a (P, L·2·d) block of keys and values into layer `layer`'s (batch, heads, P, d/heads) pair.
pub fn layer_kv(all: &Tensor, layer: usize, dims: &BackboneDims, batch: i64) -> Prefix {
    let p = all.size()[0];
    let hd = dims.head_dim();
    let kv = all.view([p, dims.layers, 2, dims.heads, hd]).select(1, layer as i64);
    let split = |i: i64| kv.select(1, i).permute([1, 0, 2]).unsqueeze(0).expand([batch, -1, -1, -1], false);
    Prefix { keys: split(0), values: split(1), gate: None }
}

/// The prefix and its reparameterisation, built under any path of a store (prefix tuning owns one;
/// mixtures build it beside their other parts).
#[derive(Debug)]
pub struct PrefixModule {
    config: PrefixConfig,
    dims: BackboneDims,
    embedding: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    /// Every layer's keys and values (P, L·2·d), computed at layer 0 of each forward pass and reused by
    /// the other layers, so the MLP runs once per pass.
    cache: RefCell<Option<Tensor>>,
    /// Set by [`PrefixModule::fold`]: the MLP's output, used instead of running it.
    folded: RefCell<Option<Tensor>>,
    /// After the words init: the fit's residual, ‖MLP(E) − target‖² / ‖target − mean‖² (1 = no better
    /// than the targets' mean).
    init_residual: Cell<Option<f64>>,
}

impl PrefixModule {
    /// Builds the prefix embeddings and the MLP under `root`: nn.Linear's init and embeddings N(0, 1) as
    /// nn.Embedding, or BERT's N(0, 0.02) with zero biases for [`PrefixInit::ReferenceUnipelt`].
    pub fn new(root: nn::Path, config: PrefixConfig, dims: &BackboneDims) -> PrefixModule {
        let (d, m, out) = (dims.hidden, config.mid_dim, dims.layers * 2 * dims.attention_width());
        let bert = config.init == PrefixInit::ReferenceUnipelt;
        let bert_normal = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let linear = |name: &str, i: i64, o: i64| {
            let bound = 1.0 / (i as f64).sqrt();
            let uniform = nn::Init::Uniform { lo: -bound, up: bound };
            let (w, b) = if bert { (bert_normal, nn::Init::Const(0.0)) } else { (uniform, uniform) };
            (root.var(&format!("{name}_weight"), &[o, i], w), root.var(&format!("{name}_bias"), &[o], b))
        };
        let e = if bert { bert_normal } else { nn::Init::Randn { mean: 0.0, stdev: 1.0 } };
        let embedding = root.var("embedding", &[config.length, d], e);
        let (w1, b1) = linear("mlp_in", d, m);
        let (w2, b2) = linear("mlp_out", m, out);
        PrefixModule {
            config,
            dims: dims.clone(),
            embedding,
            w1,
            b1,
            w2,
            b2,
            cache: RefCell::new(None),
            folded: RefCell::new(None),
            init_residual: Cell::new(None),
        }
    }

    /// Applies the configured init that needs the pretrained backbone (see [`PrefixInit::Words`]):
    /// P token ids drawn with the global generator from the ids prompt tuning's init draws from (past
    /// BERT's special and unused ones); nothing for the random init.
    pub fn init_from(&self, backbone: &dyn Backbone) {
        if self.config.init == PrefixInit::Words {
            let (lo, hi) = crate::prompt::common_token_ids(backbone.dims().vocab);
            let device = backbone.var_store().device();
            self.init_from_words(
                backbone,
                &Tensor::randint_low(lo, hi, [1, self.config.length], (Kind::Int64, device)),
            );
        }
    }

    /// The words init for given token ids, (1, P): fits the MLP to the keys and values the frozen
    /// backbone computes for them read as one sequence, and returns the fit's relative residual.
    pub fn init_from_words(&self, backbone: &dyn Backbone, ids: &Tensor) -> f64 {
        let residual = self.fit(&real_word_kv(backbone, ids), 500, 1e-4);
        self.init_residual.set(Some(residual));
        residual
    }

    /// Li & Liang's low-data init (`lowdata_init_train3` in their code): Adam on the MLP alone (the
    /// embeddings stay as drawn) against the MSE to `target`, (P, L·2·d). Returns the fit's relative
    /// residual.
    fn fit(&self, target: &Tensor, steps: usize, lr: f64) -> f64 {
        let params = [&self.w1, &self.b1, &self.w2, &self.b2];
        let zeros = || params.iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
        let (mut m, mut v) = (zeros(), zeros());
        let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
        for step in 1..=steps {
            for p in params {
                p.shallow_clone().zero_grad();
            }
            self.mlp().mse_loss(target, tch::Reduction::Mean).backward();
            tch::no_grad(|| {
                let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
                for (i, p) in params.iter().enumerate() {
                    let g = p.grad();
                    m[i] = &m[i] * beta1 + &g * (1.0 - beta1);
                    v[i] = &v[i] * beta2 + g.square() * (1.0 - beta2);
                    let update = (&m[i] / c1) / ((&v[i] / c2).sqrt() + eps) * lr;
                    let _ = p.shallow_clone().g_sub_(&update);
                }
            });
        }
        // The loss reached the embeddings too: leave no gradient behind for the first training step.
        for p in params.iter().chain([&&self.embedding]) {
            p.shallow_clone().zero_grad();
        }
        tch::no_grad(|| {
            let spread = (target - target.mean_dim(0, true, Kind::Float)).square().sum(Kind::Float);
            ((self.mlp() - target).square().sum(Kind::Float) / spread).double_value(&[])
        })
    }

    /// What a run records: the words init's residual (`prefix_init_residual`) where it ran.
    pub fn diagnostics(&self) -> Vec<(String, f64)> {
        self.init_residual.get().map(|r| ("prefix_init_residual".to_owned(), r)).into_iter().collect()
    }

    fn mlp(&self) -> Tensor {
        self.reparameterise(&self.embedding)
    }

    /// The reparameterisation MLP applied to any embeddings (…, d) → (…, L·2·d): the input-dependent
    /// prefix (IDPG) maps its generated embeddings through the same MLP as the task prefix.
    pub fn reparameterise(&self, e: &Tensor) -> Tensor {
        e.linear(&self.w1, Some(&self.b1)).tanh().linear(&self.w2, Some(&self.b2))
    }

    /// Replaces the reparameterisation by its output (for inference): P·L·2·d values instead of the
    /// MLP. Training after folding would not move the prefix.
    pub fn fold(&self) {
        *self.folded.borrow_mut() = Some(tch::no_grad(|| self.mlp()));
    }

    /// Layer `layer`'s prefix for a batch shaped like `x`.
    pub fn prefix(&self, layer: usize, x: &Tensor) -> Prefix {
        let all = match &*self.folded.borrow() {
            Some(f) => f.shallow_clone(),
            None => {
                let mut cache = self.cache.borrow_mut();
                if layer == 0 || cache.is_none() {
                    *cache = Some(self.mlp());
                }
                cache.as_ref().map(Tensor::shallow_clone).unwrap_or_else(|| self.mlp())
            }
        };
        layer_kv(&all, layer, &self.dims, x.size()[0])
    }

    /// The P prefix embeddings the MLP reads.
    pub fn embedding(&self) -> Tensor {
        self.embedding.shallow_clone()
    }

    /// Trainable parameters of the prefix and its MLP.
    pub fn params(&self) -> i64 {
        let (p, h, m) = (self.config.length, self.dims.hidden, self.config.mid_dim);
        let out = self.dims.layers * 2 * self.dims.attention_width();
        p * h + (h * m + m) + (m * out + out)
    }
}

/// Records each layer's attention input (what the key and value projections read).
#[derive(Default)]
struct AttentionInputs(RefCell<Vec<(usize, Tensor)>>);

impl Attachment for AttentionInputs {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<pelt_core::Delta> {
        if site == Site::Key {
            self.0.borrow_mut().push((layer, x.shallow_clone()));
        }
        None
    }
}

/// The frozen backbone's keys and values, (P, L·2·d) in the prefix's layout, for token ids (1, P).
fn real_word_kv(backbone: &dyn Backbone, ids: &Tensor) -> Tensor {
    let p = ids.size()[1];
    let inputs = Inputs::text(ids.shallow_clone(), ids.ones_like(), ids.zeros_like());
    let seen = AttentionInputs::default();
    tch::no_grad(|| {
        backbone.forward(&inputs, &seen, false);
        let vars = backbone.var_store().variables();
        let project = |layer: usize, x: &Tensor, which: &str| {
            let name = |part: &str| format!("encoder.layer.{layer}.attention.self.{which}.{part}");
            let (w, b) = (&vars[&name("weight")], &vars[&name("bias")]);
            x.linear(w, Some(b)).squeeze_dim(0)
        };
        let mut per_layer = seen.0.take();
        per_layer.sort_by_key(|(layer, _)| *layer);
        let layers: Vec<Tensor> = per_layer
            .iter()
            .map(|(l, x)| Tensor::stack(&[project(*l, x, "key"), project(*l, x, "value")], 1))
            .collect();
        // (P, L, 2, d) → (P, L·2·d), the MLP's output layout (see `layer_kv`).
        Tensor::stack(&layers, 1).reshape([p, -1])
    })
}

/// Prefix tuning with the MLP reparameterisation.
#[derive(Debug)]
pub struct PrefixTuning {
    vs: nn::VarStore,
    module: PrefixModule,
}

impl PrefixTuning {
    /// Builds the prefix in its own store.
    pub fn new(config: PrefixConfig, dims: &BackboneDims, device: Device) -> Result<PrefixTuning> {
        let vs = nn::VarStore::new(device);
        let module = PrefixModule::new(vs.root(), config, dims);
        Ok(PrefixTuning { vs, module })
    }

    /// See [`PrefixModule::fold`].
    pub fn fold(&self) {
        self.module.fold();
    }

    /// The prefix and its MLP.
    pub fn module(&self) -> &PrefixModule {
        &self.module
    }
}

impl Attachment for PrefixTuning {
    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        Some(self.module.prefix(layer, x))
    }
}

impl Method for PrefixTuning {
    fn name(&self) -> &str {
        "prefix_tuning"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, _: &BackboneDims) -> i64 {
        self.module.params()
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.module.init_from(backbone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        self.module.diagnostics()
    }
}

/// LightNER's guidance module (Chen et al., COLING 2022, §3.3): P learnable key and value vectors in
/// every layer's self-attention, produced from P embeddings by a Linear–Tanh–Linear MLP (its released
/// configuration: P = 10, MLP width 800), the PLM frozen. In pelt's encoder it is prefix tuning's
/// mechanism; what makes the method LightNER is [`Method::label_words`]: the token classification
/// family then scores tags with the label-word verbalizer instead of a linear head. The paper's
/// prompts also enter BART's decoder self- and cross-attention; pelt tags with the encoder, so only
/// the encoder's are here.
#[derive(Debug)]
pub struct Lightner(PrefixTuning);

impl Lightner {
    /// Builds the guidance module in its own store.
    pub fn new(config: PrefixConfig, dims: &BackboneDims, device: Device) -> Result<Lightner> {
        Ok(Lightner(PrefixTuning::new(config, dims, device)?))
    }
}

impl Attachment for Lightner {
    fn prefix(&self, layer: usize, x: &Tensor, train: bool) -> Option<Prefix> {
        self.0.prefix(layer, x, train)
    }
}

impl Method for Lightner {
    fn name(&self) -> &str {
        "lightner"
    }
    fn var_store(&self) -> &nn::VarStore {
        self.0.var_store()
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.0.formula_params(dims)
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.0.init_from(backbone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        self.0.diagnostics()
    }
    fn label_words(&self) -> bool {
        true
    }
}

/// Deep prompts: every layer's prefix keys and values trained directly.
#[derive(Debug)]
pub struct DeepPrompt {
    vs: nn::VarStore,
    config: DeepPromptConfig,
    dims: BackboneDims,
    /// (P, L·2·d).
    kv: Tensor,
}

impl DeepPrompt {
    /// Builds the keys and values.
    pub fn new(config: DeepPromptConfig, dims: &BackboneDims, device: Device) -> Result<DeepPrompt> {
        let vs = nn::VarStore::new(device);
        let kv = vs.root().var(
            "prompt_kv",
            &[config.length, dims.layers * 2 * dims.attention_width()],
            nn::Init::Randn { mean: 0.0, stdev: config.init_std },
        );
        Ok(DeepPrompt { vs, config, dims: dims.clone(), kv })
    }
}

impl Attachment for DeepPrompt {
    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        Some(layer_kv(&self.kv, layer, &self.dims, x.size()[0]))
    }
}

impl Method for DeepPrompt {
    fn name(&self) -> &str {
        "deep_prompt"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        self.config.length * d.layers * 2 * d.attention_width()
    }
}
