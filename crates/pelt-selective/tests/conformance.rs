//! The shared conformance suite for the selective methods, on a tiny random BERT.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method};
use pelt_selective::config::{BitFitConfig, LnTuningConfig, NoConfig, RaftConfig};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

#[test]
fn full_fine_tuning_trains_every_weight() {
    let c = BertConfig::tiny();
    let (h, i, l) = (c.hidden_size, c.intermediate_size, c.num_hidden_layers);
    let expected = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h
        + 2 * h
        + l * (4 * (h * h + h) + 2 * h * i + i + h + 4 * h);
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> { Box::new(pelt_selective::full(NoConfig {}, d, Device::Cpu).unwrap()) },
        expected,
    );
}

#[test]
fn head_only_trains_nothing_in_the_backbone() {
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> {
            Box::new(pelt_selective::head_only(NoConfig {}, d, Device::Cpu).unwrap())
        },
        0,
    );
}

#[test]
fn bitfit_trains_biases_only() {
    // d = 16, d_ff = 32, L = 2: embedding LN bias 16; per layer q,k,v,o 4·16 + intermediate 32 +
    // output 16 + two LN biases 32 = 144.
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> {
            Box::new(pelt_selective::bitfit(BitFitConfig {}, d, Device::Cpu).unwrap())
        },
        16 + 2 * 144,
    );
}

#[test]
fn ln_tuning_trains_layer_norms_only() {
    // d = 16, L = 2: two LayerNorms (gain + bias) per layer, 2·4·16 = 128, and the embeddings' 32.
    for (embeddings, expected) in [(true, 128 + 32), (false, 128)] {
        testkit::run_conformance(
            &backbone,
            &move |d: &BackboneDims| -> Box<dyn Method> {
                Box::new(pelt_selective::ln_tuning(LnTuningConfig { embeddings }, d, Device::Cpu).unwrap())
            },
            expected,
        );
    }
}

#[test]
fn raft_tunes_rational_coefficients() {
    // Six numerator and four denominator coefficients per layer, L = 2.
    testkit::run_conformance(
        &backbone,
        &|d: &BackboneDims| -> Box<dyn Method> {
            Box::new(pelt_selective::Raft::new(RaftConfig::default(), d, Device::Cpu).unwrap())
        },
        2 * 10,
    );
}

#[test]
fn configs_refuse_unknown_fields() {
    let dims = Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone();
    testkit::check_config::<NoConfig>(&dims, &[("lr: 3", "lr")]);
    testkit::check_config::<BitFitConfig>(&dims, &[("only: [query]", "only")]);
    testkit::check_config::<LnTuningConfig>(&dims, &[("gain: 1", "gain")]);
    testkit::check_config::<RaftConfig>(&dims, &[("fit_bound: 0", "fit_bound"), ("degree: 3", "degree")]);
}
