//! Federated parameter-efficient tuning (FedPETuning: Zhang et al., ACL Findings 2023): a task's
//! training examples split over simulated clients (IID, label skew by Dirichlet α, or quantity skew);
//! each round a sample of clients starts from the global parameters, trains locally with a fresh
//! optimiser, and sends back only what trains — the method's parameters and the head (full fine-tuning:
//! everything) — which the server aggregates (FedAvg weighted by client examples; FedProx adds μ/2·‖w −
//! w_global‖² to every client's loss; FedAdam, Reddi et al. 2021, treats the averaged change as a
//! pseudo-gradient for a server Adam). The global model is evaluated on dev every `eval_every` rounds;
//! the best round is restored and tested, as the centralised protocol selects its step. Bytes down are
//! counted at 4 per value (float32), bytes up at the width of the experiment's `compression`. All of it
//! is a function of the seed.

pub mod partition;
pub mod train;

use serde::{Deserialize, Serialize};

/// How the training examples are split over clients (`partition:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Shuffled and dealt out evenly.
    Iid,
    /// Label skew: per class, the clients' shares ~ Dir(α·1) (`alpha`: 0.1 skewed, 1 FedPETuning's
    /// default, 10 near IID).
    Dirichlet,
    /// Quantity skew: the clients' sizes ~ Dir(β·1) (`beta`), labels IID.
    QuantitySkew,
}

/// A partition with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Partition {
    /// IID.
    Iid,
    /// Label skew with concentration α.
    Dirichlet {
        /// α.
        alpha: f64,
    },
    /// Quantity skew with concentration β.
    QuantitySkew {
        /// β.
        beta: f64,
    },
}

/// How the server combines the clients' parameters (`aggregator:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregatorKind {
    /// FedAvg (McMahan et al. 2017): the clients' parameters averaged, weighted by their examples.
    #[default]
    Fedavg,
    /// FedProx (Li et al. 2020): FedAvg, each client's loss plus μ/2·‖w − w_global‖² (`mu`).
    Fedprox,
    /// FedAdam (Reddi et al. 2021): Adam on the server with the averaged change as its gradient
    /// (`server_lr`, `server_beta1`, `server_beta2`, `server_tau`).
    Fedadam,
}

pub use pelt_core::federated::{Aggregator, Compression};

fn is_uncompressed(c: &Compression) -> bool {
    *c == Compression::None
}

fn one() -> usize {
    1
}

/// An experiment's `federated:` block (flat, as FedPETuning's own configuration is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Federated {
    /// Simulated clients the training examples are split over.
    pub clients: usize,
    /// Clients sampled each round (or give `sample_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_per_round: Option<usize>,
    /// Fraction of the clients sampled each round (FedPETuning: 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
    /// Communication rounds.
    pub rounds: usize,
    /// Passes over its shard each sampled client makes per round (default 1), or give `local_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_epochs: Option<usize>,
    /// Optimizer steps each sampled client takes per round (batches drawn from its shard, cycling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_steps: Option<usize>,
    /// How the examples are split: `iid`, `dirichlet` (with `alpha`), `quantity_skew` (with `beta`).
    pub partition: PartitionKind,
    /// Dirichlet concentration over labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Dirichlet concentration over client sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// `fedavg` (default), `fedprox` (with `mu`), `fedadam` (with the `server_*` settings).
    #[serde(default)]
    pub aggregator: AggregatorKind,
    /// FedProx's μ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// FedAdam's server learning rate (default 1e-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_lr: Option<f64>,
    /// FedAdam's β₁ (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_beta1: Option<f64>,
    /// FedAdam's β₂ (default 0.99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_beta2: Option<f64>,
    /// FedAdam's adaptivity τ (default 1e-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tau: Option<f64>,
    /// Rounds between dev evaluations of the global model (and the last round).
    #[serde(default = "one")]
    pub eval_every: usize,
    /// How a client's update travels up: `none` (float32, the default), `fp16`, `bf16` or `int8` (see
    /// [`Compression`]); the bytes up are counted at its width, and the server aggregates what the
    /// encoding lets through.
    #[serde(default, skip_serializing_if = "is_uncompressed")]
    pub compression: Compression,
    /// A grid axis of partitions: every federated method entry runs once under each (`iid`,
    /// `dirichlet:<alpha>`, `quantity_skew:<beta>`), labelled `<label>@<tag>` (`@iid`, `@a0.1`, `@q0.5`),
    /// in place of `partition`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
}

/// A partition written as `iid`, `dirichlet:<alpha>` or `quantity_skew:<beta>`: (kind, alpha, beta, tag).
pub fn parse_partition(text: &str) -> Result<(PartitionKind, Option<f64>, Option<f64>, String), String> {
    let number = |v: &str| v.trim().parse::<f64>().map_err(|_| format!("`{text}`: `{v}` is not a number"));
    match text.split_once(':') {
        None if text.trim() == "iid" => Ok((PartitionKind::Iid, None, None, "iid".into())),
        Some(("dirichlet", a)) => Ok((PartitionKind::Dirichlet, Some(number(a)?), None, format!("a{}", a.trim()))),
        Some(("quantity_skew", b)) => {
            Ok((PartitionKind::QuantitySkew, None, Some(number(b)?), format!("q{}", b.trim())))
        }
        _ => Err(format!("`{text}`: expected iid, dirichlet:<alpha> or quantity_skew:<beta>")),
    }
}

