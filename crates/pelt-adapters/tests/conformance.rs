//! The shared conformance suite for the adapters, on a tiny random BERT (d = 16, d_ff = 32, L = 2).

use pelt_adapters::{
    config::{AdapterBiasConfig, BottleneckConfig, ParallelConfig, Pruning, SparseConfig},
    AdapterBias, ParallelAdapter, SequentialAdapter, SparseAdapter,
};
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, Site, Width};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

fn dims() -> BackboneDims {
    Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone()
}

fn houlsby(config: BottleneckConfig) -> impl Fn(&BackboneDims) -> Box<dyn Method> {
    move |d: &BackboneDims| -> Box<dyn Method> {
        Box::new(SequentialAdapter::houlsby(config.clone(), d, Device::Cpu).unwrap())
    }
}

#[test]
fn houlsby_default_conforms() {
    // m = 8, two sites: 2·2·(2·16·8 + 16 + 8) = 1120, plus LayerNorms 2·4·16 = 128.
    let config = BottleneckConfig { bottleneck: 8.into(), ..BottleneckConfig::default() };
    testkit::run_conformance(&backbone, &houlsby(config), 1120 + 128);
}

#[test]
fn houlsby_ffn_only_without_layer_norm_conforms() {
    let config = BottleneckConfig {
        bottleneck: 4.into(),
        sites: vec![Site::FfnOutput],
        train_layer_norm: false,
        ..BottleneckConfig::default()
    };
    testkit::run_conformance(&backbone, &houlsby(config), 2 * (2 * 16 * 4 + 16 + 4));
}

#[test]
fn pfeiffer_conforms() {
    // One adapter per layer after the FFN, LayerNorms frozen: 2·(2·16·4 + 16 + 4).
    let config = BottleneckConfig { bottleneck: 4.into(), ..BottleneckConfig::pfeiffer() };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> {
            Box::new(SequentialAdapter::pfeiffer(config.clone(), d, Device::Cpu).unwrap())
        },
        2 * (2 * 16 * 4 + 16 + 4),
    );
}

#[test]
fn parallel_adapters_conform() {
    for (config, sites) in [
        (ParallelConfig { bottleneck: Width::Fixed(4), ..ParallelConfig::default() }, 1),
        (ParallelConfig { bottleneck: Width::Fixed(4), ..ParallelConfig::scaled() }, 1),
        (
            ParallelConfig {
                bottleneck: Width::Fixed(4),
                sites: vec![Site::AttentionOutput, Site::FfnOutput],
                ..Default::default()
            },
            2,
        ),
    ] {
        testkit::run_conformance(
            &backbone,
            &|d: &BackboneDims| -> Box<dyn Method> {
                Box::new(ParallelAdapter::scaled(config.clone(), d, Device::Cpu).unwrap())
            },
            2 * sites * (2 * 16 * 4 + 16 + 4),
        );
    }
}

#[test]
fn adapter_bias_conforms() {
    // Per layer: v (16) + α over the FFN's intermediate activation (32 + 1); LayerNorms: the
    // embeddings' and each layer's FFN output one, 3·2·16.
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> {
            Box::new(AdapterBias::new(AdapterBiasConfig::default(), d, Device::Cpu).unwrap())
        },
        2 * (16 + 33) + 3 * 32,
    );
    // After attention as well, LayerNorms frozen: α reads the attention context (16 wide).
    let config = AdapterBiasConfig { sites: vec![Site::AttentionOutput, Site::FfnOutput], train_layer_norm: false };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(AdapterBias::new(config.clone(), d, Device::Cpu).unwrap()) },
        2 * ((16 + 17) + (16 + 33)),
    );
}

#[test]
fn sparse_adapters_conform_and_keep_pruned_weights_at_zero() {
    // m = 8, two sites, 2 layers: 4 adapters of 2·16·8 = 256 weights, 1024 in all; 3/4 pruned keeps
    // 256; biases 4·(16 + 8) = 96; LayerNorms 128.
    for pruning in [Pruning::Snip, Pruning::Random, Pruning::Magnitude] {
        let config = SparseConfig {
            adapter: BottleneckConfig { bottleneck: 8.into(), ..BottleneckConfig::default() },
            sparsity: 0.75,
            pruning,
            ..SparseConfig::default()
        };
        testkit::run_conformance(
            &backbone,
            &|d: &BackboneDims| -> Box<dyn Method> {
                Box::new(SparseAdapter::sparse(config.clone(), d, Device::Cpu).unwrap())
            },
            256 + 96 + 128,
        );
    }
}

#[test]
fn large_sparse_keeps_the_dense_budget() {
    // Twice the bottleneck at half the density keeps as many weights as the dense adapter.
    let d = dims();
    let dense = SequentialAdapter::houlsby(BottleneckConfig::default(), &d, Device::Cpu).unwrap();
    let large = SparseAdapter::large(SparseConfig::large(), &d, Device::Cpu).unwrap();
    let weights = |m: i64| d.layers * 2 * 2 * d.hidden * m;
    assert_eq!(SparseAdapter::kept(weights(128), 0.5), weights(64));
    // Only the biases of the wider bottleneck differ.
    assert_eq!(large.formula_params(&d) - dense.formula_params(&d), d.layers * 2 * 64);
}

#[test]
fn magnitude_pruning_keeps_the_largest_weights() {
    let d = dims();
    let config = SparseConfig { pruning: Pruning::Magnitude, sparsity: 0.5, ..SparseConfig::default() };
    let m = SparseAdapter::sparse(config, &d, Device::Cpu).unwrap();
    let vars = m.var_store().variables();
    let (mut kept_min, mut pruned_max) = (f64::INFINITY, 0.0f64);
    for (name, keep) in m.masks() {
        let w = vars[&name].abs();
        kept_min = kept_min.min(w.masked_select(&keep).min().double_value(&[]));
        pruned_max = pruned_max.max(w.masked_select(&keep.logical_not()).max().double_value(&[]));
    }
    // Pruned entries are zeroed, so "kept are the largest" shows as: every kept weight is nonzero
    // (the truncated normal draws none at zero) and every pruned one is zero.
    assert!(kept_min > 0.0, "a kept weight is zero");
    assert_eq!(pruned_max, 0.0, "a pruned weight is not zero");
}

#[test]
fn adapter_configs_refuse_bad_values() {
    let dims = dims();
    testkit::check_config::<BottleneckConfig>(
        &dims,
        &[
            ("bottleneck: 0", "bottleneck"),
            ("sites: [query]", "sites"),
            ("sites: []", "sites"),
            ("sites: [ffn_output, ffn_output]", "sites"),
            ("init_std: -1", "init_std"),
            ("dropout: 1.5", "dropout"),
            ("reduction: 16", "reduction"),
        ],
    );
    testkit::check_config::<ParallelConfig>(
        &dims,
        &[("scale: 0", "scale"), ("bottleneck: 1000", "bottleneck"), ("sites: [value]", "sites")],
    );
    testkit::check_config::<AdapterBiasConfig>(&dims, &[("sites: [key]", "sites"), ("alpha: 1", "alpha")]);
    testkit::check_config::<SparseConfig>(
        &dims,
        &[
            ("sparsity: 1", "sparsity"),
            ("adapter: {bottleneck: 0}", "adapter.bottleneck"),
            ("prune: snip", "prune"),
            ("snip_examples: 0", "snip_examples"),
        ],
    );
}
