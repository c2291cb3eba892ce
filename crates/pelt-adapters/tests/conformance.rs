//! The shared conformance suite for the adapters, on a tiny random BERT.

use pelt_adapters::{config::HoulsbyConfig, Houlsby};
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, Site};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

fn houlsby(config: HoulsbyConfig) -> impl Fn(&BackboneDims) -> Box<dyn Method> {
    move |d: &BackboneDims| -> Box<dyn Method> { Box::new(Houlsby::new(config.clone(), d, Device::Cpu).unwrap()) }
}

#[test]
fn houlsby_default_conforms() {
    // d = 16, L = 2, m = 8, two sites: 2·2·(2·16·8 + 16 + 8) = 1120, plus LayerNorms 2·4·16 = 128.
    let config = HoulsbyConfig { bottleneck: 8, ..HoulsbyConfig::default() };
    testkit::run_conformance(&backbone, &houlsby(config), 1120 + 128);
}

#[test]
fn houlsby_ffn_only_without_layer_norm_conforms() {
    let config = HoulsbyConfig {
        bottleneck: 4,
        sites: vec![Site::FfnOutput],
        train_layer_norm: false,
        ..HoulsbyConfig::default()
    };
    testkit::run_conformance(&backbone, &houlsby(config), 2 * (2 * 16 * 4 + 16 + 4));
}

#[test]
fn houlsby_config_refuses_bad_values() {
    let dims = Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone();
    testkit::check_config::<HoulsbyConfig>(
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
}
