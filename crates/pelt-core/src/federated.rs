//! What federated training exchanges, independent of any task family: the server's aggregation of the
//! clients' trainable parameters ([`Server`]: FedAvg, FedProx, FedAdam) and the compression of what a
//! client sends up ([`Compression`]). Only a method's trainable set travels (see
//! [`crate::prepare_training`]); the conformance suite checks that a client's round changes nothing
//! outside it and that the server's average of identical updates is that update.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How the server combines the clients' parameters, with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregator {
    /// FedAvg (McMahan et al. 2017): the clients' parameters averaged, weighted by their examples.
    Fedavg,
    /// FedProx (Li et al. 2020): FedAvg's server; each client's loss gains μ/2·‖w − w_global‖².
    Fedprox {
        /// μ.
        mu: f64,
    },
    /// FedAdam (Reddi et al. 2021): Adam on the server with the averaged change as its gradient.
    Fedadam {
        /// Server learning rate η.
        lr: f64,
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// Adaptivity τ.
        tau: f64,
    },
}

/// How a client's update is encoded on the way up (`compression:`). The server always broadcasts
/// float32 values: clients that were not sampled last round hold no previous global model to apply a
/// compressed difference to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// float32 values, 4 bytes each: the update arrives exactly.
    #[default]
    None,
    /// The update's change (client − global) rounded to float16: 2 bytes a value.
    Fp16,
    /// The change rounded to bfloat16: 2 bytes a value, float32's range with 8 bits of mantissa.
    Bf16,
    /// The change quantised per tensor to int8 by its largest magnitude (symmetric, round to nearest):
    /// 1 byte a value plus a float32 scale per tensor.
    Int8,
}

impl Compression {
    /// Bytes on the wire for tensors of `sizes` elements each.
    pub fn bytes(self, sizes: impl IntoIterator<Item = i64>) -> f64 {
        sizes
            .into_iter()
            .map(|n| match self {
                Compression::None => 4.0 * n as f64,
                Compression::Fp16 | Compression::Bf16 => 2.0 * n as f64,
                Compression::Int8 => n as f64 + 4.0,
            })
            .sum()
    }

    /// What the server receives for a client's `local` values trained from `global`, as a new tensor
    /// (the client's own go on training): the change encoded and decoded, added back to `global`;
    /// float32 arrives unchanged.
    pub fn received(self, global: &Tensor, local: &Tensor) -> Tensor {
        if self == Compression::None {
            return local.detach().copy();
        }
        tch::no_grad(|| {
            let change = local - global;
            let decoded = match self {
                Compression::None => unreachable!(),
                Compression::Fp16 => change.to_kind(Kind::Half).to_kind(Kind::Float),
                Compression::Bf16 => change.to_kind(Kind::BFloat16).to_kind(Kind::Float),
                Compression::Int8 => {
                    let largest = change.abs().max().double_value(&[]);
                    if largest == 0.0 {
                        change
                    } else {
                        let scale = largest / 127.0;
                        (&change / scale).round().clamp(-127.0, 127.0) * scale
                    }
                }
            };
            global + decoded
        })
    }
}

/// The server: aggregates the clients' parameters (weighted by their examples) into the global ones.
#[derive(Debug)]
pub struct Server {
    aggregator: Aggregator,
    /// FedAdam's moments, one pair per parameter.
    moments: Vec<(Tensor, Tensor)>,
}

impl Server {
    /// A server for parameters shaped as `global`.
    pub fn new(aggregator: Aggregator, global: &[Tensor]) -> Server {
        let moments = global.iter().map(|g| (g.zeros_like(), g.zeros_like())).collect();
        Server { aggregator, moments }
    }

