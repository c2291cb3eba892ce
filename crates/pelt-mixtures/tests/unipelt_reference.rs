//! pelt's UniPELT gates against UniPELT's own gated LoRA (`lora_layers.py`'s `LoRA_Linear`) and gated adapter
//! (`transformers/adapters/modeling.py`'s `Adapter`) from morningmoni/UniPELT, on fixed weights. The numbers
//! come from scripts/reference/unipelt_gates.py, run once on a checkout of that repository, and are committed
//! in tests/data/unipelt/; the test never runs Python. The reference averages each gate over every position it
//! is given: on 7 positions of which pelt is told the last 2 are padding, `gate_pooling: all_positions` must
//! match it, and the default `real_tokens` must match it on the first 5 alone.

use pelt_adapters::config::BottleneckConfig;
use pelt_backbone::BertConfig;
use pelt_core::{Attachment, Delta, Method, Scale, Site};
use pelt_lowrank::config::LoraConfig;
use pelt_mixtures::{
    unipelt::{GatePooling, UniPeltConfig},
    UniPelt,
};
use pelt_prompts::config::PrefixConfig;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn reference() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unipelt/reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

/// A UniPELT on the tiny BERT (d = 16) with the reference's parts in every layer: LoRA r 2 on query and
/// value sharing one gated LoRA's values, an adapter of m = 4, and every gate set as its part's.
fn unipelt(pooling: GatePooling, file: &HashMap<String, Tensor>) -> UniPelt {
    let dims = BertConfig::tiny().dims();
    let config = UniPeltConfig {
        prefix: PrefixConfig { length: 2, mid_dim: 4, ..UniPeltConfig::default().prefix },
        lora: LoraConfig { r: 2, ..UniPeltConfig::default().lora },
        adapter: BottleneckConfig { bottleneck: 4.into(), ..UniPeltConfig::default().adapter },
        gate_pooling: pooling,
    };
    let m = UniPelt::new(config, &dims, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (name, mut var) in m.var_store().variables() {
            let part = |suffix: &str| name.ends_with(suffix);
            let key = if name.starts_with("prefix.") {
                continue;
            } else if name.starts_with("lora.") {
                if part("lora_a") {
                    "lora_a"
                } else {
                    "lora_b"
                }
            } else if name.starts_with("adapter.") {
                match name.rsplit('.').next().unwrap() {
                    "down_weight" => "adapter_down_weight",
                    "down_bias" => "adapter_down_bias",
                    "up_weight" => "adapter_up_weight",
                    _ => "adapter_up_bias",
                }
            } else if name.contains(".adapter.") {
                if part("weight") {
                    "adapter_gate_weight"
                } else {
                    "adapter_gate_bias"
                }
            } else if part("weight") {
                "lora_gate_weight"
            } else {
                "lora_gate_bias"
            };
            let value = &file[key];
            assert_eq!(value.size(), var.size(), "{name} ← {key}");
            var.copy_(value);
        }
    });
    m
}

fn gated(d: Delta) -> Tensor {
    match d.scale {
        Scale::Tensor(g) => d.value * g,
        Scale::Fixed(s) => d.value * s,
    }
}

#[test]
fn unipelt_gates_match_the_reference_code() {
    let file = reference();
    let x = &file["input"];
    // 5 real positions, 2 of padding, in both rows.
    let keep = Tensor::cat(
        &[Tensor::ones([2, 5], (Kind::Int64, Device::Cpu)), Tensor::zeros([2, 2], (Kind::Int64, Device::Cpu))],
        1,
    );
    let gap = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    for (pooling, name, positions) in [(GatePooling::AllPositions, "all", 7), (GatePooling::RealTokens, "real", 5)] {
        let m = unipelt(pooling, &file);
        m.begin_stack(&keep, false);
        for layer in [0usize, 1] {
            for site in [Site::Query, Site::Value] {
                let lora = gated(m.projection(layer, site, x, true).expect("gated LoRA"));
                let got = lora.narrow(1, 0, positions);
                let gap = gap(&got, &file[&format!("lora_delta_{name}")]);
                assert!(gap < 1e-6, "{name}: layer {layer} {site} LoRA off by {gap}");
            }
            let adapter =
                gated(m.residual_sublayer(layer, Site::FfnOutput, &|| x.shallow_clone(), true).expect("adapter"));
            let gap = gap(&adapter.narrow(1, 0, positions), &file[&format!("adapter_delta_{name}")]);
            assert!(gap < 1e-6, "{name}: layer {layer} adapter off by {gap}");
        }
    }
    // The two poolings differ here, or the check could not tell them apart.
    assert!(gap(&file["adapter_gate_all"], &file["adapter_gate_real"]) > 1e-4);
}
