//! Splitting a task's training examples over simulated clients, as federated studies do: IID, label
//! skew by a Dirichlet draw per class (FedPETuning and FedNLP: for every class, the clients' shares of
//! its examples ~ Dir(α·1); small α gives each client few classes), or quantity skew (the clients' sizes
//! ~ Dir(β·1), labels IID). Regression tasks are split on score bins (quintiles) in place of classes.
//! Every split is a function of its seed.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

/// Draws from Dir(α·1) of dimension `n` (normalised Gamma(α, 1) draws).
fn dirichlet(n: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let gamma = Gamma::new(alpha, 1.0).expect("alpha is checked positive");
    let draws: Vec<f64> = (0..n).map(|_| gamma.sample(rng).max(1e-300)).collect();
    let sum: f64 = draws.iter().sum();
    draws.into_iter().map(|d| d / sum).collect()
}

/// Cuts `members` (already shuffled) into consecutive runs of the given `shares` (summing to 1).
fn cut(members: &[usize], shares: &[f64]) -> Vec<Vec<usize>> {
    let n = members.len();
    let mut out = Vec::with_capacity(shares.len());
    let (mut start, mut cumulative) = (0usize, 0.0);
    for (i, s) in shares.iter().enumerate() {
        cumulative += s;
        let end = if i + 1 == shares.len() { n } else { ((cumulative * n as f64).round() as usize).clamp(start, n) };
        out.push(members[start..end].to_vec());
        start = end;
    }
    out
}

/// The clients' shards of `n` examples (positions 0..n) with IID labels.
pub fn iid(n: usize, clients: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    let mut shards = vec![Vec::new(); clients];
    for (j, i) in idx.into_iter().enumerate() {
        shards[j % clients].push(i);
    }
    shards
}

/// Label skew: for each class, its examples (positions into `labels`) go to the clients in shares
/// drawn from Dir(α·1). Drawn again (up to 100 times, then kept) until every client has at least one
/// example, as the FedNLP partitioner redraws small clients.
pub fn dirichlet_labels(labels: &[usize], clients: usize, alpha: f64, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut shards = Vec::new();
    for _ in 0..100 {
        shards = vec![Vec::new(); clients];
        for c in 0..classes {
            let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            members.shuffle(&mut rng);
            let shares = dirichlet(clients, alpha, &mut rng);
            for (k, part) in cut(&members, &shares).into_iter().enumerate() {
                shards[k].extend(part);
            }
        }
        if shards.iter().all(|s| !s.is_empty()) {
            break;
        }
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    shards
}

/// Quantity skew: the clients' sizes in shares drawn from Dir(β·1) (every client at least one
/// example), the examples themselves shuffled.
pub fn quantity_skew(n: usize, clients: usize, beta: f64, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    // One example each first, the rest by the drawn shares.
    let shares = dirichlet(clients, beta, &mut rng);
    let mut shards: Vec<Vec<usize>> = idx[..clients].iter().map(|&i| vec![i]).collect();
    for (k, part) in cut(&idx[clients..], &shares).into_iter().enumerate() {
        shards[k].extend(part);
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    shards
}

/// Score bins for partitioning a regression task: quintiles of the training scores (bin 0..5).
pub fn score_bins(scores: &[f64]) -> Vec<usize> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let edges: Vec<f64> = (1..5).map(|q| sorted[(q * sorted.len() / 5).min(sorted.len().saturating_sub(1))]).collect();
    scores.iter().map(|s| edges.iter().filter(|&&e| *s >= e).count()).collect()
}

/// Mean over clients of the total-variation distance between a client's label distribution and the
/// global one: 0 for identical mixes, towards 1 as clients hold single classes.
pub fn mean_tv_distance(labels: &[usize], shards: &[Vec<usize>]) -> f64 {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let hist = |idx: &mut dyn Iterator<Item = usize>| {
        let mut h = vec![0.0; classes];
        let mut n = 0.0;
        for i in idx {
            h[labels[i]] += 1.0;
            n += 1.0;
        }
        h.iter().map(|c| c / f64::max(n, 1.0)).collect::<Vec<f64>>()
    };
    let global = hist(&mut (0..labels.len()));
    let tv: Vec<f64> = shards
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| 0.5 * hist(&mut s.iter().copied()).iter().zip(&global).map(|(a, b)| (a - b).abs()).sum::<f64>())
        .collect();
    tv.iter().sum::<f64>() / tv.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<usize> {
        (0..2000).map(|i| (i * 7 + i / 3) % 2).collect()
    }

    fn histograms(labels: &[usize], shards: &[Vec<usize>]) -> Vec<[usize; 2]> {
        shards
            .iter()
            .map(|s| {
                s.iter().fold([0, 0], |mut h, &i| {
                    h[labels[i]] += 1;
                    h
                })
            })
            .collect()
    }

    fn is_partition(shards: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "every example in exactly one shard");
        assert!(shards.iter().all(|s| !s.is_empty()), "no empty client");
    }

    #[test]
    fn dirichlet_shards_repeat_with_the_seed_and_skew_with_alpha() {
        let labels = labels();
        let a = dirichlet_labels(&labels, 20, 1.0, 7);
        is_partition(&a, labels.len());
        assert_eq!(histograms(&labels, &a), histograms(&labels, &dirichlet_labels(&labels, 20, 1.0, 7)));
        assert_ne!(histograms(&labels, &a), histograms(&labels, &dirichlet_labels(&labels, 20, 1.0, 8)));
        // Heterogeneity by α, averaged over seeds: 0.1 far more skewed than 10, IID near none.
        let tv = |alpha: f64| {
            (0..5).map(|s| mean_tv_distance(&labels, &dirichlet_labels(&labels, 20, alpha, s))).sum::<f64>() / 5.0
        };
        let (skewed, middle, even) = (tv(0.1), tv(1.0), tv(10.0));
        let iid_tv = mean_tv_distance(&labels, &iid(labels.len(), 20, 1));
        // (Two balanced classes: a client holding one class is 0.5 from the global mix.)
        assert!(
            skewed > 0.35 && skewed > 1.5 * middle && middle > 2.0 * even && even > iid_tv,
            "{skewed} {middle} {even} {iid_tv}"
        );
    }

    #[test]
    fn iid_and_quantity_skew_are_partitions_and_quantity_skew_moves_sizes_only() {
        let labels = labels();
        let shards = iid(labels.len(), 7, 3);
        is_partition(&shards, labels.len());
        let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        let q = quantity_skew(labels.len(), 10, 0.5, 3);
        is_partition(&q, labels.len());
        let sizes: Vec<usize> = q.iter().map(Vec::len).collect();
        assert!(sizes.iter().max().unwrap() > &(3 * sizes.iter().min().unwrap()), "{sizes:?}");
        assert_eq!(q, quantity_skew(labels.len(), 10, 0.5, 3));
    }

    #[test]
    fn score_bins_are_quintiles() {
        let scores: Vec<f64> = (0..100).map(|i| i as f64 / 20.0).collect();
        let bins = score_bins(&scores);
        for b in 0..5 {
            assert_eq!(bins.iter().filter(|&&x| x == b).count(), 20);
        }
    }
}
