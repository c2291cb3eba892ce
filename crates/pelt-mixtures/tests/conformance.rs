//! The shared conformance suite for the mixtures, on a tiny random BERT (d = 16, L = 2).

use pelt_adapters::config::BottleneckConfig;
use pelt_adapters::config::ParallelConfig;
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Attachment, Backbone, BackboneDims, Method, PlannerSettings, Site, Width};
use pelt_lowrank::config::LoraConfig;
use pelt_mixtures::{mam::MamConfig, pcg::PcgConfig, unipelt::UniPeltConfig, Mam, Pcg, UniPelt};
use pelt_prompts::config::{PrefixConfig, PrefixInit};
use tch::{Device, Kind, Tensor};

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

#[test]
fn mam_conforms() {
    // Prefix P = 4, m = 8: 4·16 + (16·8 + 8) + (8·64 + 64) = 776; adapter m = 4 beside the FFN:
    // 2·(2·16·4 + 16 + 4) = 296.
    let config = MamConfig {
        prefix: PrefixConfig { length: 4, mid_dim: 8, ..PrefixConfig::default() },
        adapter: ParallelConfig { bottleneck: Width::Fixed(4), ..ParallelConfig::scaled() },
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

#[test]
fn pcg_conforms_and_stays_in_the_encoder() {
    // On an encoder every layer is the encoder's, so PCG's task prefix is MAM's parts: prefix P = 4,
    // m = 8: 776 (as MAM's); its adapter at d/2 = 8 beside the FFN: 2·(2·16·8 + 16 + 8) = 560.
    let config =
        PcgConfig { prefix: PrefixConfig { length: 4, mid_dim: 8, ..PrefixConfig::default() }, ..PcgConfig::default() };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(Pcg::new(config.clone(), d, Device::Cpu).unwrap()) },
        776 + 560,
    );
    // On an encoder-decoder (layers 0..2 the encoder's, 2..4 the decoder's) it holds and hooks the
    // encoder's layers only, as the authors' leave_out of the decoder layers does.
    let mut dims = BertConfig::tiny().dims();
    (dims.layers, dims.decoder_layers) = (4, 2);
    let m = Pcg::new(config, &dims, Device::Cpu).unwrap();
    assert_eq!(m.formula_params(&dims), 776 + 560);
    let counted: i64 = m.var_store().trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(counted, 776 + 560);
    let x = Tensor::randn([1, 3, 16], (Kind::Float, Device::Cpu));
    assert!(m.prefix(1, &x, false).is_some() && m.prefix(2, &x, false).is_none());
    assert!(m.sublayer(1, Site::FfnOutput, &x, &x, false).is_some());
    assert!(m.sublayer(3, Site::FfnOutput, &x, &x, false).is_none());
    assert_eq!(m.content_planner(), Some(PlannerSettings::default()));
}

#[test]
fn pcg_config_names_nested_fields() {
    let dims = BertConfig::minilm().dims();
    testkit::check_config::<PcgConfig>(
        &dims,
        &[
            ("prefix: {length: 0}", "prefix.length"),
            ("adapter: {bottleneck: d/0}", "adapter.bottleneck"),
            ("planner: {hidden: 0}", "planner.hidden"),
            ("planner: {lr: 2}", "planner.lr"),
            ("planner: {depth: 2}", "depth"),
        ],
    );
}

