//! The shared conformance suite for the mixtures, on a tiny random BERT (d = 16, L = 2).

use pelt_adapters::config::BottleneckConfig;
use pelt_adapters::config::ParallelConfig;
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method};
use pelt_lowrank::config::LoraConfig;
use pelt_mixtures::{mam::MamConfig, unipelt::UniPeltConfig, Mam, UniPelt};
use pelt_prompts::config::PrefixConfig;
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

#[test]
fn mam_conforms() {
    // Prefix P = 4, m = 8: 4·16 + (16·8 + 8) + (8·64 + 64) = 776; adapter m = 4 beside the FFN:
    // 2·(2·16·4 + 16 + 4) = 296.
    let config = MamConfig {
        prefix: PrefixConfig { length: 4, mid_dim: 8, ..PrefixConfig::default() },
        adapter: ParallelConfig { bottleneck: 4, ..ParallelConfig::scaled() },
    };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(Mam::new(config.clone(), d, Device::Cpu).unwrap()) },
        776 + 296,
    );
}

#[test]
fn mam_config_names_nested_fields() {
    let dims = BertConfig::minilm().dims();
    testkit::check_config::<MamConfig>(
        &dims,
        &[("prefix: {length: 0}", "prefix.length"), ("adapter: {scale: 0}", "adapter.scale"), ("gate: 1", "gate")],
    );
}

fn small_unipelt() -> UniPeltConfig {
    UniPeltConfig {
        prefix: PrefixConfig { length: 4, mid_dim: 8, ..PrefixConfig::default() },
        lora: LoraConfig { r: 2, ..LoraConfig::default() },
        adapter: BottleneckConfig { bottleneck: 4, train_layer_norm: false, ..BottleneckConfig::pfeiffer() },
    }
}

#[test]
fn unipelt_conforms() {
    // Prefix 776 (as MAM's); LoRA r 2 on query and value: 2·2·2·32 = 256; adapter m 4 after the FFN:
    // 2·(2·16·4 + 16 + 4) = 296; gates 2 layers · (query, value, prefix, adapter) · (16 + 1) = 136.
    let config = small_unipelt();
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(UniPelt::new(config.clone(), d, Device::Cpu).unwrap()) },
        776 + 256 + 296 + 136,
    );
}

#[test]
fn unipelt_reports_gate_means_of_the_last_evaluation() {
    let b = backbone();
    let d = b.dims().clone();
    let m = UniPelt::new(small_unipelt(), &d, Device::Cpu).unwrap();
    assert!(m.diagnostics().is_empty(), "no evaluation pass yet");
    let inputs = testkit::sample_inputs(&d);
    tch::no_grad(|| b.forward(&inputs, &m, false));
    let diag: std::collections::HashMap<String, f64> = m.diagnostics().into_iter().collect();
    for name in ["gate_lora", "gate_prefix", "gate_adapter"] {
        let g = diag[name];
        assert!(g > 0.0 && g < 1.0, "{name} = {g}");
    }
    // A training pass, then an evaluation: the means restart rather than mixing both.
    let _ = b.forward(&inputs, &m, true);
    tch::no_grad(|| b.forward(&inputs, &m, false));
    let again: std::collections::HashMap<String, f64> = m.diagnostics().into_iter().collect();
    assert!((again["gate_lora"] - diag["gate_lora"]).abs() < 1e-9, "same weights, same gates");
}

#[test]
fn closing_the_prefix_gate_changes_the_output() {
    // The gate is live: driving its bias to -inf removes the prefix's share of every context vector
    // (the backbone's own tests check the gated attention itself).
    let b = backbone();
    let d = b.dims().clone();
    let m = UniPelt::new(small_unipelt(), &d, Device::Cpu).unwrap();
    let inputs = testkit::sample_inputs(&d);
    let open = tch::no_grad(|| b.forward(&inputs, &m, false));
    for (name, mut var) in m.var_store().variables() {
        if name.contains("gate") && name.contains("prefix") && name.ends_with("bias") {
            tch::no_grad(|| {
                let _ = var.fill_(-1e4);
            });
        }
    }
    // A training pass in between, so that the gate statistics cover only the closed evaluation.
    let _ = b.forward(&inputs, &m, true);
    let closed = tch::no_grad(|| b.forward(&inputs, &m, false));
    let diff = (&open.hidden - &closed.hidden).abs().max().double_value(&[]);
    assert!(diff > 1e-4, "closing the prefix gate changed nothing");
    let diag: std::collections::HashMap<String, f64> = m.diagnostics().into_iter().collect();
    assert!(diag["gate_prefix"] < 1e-6, "{diag:?}");
}
