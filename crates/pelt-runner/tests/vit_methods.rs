//! Every registered method on a ViT: site-based methods attach to the ViT's sites unchanged, so each
//! one must pass the same conformance suite there as on BERT (the multi-task ones also on a target
//! after two sources).

use pelt_backbone::{Vit, VitConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, MethodEntry};
use tch::Device;

/// A small ViT at which every method's defaults are valid: d = 128 (MAM's adapter bottleneck of 512 must
/// be at most 4d), 16 × 16 RGB images in 2 × 2 patches (64 patches + the class token, so prompts of up to
/// 32 positions fit).
fn config() -> VitConfig {
    VitConfig {
        hidden_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 256,
        image_size: 16,
        patch_size: 2,
        num_channels: 3,
        ..VitConfig::default()
    }
}

fn backbone() -> Box<dyn Backbone> {
    Box::new(Vit::random(&config(), 5, Device::Cpu))
}

fn entries() -> Vec<MethodEntry> {
    [
        pelt_selective::methods(),
        pelt_adapters::methods(),
        pelt_lowrank::methods(),
        pelt_prompts::methods(),
        pelt_mixtures::methods(),
    ]
    .concat()
}

fn build(entry: &MethodEntry, dims: &BackboneDims, sources: usize) -> Box<dyn Method> {
    let mut m = (entry.build)(&serde_yaml::Value::Null, dims, Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: defaults do not build on a ViT: {e}", entry.info.name));
    if sources > 0 {
        m.begin_sources(sources).unwrap();
        m.begin_target().unwrap();
    }
    m
}

#[test]
fn every_method_conforms_on_a_vit() {
    let dims = config().dims();
    let mut names = Vec::new();
    for entry in entries() {
        let routed = build(&entry, &dims, 0).routes_tasks();
        for sources in if routed { vec![0, 2] } else { vec![0] } {
            // The parameter formulas are checked against hand-written counts on BERT; here the method's
            // own formula must still match its stores on the ViT's sizes.
            let expected = build(&entry, &dims, sources).formula_params(&dims);
            testkit::run_conformance(&backbone, &|d: &BackboneDims| build(&entry, d, sources), expected);
        }
        names.push(entry.info.name);
    }
    for name in ["lora", "houlsby", "bitfit", "vpt_shallow", "vpt_deep", "kadaptation", "prefix_tuning"] {
        assert!(names.contains(&name), "{name} missing");
    }
}