fn small_unipelt() -> UniPeltConfig {
    UniPeltConfig {
        prefix: PrefixConfig { length: 4, mid_dim: 8, ..UniPeltConfig::default().prefix },
        lora: LoraConfig { r: 2, ..LoraConfig::default() },
        adapter: BottleneckConfig { bottleneck: 4.into(), train_layer_norm: false, ..BottleneckConfig::pfeiffer() },
        ..UniPeltConfig::default()
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
    // (the backbone's own tests check the gated attention itself). Li & Liang's init: the reference's
    // N(0, 0.02) prefix starts so small that its keys and values are near zero with the gate open too.
    let b = backbone();
    let d = b.dims().clone();
    let config = small_unipelt();
    let config = UniPeltConfig { prefix: PrefixConfig { init: PrefixInit::Random, ..config.prefix }, ..config };
    let m = UniPelt::new(config, &d, Device::Cpu).unwrap();
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

#[test]
fn unipelt_defaults_follow_the_reference_code() {
    let minilm = BertConfig::minilm().dims();
    let config = UniPeltConfig::default();
    // The adapter's reduction factor 16: 24 at MiniLM's d = 384, the paper's 48 at BERT-base's d = 768.
    assert_eq!(config.adapter.bottleneck.resolve(minilm.hidden), 24);
    assert_eq!(config.adapter.bottleneck.resolve(768), 48);
    // The prefix as `BertModel.init_weights()` draws it in the reference code: N(0, 0.02), zero biases.
    tch::manual_seed(0);
    let m = UniPelt::new(config, &minilm, Device::Cpu).unwrap();
    let mut seen = 0;
    for (name, var) in m.var_store().variables() {
        let Some(part) = name.strip_prefix("prefix.") else { continue };
        seen += 1;
        if part.ends_with("bias") {
            assert_eq!(var.abs().max().double_value(&[]), 0.0, "{name} starts at zero");
        } else {
            let std = var.std(true).double_value(&[]);
            assert!((std - 0.02).abs() < 1e-3, "{name}: std {std}, expected 0.02");
        }
    }
    assert_eq!(seen, 5, "embedding and the MLP's two weights and biases");
    // Every parameter counted: prefix 10·384 + (384·512 + 512) + (512·4608 + 4608), LoRA r 8 on query
    // and value 6·2·8·768, adapter m = 24 6·(2·384·24 + 384 + 24), gates 6·4·385.
    let prefix = 10 * 384 + (384 * 512 + 512) + (512 * 4608 + 4608);
    let expected = prefix + 6 * 2 * 8 * 768 + 6 * (2 * 384 * 24 + 384 + 24) + 6 * 4 * 385;
    assert_eq!(m.formula_params(&minilm), expected);
    let counted: i64 = m.var_store().trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(counted, expected);
}

/// One example of five tokens, alone and padded to nine positions.
fn example_and_padded() -> (pelt_core::Inputs, pelt_core::Inputs) {
    let ids = tch::Tensor::from_slice(&[5i64, 17, 33, 8, 61]).view([1, 5]);
    let plain = pelt_core::Inputs::text(ids.shallow_clone(), ids.ones_like(), ids.zeros_like());
    let padded_ids = tch::Tensor::cat(&[ids, tch::Tensor::zeros([1, 4], (tch::Kind::Int64, Device::Cpu))], 1);
    let mask = tch::Tensor::cat(
        &[
            tch::Tensor::ones([1, 5], (tch::Kind::Int64, Device::Cpu)),
            tch::Tensor::zeros([1, 4], (tch::Kind::Int64, Device::Cpu)),
        ],
        1,
    );
    let padded = pelt_core::Inputs::text(padded_ids.shallow_clone(), mask, padded_ids.zeros_like());
    (plain, padded)
}

#[test]
fn gate_pooling_over_all_positions_reads_the_padding_and_over_real_tokens_does_not() {
    use pelt_mixtures::unipelt::GatePooling;
    let b = backbone();
    let d = b.dims().clone();
    let build =
        |pooling| UniPelt::new(UniPeltConfig { gate_pooling: pooling, ..small_unipelt() }, &d, Device::Cpu).unwrap();
    let (real, every) = (build(GatePooling::RealTokens), build(GatePooling::AllPositions));
    // The same weights in both (the tests of this binary share libtorch's generator, so a seed would not
    // pin them).
    let from = real.var_store().variables();
    tch::no_grad(|| {
        for (name, mut var) in every.var_store().variables() {
            var.copy_(&from[&name]);
        }
    });
    let (plain, padded) = example_and_padded();
    let run = |m: &UniPelt, x: &pelt_core::Inputs| tch::no_grad(|| b.forward(x, m, false).hidden.narrow(1, 0, 5));
    let gap = |a: &tch::Tensor, b: &tch::Tensor| (a - b).abs().max().double_value(&[]);
    // Same weights, no padding: both poolings see the same positions.
    assert!(gap(&run(&real, &plain), &run(&every, &plain)) < 1e-6);
    // Padding leaves the real-token mean alone and moves the all-position mean (the reference's form).
    assert!(gap(&run(&real, &plain), &run(&real, &padded)) < 1e-5);
    let moved = gap(&run(&every, &plain), &run(&every, &padded));
    assert!(moved > 1e-5, "padding changed nothing under all_positions ({moved})");
}

#[test]
fn mam_glue_is_he_et_al_s_glue_setting() {
    let minilm = BertConfig::minilm().dims();
    let entry = pelt_mixtures::methods().into_iter().find(|e| e.info.name == "mam_glue").expect("registered");
    let m = (entry.build)(&serde_yaml::Value::Null, &minilm, Device::Cpu).unwrap();
    assert_eq!(m.name(), "mam_glue");
    // Prefix P = 16 through an 800-wide MLP to 6 layers' keys and values (4608), adapter m = 16.
    let prefix = 16 * 384 + (384 * 800 + 800) + (800 * 4608 + 4608);
    let expected = prefix + 6 * (2 * 384 * 16 + 384 + 16);
    assert_eq!(m.formula_params(&minilm), expected);
    let counted: i64 = m.var_store().trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(counted, expected);
    let glue = MamConfig::glue();
    assert_eq!((glue.prefix.length, glue.adapter.bottleneck, glue.adapter.scale), (16, Width::Fixed(16), 2.0));
    // The XSum preset keeps its sizes and shares the code's MLP width and bottleneck dropout.
    let xsum = MamConfig::default();
    assert_eq!((xsum.prefix.length, xsum.prefix.mid_dim, xsum.adapter.bottleneck), (30, 800, Width::Fixed(512)));
    assert_eq!((xsum.adapter.dropout, xsum.adapter.dropout_at), (0.1, pelt_adapters::config::DropoutAt::Bottleneck));
}
