//! The ViT against Hugging Face transformers' `ViTModel` on a tiny random checkpoint (made once by
//! scripts/reference/tiny_vit.py), and HF-style folders written and read back.

use pelt_backbone::{Vit, VitConfig};
use pelt_core::{Backbone, Inputs, NoMethod};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The reference script's images: pixel (b, c, y, x) = sin(0.37·(b + 1) + 0.11·c + 0.05·(y·W + x)).
fn pattern(batch: i64, channels: i64, size: i64) -> Tensor {
    let mut v = Vec::new();
    for b in 0..batch {
        for c in 0..channels {
            for i in 0..size * size {
                v.push((0.37 * (b + 1) as f64 + 0.11 * c as f64 + 0.05 * i as f64).sin() as f32);
            }
        }
    }
    Tensor::from_slice(&v).view([batch, channels, size, size])
}

#[test]
fn tiny_vit_matches_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_vit");
    let model = Vit::load(&dir, Device::Cpu).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let shape: Vec<i64> = reference["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let want: Vec<f32> =
        reference["last_hidden_state"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let want = Tensor::from_slice(&want).view(shape.as_slice());
    let c = model.config();
    let out =
        tch::no_grad(|| model.forward(&Inputs::images(pattern(2, c.num_channels, c.image_size)), &NoMethod, false));
    assert_eq!(out.hidden.size(), shape, "class token + 4 patches");
    let diff = (&out.hidden - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "pelt's ViT differs from transformers' by {diff}");
    assert_eq!(out.inserted, (1, 0));
    assert_eq!(out.mask.sum(Kind::Int64).int64_value(&[]), 2 * 5);
}

#[test]
fn vit_folders_round_trip_with_the_classification_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let config = VitConfig::tiny();
    let model = Vit::random(&config, 3, Device::Cpu);
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    // ViTForImageClassification checkpoints prefix every tensor with `vit.` and add a classifier.
    let mut tensors: Vec<(String, Tensor)> =
        model.var_store().variables().into_iter().map(|(n, t)| (format!("vit.{n}"), t)).collect();
    tensors.push(("classifier.weight".into(), Tensor::zeros([10, 16], (Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&tensors, dir.path().join("model.safetensors")).unwrap();
    let loaded = Vit::load(dir.path(), Device::Cpu).unwrap();
    let px = Inputs::images(pattern(3, 1, 8));
    let a = tch::no_grad(|| model.forward(&px, &NoMethod, false)).hidden;
    let b = tch::no_grad(|| loaded.forward(&px, &NoMethod, false)).hidden;
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
    assert_eq!(loaded.dims().positions, 5);
    assert_eq!(loaded.dims().image.map(|i| i.patches()), Some(4));
}

#[test]
fn bad_vit_configs_are_refused_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (VitConfig { image_size: 10, ..VitConfig::tiny() }, "not a multiple of patch_size"),
        (VitConfig { model_type: "bert".into(), ..VitConfig::tiny() }, "is not `vit`"),
        (VitConfig { hidden_act: "swish".into(), ..VitConfig::tiny() }, "hidden_act `swish`"),
    ];
    for (config, what) in cases {
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        let err = VitConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains("config.json"), "{err}");
    }
}
