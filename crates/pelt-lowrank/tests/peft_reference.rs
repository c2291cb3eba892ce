//! pelt's DoRA, VeRA, LoHa, LoKr, (IA)³ and OFT against Python peft on a tiny random BERT (the numbers come from
//! scripts/reference/peft_methods.py and are committed in tests/data/peft/): the same adapter values,
//! the same inputs, the last hidden states within 1e-5.

use pelt_backbone::Bert;
use pelt_core::{Backbone, Inputs, Method};
use pelt_lowrank::{config::VeraConfig, Vera};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft")
}

/// The method's config as the reference script wrote it for pelt.
fn config(method: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(data().join("reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(reference["methods"][method]["pelt"].clone()).unwrap()
}

/// Loads the adapter's values into `method` (every variable must be in the file) and returns peft's
/// output beside pelt's on the file's inputs.
fn compare(bert: &Bert, method: &dyn Method, file: &HashMap<String, Tensor>) -> f64 {
    tch::no_grad(|| {
        for (name, mut var) in method.var_store().variables() {
            let value = file.get(&name).unwrap_or_else(|| panic!("{}: `{name}` not in the reference", method.name()));
            assert_eq!(value.size(), var.size(), "{name}");
            var.copy_(value);
        }
    });
    let ids = &file["input_ids"];
    let inputs = Inputs::text(ids.shallow_clone(), file["attention_mask"].shallow_clone(), ids.zeros_like());
    let out = tch::no_grad(|| bert.forward(&inputs, method, false));
    // Padded positions are not compared: pelt and transformers fill them differently.
    let keep = file["attention_mask"].unsqueeze(-1).to_kind(tch::Kind::Float);
    ((out.hidden - &file["output"]) * keep).abs().max().double_value(&[])
}

fn tensors(method: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(data().join(format!("{method}.safetensors"))).unwrap().into_iter().collect()
}

#[test]
fn dora_loha_lokr_ia3_and_oft_match_peft() {
    let bert = Bert::load(&data().join("bert"), Device::Cpu).unwrap();
    let entries = pelt_lowrank::methods();
    let cases = [
        ("dora", "dora"),
        ("loha", "loha"),
        ("lokr", "lokr"),
        ("lokr_both", "lokr"),
        ("ia3", "ia3"),
        ("oft", "oft"),
        ("oft_exact", "oft"),
    ];
    for (method, entry) in cases {
        let entry = entries.iter().find(|e| e.info.name == entry).unwrap();
        let m = (entry.build)(&config(method), bert.dims(), Device::Cpu).unwrap();
        m.init_from(&bert);
        let mut file = tensors(method);
        if method == "oft_exact" {
            // peft's exact Cayley transform is (I − Q)(I + Q)⁻¹, the paper's (pelt's) (I + Q)(I − Q)⁻¹.
            for (name, t) in file.iter_mut() {
                if name.ends_with("oft_r") {
                    *t = -&*t;
                }
            }
        }
        let gap = compare(&bert, m.as_ref(), &file);
        assert!(gap < 1e-5, "{method}: pelt differs from peft by {gap}");
    }
}

#[test]
fn vera_matches_peft_with_peft_shared_pair() {
    let bert = Bert::load(&data().join("bert"), Device::Cpu).unwrap();
    let config: VeraConfig = serde_yaml::from_value(config("vera")).unwrap();
    let m = Vera::new(config, bert.dims(), Device::Cpu).unwrap();
    let file = tensors("vera");
    // peft draws the pair with torch's generator, pelt with its own: take peft's.
    let (mut a, mut b) = m.shared();
    tch::no_grad(|| {
        a.copy_(&file["shared.a"]);
        b.copy_(&file["shared.b"]);
    });
    let gap = compare(&bert, &m, &file);
    assert!(gap < 1e-5, "vera: pelt differs from peft by {gap}");
}
