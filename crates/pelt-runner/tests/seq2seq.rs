//! Training a method on an encoder-decoder through the shared seq2seq loss: padding never enters the
//! loss, and LoRA on a small T5 learns to copy its input while the backbone stays frozen.

use pelt_backbone::{seq2seq, T5Config, T5};
use pelt_core::{prepare_training, Backbone, Inputs, Method};
use tch::{nn::OptimizerConfig, Device, Tensor};

/// libtorch's generator is global and tests run in parallel threads: one test at a time, so that each
/// draws its model and LoRA the same way on every run.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn model() -> T5 {
    let config = T5Config {
        vocab_size: 40,
        d_model: 32,
        d_kv: 8,
        d_ff: 64,
        num_layers: 2,
        num_heads: 4,
        relative_attention_num_buckets: 8,
        dropout_rate: 0.0,
        feed_forward_proj: "gated-gelu".into(),
        ..T5Config::default()
    };
    T5::random(&config, 3, Device::Cpu)
}

fn batch(rows: &[Vec<i64>]) -> Inputs {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let pad = |r: &Vec<i64>, v: i64| {
        let mut r = r.clone();
        r.resize(t, v);
        r
    };
    let ids: Vec<i64> = rows.iter().flat_map(|r| pad(r, 0)).collect();
    let mask: Vec<i64> = rows.iter().flat_map(|r| pad(&vec![1; r.len()], 0)).collect();
    let shape = [rows.len() as i64, t as i64];
    let ids = Tensor::from_slice(&ids).view(shape);
    Inputs::text(ids.shallow_clone(), Tensor::from_slice(&mask).view(shape), ids.zeros_like())
}

#[test]
fn padding_never_enters_the_loss() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let (a, b) = (vec![5, 6, 7, 8, 9], vec![10, 11]);
    let lora = pelt_lowrank::Lora::new(pelt_lowrank::config::LoraConfig::default(), m.dims(), Device::Cpu).unwrap();
    // Mean over the 6 + 3 real target positions of the batch = the same weighted mean of each alone.
    let loss = |rows: &[Vec<i64>]| seq2seq::loss(&m, &batch(rows), rows, &lora, false).double_value(&[]);
    let (both, alone_a, alone_b) = (loss(&[a.clone(), b.clone()]), loss(&[a]), loss(&[b]));
    let want = (6.0 * alone_a + 3.0 * alone_b) / 9.0;
    assert!((both - want).abs() < 1e-5, "batched {both} vs per-example {want}");
}

#[test]
fn lora_learns_to_copy_on_a_frozen_t5() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    tch::manual_seed(0);
    let lora = pelt_lowrank::Lora::new(
        pelt_lowrank::config::LoraConfig { r: 8, dropout: 0.0, ..Default::default() },
        m.dims(),
        Device::Cpu,
    )
    .unwrap();
    let trainable = prepare_training(&m, &lora);
    assert!(trainable.iter().all(|(n, _)| n.starts_with("method.")), "the backbone stays frozen");
    let frozen: std::collections::BTreeMap<String, Tensor> =
        m.var_store().variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let mut opt = tch::nn::Adam::default().build(lora.var_store(), 1e-2).unwrap();
    let rows: Vec<Vec<i64>> = (0..16).map(|i| (0..5).map(|j| 2 + (i * 7 + j * 3) % 38).collect()).collect();
    let inputs = batch(&rows);
    let first = seq2seq::loss(&m, &inputs, &rows, &lora, true);
    let start = first.double_value(&[]);
    let mut last = start;
    for _ in 0..60 {
        let l = seq2seq::loss(&m, &inputs, &rows, &lora, true);
        opt.backward_step(&l);
        last = l.double_value(&[]);
    }
    assert!(last < 0.5 * start, "copy loss went from {start} to {last}");
    let now = m.var_store().variables();
    for (name, before) in &frozen {
        assert_eq!((before - &now[name]).abs().max().double_value(&[]), 0.0, "{name} moved");
    }
    // The trained LoRA decodes: greedy output starts with the start token and has the length limit.
    let out = seq2seq::generate(
        &m,
        &batch(&rows[..2]),
        &lora,
        &pelt_backbone::Generation {
            max_new_tokens: 6,
            num_beams: 1,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
            incremental: true,
        },
    );
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|s| s[0] == 0 && s.len() <= 7));
}
