//! Batches every task family draws the same way: length-bucketed training batches, padded text
//! inputs, and reproducible caps on fixed splits.

use pelt_core::Inputs;
use pelt_data::{tokenize::pad, Encoding};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

/// First `limit` indices of a fixed (seed 0) shuffle of 0..n: a reproducible cap on a fixed split.
pub fn capped(n: usize, limit: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if limit > 0 && limit < n {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
        idx.truncate(limit);
        idx.sort_unstable();
    }
    idx
}

/// A padded batch of token encodings as the backbone takes it (ids, attention mask, segment ids).
pub fn inputs(batch: &[&Encoding], pad_id: i64, device: Device) -> Inputs {
    let p = pad(batch, pad_id);
    let shape = [p.rows as i64, p.len as i64];
    Inputs::text(
        Tensor::from_slice(&p.ids).view(shape).to_device(device),
        Tensor::from_slice(&p.mask).view(shape).to_device(device),
        Tensor::from_slice(&p.type_ids).view(shape).to_device(device),
    )
}

/// Batches of indices in which lengths are similar: shuffle, sort within windows of 50 batches, cut,
/// shuffle the batches. Padding per batch then stays small without giving up randomness.
pub fn bucketed_batches(lengths: &[usize], batch: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    idx.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in idx.chunks_mut(batch * 50) {
        window.sort_by_key(|&i| lengths[i]);
        batches.extend(window.chunks(batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}
