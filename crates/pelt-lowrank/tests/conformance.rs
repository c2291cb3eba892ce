//! The shared conformance suite for the low-rank methods, on a tiny random BERT.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, Site};
use pelt_lowrank::{config::LoraConfig, Lora};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

fn lora(config: LoraConfig) -> impl Fn(&BackboneDims) -> Box<dyn Method> {
    move |d: &BackboneDims| -> Box<dyn Method> { Box::new(Lora::new(config.clone(), d, Device::Cpu).unwrap()) }
}

#[test]
fn lora_query_value_conforms_and_merges() {
    // d = 16, L = 2, r = 4 on query and value: 2 layers · 2 targets · 4·(16 + 16) = 512.
    let config = LoraConfig { r: 4, ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &lora(config), 512);
}

#[test]
fn lora_on_ffn_projections_conforms_and_merges() {
    // intermediate 16 → 32 and output 32 → 16, r = 2: 2 · (2·48 + 2·48) = 384.
    let config = LoraConfig { r: 2, targets: vec![Site::FfnIntermediate, Site::FfnOutput], ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &lora(config), 384);
}

#[test]
fn lora_config_refuses_bad_values() {
    let dims = Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone();
    testkit::check_config::<LoraConfig>(
        &dims,
        &[
            ("r: 0", "r"),
            ("r: 1000", "r"),
            ("alpha: -1", "alpha"),
            ("dropout: 1.0", "dropout"),
            ("targets: [embeddings]", "targets"),
            ("targets: []", "targets"),
            ("rank: 4", "rank"),
        ],
    );
}
