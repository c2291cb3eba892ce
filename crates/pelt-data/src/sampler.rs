//! Seeded samplers for the data-size and few-shot protocols.
//!
//! Low-resource (UniPELT, Mao et al. 2022): K training examples drawn from the training pool with the
//! run's seed, a disjoint model-selection set of up to 1,000 examples from the rest of the pool (unless
//! the task has a fixed dev split), the test split untouched. Few-shot (LM-BFF, Gao et al. 2021): k
//! examples per class for training and another k per class for dev.

use crate::{task::Label, DataError, Example, Result};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Indices into the training pool (and into the fixed dev split, if any) chosen for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training examples (indices into the pool).
    pub train: Vec<usize>,
    /// Model-selection examples drawn from the pool (empty when the task's fixed dev is used).
    pub dev_from_train: Vec<usize>,
}

/// Most examples the protocol reserves for model selection.
pub const MAX_DEV: usize = 1000;

/// The UniPELT low-resource split. `k = None` means all training data; then a dev set of
/// min(1000, n/10) is still held out of the pool when the task has no fixed dev.
pub fn low_resource(pool: usize, k: Option<usize>, has_fixed_dev: bool, seed: u64) -> Result<Split> {
    let mut idx: Vec<usize> = (0..pool).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (n_train, n_dev) = match (k, has_fixed_dev) {
        (Some(k), _) if k > pool => {
            return Err(DataError::Sampling(format!("data size {k} exceeds the {pool} training examples")))
        }
        (Some(k), true) => (k, 0),
        (Some(k), false) => (k, MAX_DEV.min(pool - k)),
        (None, true) => (pool, 0),
        (None, false) => {
            let dev = MAX_DEV.min(pool / 10);
            (pool - dev, dev)
        }
    };
    let dev_from_train = idx[n_train..n_train + n_dev].to_vec();
    idx.truncate(n_train);
    Ok(Split { train: idx, dev_from_train })
}

/// k examples per class for training and k more per class for dev (LM-BFF few-shot), seeded.
pub fn k_shot(pool: &[Example], classes: usize, k: usize, seed: u64) -> Result<Split> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split { train: Vec::new(), dev_from_train: Vec::new() };
    for c in 0..classes {
        let mut members: Vec<usize> = (0..pool.len()).filter(|&i| pool[i].label == Label::Class(c)).collect();
        if members.len() < 2 * k {
            return Err(DataError::Sampling(format!(
                "class {c} has {} examples, {k}-shot needs {}",
                members.len(),
                2 * k
            )));
        }
        members.shuffle(&mut rng);
        split.train.extend_from_slice(&members[..k]);
        split.dev_from_train.extend_from_slice(&members[k..2 * k]);
    }
    split.train.shuffle(&mut rng);
    Ok(split)
}

/// A seeded, stratified, fixed three-way split of a whole corpus (for sets that ship without one):
/// within each class, `dev` and `test` fractions go to dev and test, the rest to train.
pub fn stratified_split(labels: &[usize], dev: f64, test: f64, seed: u64) -> [Vec<usize>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut out: [Vec<usize>; 3] = Default::default();
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        members.shuffle(&mut rng);
        let n = members.len();
        let n_test = (n as f64 * test).round() as usize;
        let n_dev = (n as f64 * dev).round() as usize;
        out[2].extend_from_slice(&members[..n_test]);
        out[1].extend_from_slice(&members[n_test..n_test + n_dev]);
        out[0].extend_from_slice(&members[n_test + n_dev..]);
    }
    for part in &mut out {
        part.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn low_resource_is_seeded_disjoint_and_capped() {
        let a = low_resource(5000, Some(100), false, 1).unwrap();
        assert_eq!(a, low_resource(5000, Some(100), false, 1).unwrap());
        assert_ne!(a.train, low_resource(5000, Some(100), false, 2).unwrap().train);
        assert_eq!((a.train.len(), a.dev_from_train.len()), (100, 1000));
        let t: HashSet<_> = a.train.iter().collect();
        assert!(a.dev_from_train.iter().all(|i| !t.contains(i)));
        let small = low_resource(600, Some(500), false, 1).unwrap();
        assert_eq!(small.dev_from_train.len(), 100);
        let all = low_resource(2490, None, false, 3).unwrap();
        assert_eq!((all.train.len(), all.dev_from_train.len()), (2241, 249));
        assert_eq!(low_resource(300, Some(100), true, 1).unwrap().dev_from_train.len(), 0);
        assert!(low_resource(50, Some(100), false, 1).is_err());
    }

    #[test]
    fn k_shot_takes_k_per_class() {
        let pool: Vec<Example> =
            (0..40).map(|i| Example { text_a: i.to_string(), text_b: None, label: Label::Class(i % 2) }).collect();
        let s = k_shot(&pool, 2, 4, 7).unwrap();
        assert_eq!((s.train.len(), s.dev_from_train.len()), (8, 8));
        for part in [&s.train, &s.dev_from_train] {
            assert_eq!(part.iter().filter(|&&i| pool[i].label == Label::Class(1)).count(), 4);
        }
        assert!(k_shot(&pool, 2, 11, 7).is_err());
    }

    #[test]
    fn stratified_split_keeps_class_ratios() {
        let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 4 == 0)).collect();
        let [train, dev, test] = stratified_split(&labels, 0.1, 0.1, 0);
        assert_eq!(train.len() + dev.len() + test.len(), 1000);
        assert_eq!(test.iter().filter(|&&i| labels[i] == 1).count(), 25);
        assert_eq!(stratified_split(&labels, 0.1, 0.1, 0)[2], test);
    }
}
