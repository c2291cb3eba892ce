//! The settings every run of a sweep shares, as experiment files write them: the optimisation
//! (`training:`) and each method's entry (`methods:`).

pub use pelt_amp::Precision;
use serde::{Deserialize, Serialize};

/// When the dev set is evaluated for model selection: `epoch`, or a number of optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalEvery {
    /// After every epoch.
    Epoch,
    /// Every N optimizer steps (and at the end).
    Steps(usize),
}

impl Serialize for EvalEvery {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EvalEvery::Epoch => s.serialize_str("epoch"),
            EvalEvery::Steps(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for EvalEvery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EvalEvery, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(EvalEvery::Steps(n as usize)),
            Raw::S(s) if s == "epoch" => Ok(EvalEvery::Epoch),
            _ => Err(serde::de::Error::custom("eval_every is `epoch` or a positive number of steps")),
        }
    }
}

/// Optimisation settings shared by every run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    /// Passes over the training set.
    pub epochs: usize,
    /// Upper bound on optimizer steps (0 = no bound).
    pub max_steps: usize,
    /// Lower bound on optimizer steps: small data sizes get more epochs so every run trains enough.
    pub min_steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Token limit per example (pairs are truncated longest-first).
    pub max_len: usize,
    /// Fraction of steps with linear warm-up.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (not applied to biases and LayerNorm).
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Dev evaluation schedule.
    pub eval_every: EvalEvery,
    /// Cap on the dev set used for model selection (protocol maximum 1000).
    pub dev_limit: usize,
    /// Cap on the test set (0 = the whole test split); a cap takes a fixed seeded sample.
    pub test_limit: usize,
    /// Intra-op threads for libtorch (0 = libtorch's default).
    pub threads: usize,
    /// Peak learning rate of the parts every method trains — the task head, a warm-started decoder's
    /// new cross-attention and output transform — so that rows differ only in the method (`None`: each
    /// method's own `lr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
    /// Precision of the forward and backward passes (`fp32`, `bf16`, `fp16`: autocast, fp32 master
    /// weights, loss scaling for fp16; see `pelt_amp`). Left out of the serialised settings at fp32, so
    /// that fp32 runs keep their hashes; any other value is part of every run's hash.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Pad every text batch to `max_len` positions, as reference code that pads to `max_seq_length`
    /// does (UniPELT's; see its `gate_pooling: all_positions`), instead of to the batch's longest
    /// example. Slower; results differ only where a method reads padding positions. Left out of the
    /// serialised settings when off, so that other runs keep their hashes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pad_to_max_len: bool,
}

impl Training {
    /// The length every text batch is padded to at least: `max_len` under `pad_to_max_len`, else 0 (each
    /// batch to its longest example).
    pub fn pad_to(&self) -> usize {
        if self.pad_to_max_len {
            self.max_len
        } else {
            0
        }
    }
}

impl Default for Training {
    fn default() -> Self {
        Training {
            epochs: 10,
            max_steps: 0,
            min_steps: 0,
            batch_size: 32,
            eval_batch_size: 64,
            max_len: 128,
            warmup_ratio: 0.06,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            eval_every: EvalEvery::Epoch,
            dev_limit: 1000,
            test_limit: 0,
            threads: 0,
            head_lr: None,
            precision: Precision::Fp32,
            pad_to_max_len: false,
        }
    }
}

