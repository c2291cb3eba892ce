//! The task head: pooling plus a linear classifier (or regressor), always trained.

use pelt_core::{Dropout, Encoded};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// How token states become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over real tokens (how all-MiniLM-L6-v2 was trained to embed sentences).
    #[default]
    Mean,
    /// The first position ([CLS]; with prompts prepended, the first prompt position).
    Cls,
}

/// Pooling → dropout → linear, in its own store so it is never mistaken for a method parameter.
#[derive(Debug)]
pub struct ClassificationHead {
    vs: nn::VarStore,
    weight: Tensor,
    bias: Tensor,
    pooling: Pooling,
    dropout: f64,
}

impl ClassificationHead {
    /// A head for `outputs` classes (1 for regression) on hidden size `hidden`.
    pub fn new(hidden: i64, outputs: i64, pooling: Pooling, dropout: f64, device: Device) -> ClassificationHead {
        let vs = nn::VarStore::new(device);
        let p = vs.root() / "classifier";
        // HF's BERT head init: normal(0, 0.02) weights, zero bias.
        let weight = p.var("weight", &[outputs, hidden], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let bias = p.var("bias", &[outputs], nn::Init::Const(0.0));
        ClassificationHead { vs, weight, bias, pooling, dropout }
    }

    /// Starts every output's bias at `value`. Regression heads start at the mean training score: from
    /// HF's zero bias, an MSE head's first steps must produce the labels' offset (STS-B's scores average
    /// 2.7), and that pressure can push the method into a content-free representation from which the
    /// run never recovers (seen on STS-B at K = 1000: predictions that follow sentence length only).
    pub fn start_at(&self, value: f64) {
        tch::no_grad(|| {
            let _ = self.bias.shallow_clone().fill_(value);
        });
    }

    /// How it pools.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The head's variables.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Pooled sequence vectors, (batch, d).
    pub fn pool(&self, encoded: &Encoded) -> Tensor {
        pool(encoded, self.pooling)
    }

    /// Logits (batch, outputs).
    pub fn forward(&self, encoded: &Encoded, train: bool) -> Tensor {
        self.forward_pooled(&self.pool(encoded), train)
    }

    /// Logits from already pooled vectors (batch, d), for frozen-backbone runs that cache features.
    pub fn forward_pooled(&self, pooled: &Tensor, train: bool) -> Tensor {
        pooled.drop_out(self.dropout, train).linear(&self.weight, Some(&self.bias))
    }
}

/// Pools hidden states with `pooling`, ignoring padding.
pub fn pool(encoded: &Encoded, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Cls => encoded.hidden.select(1, 0),
        Pooling::Mean => {
            let m = encoded.mask.to_kind(Kind::Float).unsqueeze(-1);
            (&encoded.hidden * &m).sum_dim_intlist(1, false, Kind::Float)
                / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9)
        }
    }
}
