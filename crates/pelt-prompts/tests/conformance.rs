//! The shared conformance suite for the prompt methods, on a tiny random BERT (d = 16, L = 2, 2 heads,
//! 64 positions), plus prefix folding and the vocabulary init.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, NoMethod};
use pelt_prompts::{
    config::{DeepPromptConfig, PrefixConfig, PromptConfig, PromptInit},
    DeepPrompt, PrefixTuning, PromptTuning,
};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

#[test]
fn prompt_tuning_conforms() {
    for init in [PromptInit::Vocab, PromptInit::Random] {
        let config = PromptConfig { length: 3, init };
        testkit::run_conformance(
            &backbone,
            &|d: &BackboneDims| -> Box<dyn Method> {
                Box::new(PromptTuning::new(config.clone(), d, Device::Cpu).unwrap())
            },
            3 * 16,
        );
    }
}

#[test]
fn prefix_tuning_conforms() {
    // P = 4, m = 8: embeddings 4·16, MLP 16·8 + 8 and 8·64 + 64 (L·2·d = 64).
    let config = PrefixConfig { length: 4, mid_dim: 8 };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(PrefixTuning::new(config.clone(), d, Device::Cpu).unwrap()) },
        64 + (128 + 8) + (512 + 64),
    );
}

#[test]
fn deep_prompt_conforms() {
    let config = DeepPromptConfig { length: 5, ..DeepPromptConfig::default() };
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(DeepPrompt::new(config.clone(), d, Device::Cpu).unwrap()) },
        5 * 64,
    );
}

#[test]
fn folded_prefix_gives_identical_outputs() {
    let b = backbone();
    let d = b.dims().clone();
    let m = PrefixTuning::new(PrefixConfig { length: 4, mid_dim: 8 }, &d, Device::Cpu).unwrap();
    let inputs = testkit::sample_inputs(&d);
    let before = tch::no_grad(|| b.forward(&inputs, &m, false));
    m.fold();
    let after = tch::no_grad(|| b.forward(&inputs, &m, false));
    let diff = (&before.hidden - &after.hidden).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "folding changed the output by {diff}");
    // The prefix does change the output against the bare backbone.
    let bare = tch::no_grad(|| b.forward(&inputs, &NoMethod, false));
    assert!((&after.hidden - &bare.hidden).abs().max().double_value(&[]) > 1e-3);
}

#[test]
fn prompt_configs_refuse_bad_values() {
    let dims = Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone();
    testkit::check_config::<PromptConfig>(
        &dims,
        &[("length: 0", "length"), ("length: 1000", "length"), ("tokens: 4", "tokens")],
    );
    testkit::check_config::<PrefixConfig>(&dims, &[("length: 0", "length"), ("mid_dim: 0", "mid_dim")]);
    testkit::check_config::<DeepPromptConfig>(&dims, &[("length: -1", "length"), ("init_std: 0", "init_std")]);
}
