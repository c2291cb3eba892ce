//! The shared conformance suite for the mixtures, on a tiny random BERT (d = 16, L = 2).

use pelt_adapters::config::ParallelConfig;
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method};
use pelt_mixtures::{mam::MamConfig, Mam};
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
        prefix: PrefixConfig { length: 4, mid_dim: 8 },
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