/// One method of the sweep with its configuration and learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpecFile")]
pub struct MethodSpec {
    /// Registry name.
    pub method: String,
    /// Row label in tables (defaults to the method name); must be unique within the file.
    #[serde(default)]
    pub label: Option<String>,
    /// Peak learning rate. An experiment file may instead write `lr: {search: [...]}` (see
    /// [`MethodSpec::lr_search`]) or leave it to the experiment's `tuning.lr` or `rates` file; until the
    /// experiment resolves it, it is NaN.
    pub lr: f64,
    /// Learning rates to search, one trial run each (from `lr: {search: [...]}` or `tuning.lr`); an
    /// experiment expands them into one entry per rate, labelled `<label>[lr=<rate>]`, and clears this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lr_search: Vec<f64>,
    /// Method configuration; omitted fields take the method's defaults.
    #[serde(default)]
    pub config: serde_yaml::Value,
    /// In an experiment with a `transfer` section: whether this method trains on the source tasks
    /// first (default) or only on the target (`false`: the single-task baseline row).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub transfer: bool,
    /// In a summarization experiment with several tasks (XL-Sum languages): one instance of the method
    /// trained on every task at once and evaluated on each, instead of one per task.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// In an experiment with a `federated` section: whether this method trains federated (default) or
    /// centralised on the same training examples for as many optimizer steps as the federated run's
    /// clients take in all (`false`: the centralised reference row).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub federated: bool,
    /// In a federated experiment: this entry's partition (`iid`, `dirichlet:<alpha>`,
    /// `quantity_skew:<beta>`) over the block's; set for each entry a `partitions` axis expands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// In a NER experiment with a `priming` section: what trains on the source before the target —
    /// `none` (the default), `plm` (the pretrained model, fully fine-tuned; then this method on the
    /// target) or `method` (this method, the PLM frozen; then it continues on the target).
    #[serde(default, skip_serializing_if = "Priming::is_none")]
    pub prime: Priming,
    /// With `prime: method`: the learning rate of the source stage (default: the entry's `lr`). Prefix
    /// methods primed at their target rate can collapse on a tag set that is mostly `O`; LightNER's
    /// released rate is 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prime_lr: Option<f64>,
}

/// What a NER run primes on the source task before its target ([`MethodSpec::prime`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priming {
    /// No source training.
    #[default]
    None,
    /// Full fine-tuning of the PLM on the source, then the method on the target from it.
    Plm,
    /// The method on the source with the PLM frozen, then the same method continues on the target.
    Method,
}

impl Priming {
    /// Whether nothing is primed.
    pub fn is_none(&self) -> bool {
        *self == Priming::None
    }
}

/// A learning rate as an experiment file writes it: a number, or `{search: [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Rate {
    Value(f64),
    Search {
        /// The rates to try.
        search: Vec<f64>,
    },
}

/// [`MethodSpec`] as an experiment file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    method: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    lr: Option<Rate>,
    #[serde(default)]
    lr_search: Vec<f64>,
    #[serde(default)]
    config: serde_yaml::Value,
    #[serde(default = "yes")]
    transfer: bool,
    #[serde(default)]
    shared: bool,
    #[serde(default = "yes")]
    federated: bool,
    #[serde(default)]
    partition: Option<String>,
    #[serde(default)]
    prime: Priming,
    #[serde(default)]
    prime_lr: Option<f64>,
}

impl TryFrom<SpecFile> for MethodSpec {
    type Error = String;

    fn try_from(f: SpecFile) -> Result<MethodSpec, String> {
        let (lr, lr_search) = match (f.lr, f.lr_search) {
            (Some(_), s) if !s.is_empty() => return Err("give `lr` or `lr_search`, not both".into()),
            (Some(Rate::Value(v)), _) => (v, Vec::new()),
            (Some(Rate::Search { search }), _) if search.is_empty() => {
                return Err("field `lr`: the search lists no rate".into())
            }
            (Some(Rate::Search { search }), _) => (f64::NAN, search),
            (None, s) => (f64::NAN, s),
        };
        Ok(MethodSpec {
            method: f.method,
            label: f.label,
            lr,
            lr_search,
            config: f.config,
            transfer: f.transfer,
            shared: f.shared,
            federated: f.federated,
            partition: f.partition,
            prime: f.prime,
            prime_lr: f.prime_lr,
        })
    }
}

fn yes() -> bool {
    true
}

impl MethodSpec {
    /// The row label.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.method)
    }
}