    /// Replaces `global` by the aggregate of `clients` (their parameters and example counts).
    pub fn aggregate(&mut self, global: &mut [Tensor], clients: &[(Vec<Tensor>, usize)]) {
        let total: usize = clients.iter().map(|c| c.1).sum();
        tch::no_grad(|| {
            for (i, g) in global.iter_mut().enumerate() {
                let mut avg = g.zeros_like();
                for (params, n) in clients {
                    avg += &params[i] * (*n as f64 / total.max(1) as f64);
                }
                match self.aggregator {
                    Aggregator::Fedavg | Aggregator::Fedprox { .. } => {
                        g.copy_(&avg);
                    }
                    Aggregator::Fedadam { lr, beta1, beta2, tau } => {
                        // Reddi et al.'s Algorithm 2 (no bias correction): Δ = avg − x,
                        // m = β₁m + (1 − β₁)Δ, v = β₂v + (1 − β₂)Δ², x += η·m / (√v + τ).
                        let delta = &avg - &*g;
                        let (m, v) = &mut self.moments[i];
                        *m = &*m * beta1 + &delta * (1.0 - beta1);
                        *v = &*v * beta2 + delta.square() * (1.0 - beta2);
                        let step = &*m / (v.sqrt() + tau) * lr;
                        let _ = g.g_add_(&step);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn identical_client_updates_aggregate_to_that_update_and_fedavg_weights_by_examples() {
        let start = [t(&[0.0, 1.0]), t(&[2.0])];
        let update = [t(&[0.5, -1.0]), t(&[3.0])];
        let mut global: Vec<Tensor> = start.iter().map(Tensor::copy).collect();
        let mut server = Server::new(Aggregator::Fedavg, &global);
        let same: Vec<(Vec<Tensor>, usize)> = (1..=4).map(|n| (update.iter().map(Tensor::copy).collect(), n)).collect();
        server.aggregate(&mut global, &same);
        for (g, u) in global.iter().zip(&update) {
            assert!(g.allclose(u, 1e-7, 1e-7, false), "N copies of one update average to it");
        }
        // Weighted by examples: 3 of 4 examples hold 1.0, 1 holds 5.0.
        let mut global = vec![t(&[0.0])];
        let mut server = Server::new(Aggregator::Fedprox { mu: 0.1 }, &global);
        server.aggregate(&mut global, &[(vec![t(&[1.0])], 3), (vec![t(&[5.0])], 1)]);
        assert!((global[0].double_value(&[0]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn fedadam_moves_the_global_model_towards_the_clients_by_its_own_rate() {
        let mut global = vec![t(&[0.0, 0.0])];
        let (lr, beta1, beta2, tau) = (0.1, 0.9, 0.99, 1e-3);
        let mut server = Server::new(Aggregator::Fedadam { lr, beta1, beta2, tau }, &global);
        server.aggregate(&mut global, &[(vec![t(&[1.0, -2.0])], 5)]);
        // Δ = (1, −2): m = 0.1Δ, v = 0.01Δ², step = η·m/(√v + τ) = 0.1·0.1Δ/(0.1|Δ| + 1e-3).
        let want = |d: f64| lr * (1.0 - beta1) * d / (((1.0 - beta2) * d * d).sqrt() + tau);
        assert!((global[0].double_value(&[0]) - want(1.0)).abs() < 1e-6);
        assert!((global[0].double_value(&[1]) - want(-2.0)).abs() < 1e-6);
    }

    #[test]
    fn compression_counts_its_bytes_and_loses_only_what_its_width_cannot_hold() {
        assert_eq!(Compression::None.bytes([10, 6]), 64.0);
        assert_eq!(Compression::Fp16.bytes([10, 6]), 32.0);
        assert_eq!(Compression::Int8.bytes([10, 6]), 24.0);
        let global = t(&[1.0, -2.0, 3.0, 0.5]);
        let local = t(&[1.1, -2.3, 3.0, 0.5 + 1e-5]);
        // float32 arrives exactly.
        assert!(Compression::None.received(&global, &local).equal(&local));
        // Half keeps the change to about 3 significant digits.
        let half = Compression::Fp16.received(&global, &local);
        assert!((&half - &local).abs().max().double_value(&[]) < 1e-3);
        // int8: the largest change (−0.3) is exact up to float rounding, an unchanged value stays, and
        // a change below half a step (0.3/127/2) rounds to nothing.
        let q = Compression::Int8.received(&global, &local);
        let got: Vec<f32> = Vec::try_from(&q).unwrap();
        assert!((got[1] + 2.3).abs() < 1e-6 && got[2] == 3.0 && got[3] == 0.5, "{got:?}");
        assert!((got[0] - 1.1).abs() <= 0.3 / 127.0 / 2.0 + 1e-6);
        // A zero change stays zero (no division by a zero scale).
        assert!(Compression::Int8.received(&global, &global).equal(&global));
    }
}