impl Federated {
    /// These settings under the partition `text` (see [`parse_partition`]), the axis cleared: what one
    /// run of a `partitions` grid trains with, and hashes.
    pub fn with_partition(&self, text: &str) -> Result<Federated, Refusal> {
        let (partition, alpha, beta, _) =
            parse_partition(text).map_err(|message| Refusal { field: "partitions", message })?;
        Ok(Federated { partition, alpha, beta, partitions: Vec::new(), ..self.clone() })
    }
}

/// A refused `federated:` setting: the field (under `federated.`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The field, e.g. `clients_per_round`.
    pub field: &'static str,
    /// What was expected.
    pub message: String,
}

impl Federated {
    /// Clients sampled per round.
    pub fn per_round(&self) -> usize {
        match (self.clients_per_round, self.sample_rate) {
            (Some(k), _) => k,
            (None, Some(r)) => ((r * self.clients as f64).round() as usize).clamp(1, self.clients),
            (None, None) => self.clients,
        }
    }

    /// Checks the settings for a task whose smallest training set has `min_train` examples.
    pub fn check(&self, min_train: Option<usize>) -> Result<(), Refusal> {
        let refuse = |field, message: String| Err(Refusal { field, message });
        if self.clients == 0 {
            return refuse("clients", "must be at least 1".into());
        }
        if let Some(n) = min_train.filter(|&n| n < self.clients) {
            return refuse(
                "clients",
                format!("{} clients for {n} training examples: every client needs one", self.clients),
            );
        }
        match (self.clients_per_round, self.sample_rate) {
            (Some(_), Some(_)) => {
                return refuse("sample_rate", "give clients_per_round or sample_rate, not both".into())
            }
            (Some(k), None) if k == 0 || k > self.clients => {
                return refuse("clients_per_round", format!("must be in 1..={} (the clients), got {k}", self.clients))
            }
            (None, Some(r)) if !(r > 0.0 && r <= 1.0) => {
                return refuse("sample_rate", format!("must be in (0, 1], got {r}"))
            }
            _ => {}
        }
        if self.rounds == 0 {
            return refuse("rounds", "must be at least 1".into());
        }
        match (self.local_epochs, self.local_steps) {
            (Some(_), Some(_)) => return refuse("local_steps", "give local_epochs or local_steps, not both".into()),
            (Some(0), _) => return refuse("local_epochs", "must be at least 1".into()),
            (_, Some(0)) => return refuse("local_steps", "must be at least 1".into()),
            _ => {}
        }
        if self.eval_every == 0 {
            return refuse("eval_every", "must be at least 1".into());
        }
        for p in &self.partitions {
            self.with_partition(p)?.check(min_train)?;
        }
        let positive = |v: Option<f64>| v.is_some_and(|x| x > 0.0 && x.is_finite());
        match self.partition {
            PartitionKind::Dirichlet if !positive(self.alpha) => {
                return refuse("alpha", format!("dirichlet needs alpha > 0, got {:?}", self.alpha))
            }
            PartitionKind::QuantitySkew if !positive(self.beta) => {
                return refuse("beta", format!("quantity_skew needs beta > 0, got {:?}", self.beta))
            }
            _ => {}
        }
        if self.alpha.is_some() && self.partition != PartitionKind::Dirichlet {
            return refuse("alpha", "only a dirichlet partition takes alpha".into());
        }
        if self.beta.is_some() && self.partition != PartitionKind::QuantitySkew {
            return refuse("beta", "only a quantity_skew partition takes beta".into());
        }
        if self.mu.is_some() != (self.aggregator == AggregatorKind::Fedprox) {
            return refuse("mu", "fedprox needs mu, and only fedprox takes it".into());
        }
        if self.mu.is_some_and(|mu| !(mu >= 0.0 && mu.is_finite())) {
            return refuse("mu", format!("must be non-negative, got {:?}", self.mu));
        }
        let server = [self.server_lr, self.server_beta1, self.server_beta2, self.server_tau];
        if self.aggregator != AggregatorKind::Fedadam && server.iter().any(Option::is_some) {
            return refuse("aggregator", "server_lr / server_beta1 / server_beta2 / server_tau are fedadam's".into());
        }
        if let Aggregator::Fedadam { lr, beta1, beta2, tau } = self.aggregator() {
            if !(lr > 0.0 && (0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && tau > 0.0) {
                return refuse(
                    "server_lr",
                    "fedadam needs server_lr > 0, server_beta1 and server_beta2 in [0, 1), server_tau > 0".into(),
                );
            }
        }
        Ok(())
    }

    /// The partition with its parameter (after [`Federated::check`]).
    pub fn partition(&self) -> Partition {
        match self.partition {
            PartitionKind::Iid => Partition::Iid,
            PartitionKind::Dirichlet => Partition::Dirichlet { alpha: self.alpha.unwrap_or(1.0) },
            PartitionKind::QuantitySkew => Partition::QuantitySkew { beta: self.beta.unwrap_or(1.0) },
        }
    }

    /// The aggregator with its parameters (FedAdam's defaults where unset).
    pub fn aggregator(&self) -> Aggregator {
        match self.aggregator {
            AggregatorKind::Fedavg => Aggregator::Fedavg,
            AggregatorKind::Fedprox => Aggregator::Fedprox { mu: self.mu.unwrap_or(0.0) },
            AggregatorKind::Fedadam => Aggregator::Fedadam {
                lr: self.server_lr.unwrap_or(1e-2),
                beta1: self.server_beta1.unwrap_or(0.9),
                beta2: self.server_beta2.unwrap_or(0.99),
                tau: self.server_tau.unwrap_or(1e-3),
            },
        }
    }
}

impl Federated {
    /// Optimizer steps the clients of a federated run on `n_train` examples take in all, and the steps
    /// between its dev evaluations: what the centralised reference row trains for and evaluates at.
    pub fn centralised_steps(&self, n_train: usize, batch_size: usize) -> (usize, usize) {
        let per_client = match self.local_steps {
            Some(k) => k,
            None => self.local_epochs.unwrap_or(1) * (n_train / self.clients.max(1)).div_ceil(batch_size.max(1)).max(1),
        };
        let per_round = self.per_round() * per_client;
        (self.rounds * per_round, self.eval_every * per_round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_from_yaml_and_bad_ones_are_refused_by_field() {
        let f: Federated = serde_yaml::from_str(
            "clients: 100\nsample_rate: 0.1\nrounds: 100\nlocal_epochs: 1\npartition: dirichlet\nalpha: 1.0\naggregator: fedavg\n",
        )
        .unwrap();
        assert_eq!(f.per_round(), 10);
        assert!(f.check(Some(1000)).is_ok());
        assert_eq!(f.check(Some(50)).unwrap_err().field, "clients");
        assert_eq!(f.partition(), Partition::Dirichlet { alpha: 1.0 });
        let iid: Federated =
            serde_yaml::from_str("clients: 4\nrounds: 2\npartition: iid\naggregator: fedadam\nserver_lr: 0.05\n")
                .unwrap();
        assert!(iid.check(None).is_ok() && iid.per_round() == 4);
        assert_eq!(iid.aggregator(), Aggregator::Fedadam { lr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
        let cases = [
            ("clients: 4\nclients_per_round: 5\nrounds: 1\npartition: iid\n", "clients_per_round"),
            ("clients: 4\nrounds: 1\npartition: dirichlet\nalpha: 0\n", "alpha"),
            ("clients: 4\nrounds: 1\npartition: dirichlet\n", "alpha"),
            ("clients: 4\nrounds: 1\npartition: iid\nalpha: 1.0\n", "alpha"),
            ("clients: 4\nrounds: 0\npartition: iid\n", "rounds"),
            ("clients: 4\nrounds: 1\nlocal_epochs: 1\nlocal_steps: 3\npartition: iid\n", "local_steps"),
            ("clients: 4\nrounds: 1\npartition: iid\naggregator: fedprox\nmu: -1\n", "mu"),
            ("clients: 4\nrounds: 1\npartition: iid\naggregator: fedprox\n", "mu"),
        ];
        for (text, field) in cases {
            let f: Federated = serde_yaml::from_str(text).unwrap();
            assert_eq!(f.check(Some(100)).unwrap_err().field, field, "{text}");
        }
        let grid: Federated = serde_yaml::from_str(
            "clients: 4\nrounds: 1\npartition: iid\npartitions: [iid, 'dirichlet:0.1', 'quantity_skew:2']\n",
        )
        .unwrap();
        assert!(grid.check(Some(100)).is_ok());
        let one = grid.with_partition("dirichlet:0.1").unwrap();
        assert_eq!((one.partition(), one.partitions.len()), (Partition::Dirichlet { alpha: 0.1 }, 0));
        assert_eq!(parse_partition("quantity_skew:2").unwrap().3, "q2");
        for bad in ["dirichlet:0", "dirichlet:x", "shards:3"] {
            let f = Federated { partitions: vec![bad.into()], ..grid.clone() };
            let r = f.check(Some(100)).unwrap_err();
            assert!(matches!(r.field, "partitions" | "alpha"), "{bad}: {r:?}");
        }
        let unknown = serde_yaml::from_str::<Federated>("clients: 4\nrounds: 1\npartition: iid\naggregator: fedsgd\n");
        assert!(unknown.unwrap_err().to_string().contains("fedsgd"));
    }
}
