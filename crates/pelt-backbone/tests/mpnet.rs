//! MPNet against Hugging Face transformers' `MPNetModel` on a tiny random checkpoint (made once by
//! scripts/reference/tiny_mpnet.py): last hidden states at the real positions of a full and a padded row
//! 20 positions long, so that the shared relative-position bias is exercised in its exact and its
//! logarithmic buckets.

use pelt_backbone::Bert;
use pelt_core::{Backbone, Inputs, NoMethod};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn ids(v: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
    let t = rows[0].len() as i64;
    Tensor::from_slice(&rows.concat()).view([-1, t])
}

#[test]
fn tiny_mpnet_matches_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_mpnet");
    let model = Bert::load(&dir, Device::Cpu).unwrap();
    assert_eq!((model.dims().arch.as_str(), model.dims().type_vocab), ("mpnet", 0));
    assert_eq!(model.config().relative_attention_num_buckets, Some(32));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let input_ids = ids(&r["input_ids"]);
    let mask = ids(&r["attention_mask"]);
    let inputs = Inputs::text(input_ids.shallow_clone(), mask.shallow_clone(), input_ids.zeros_like());
    let want: Vec<f32> = serde_json::from_value(r["hidden"].clone()).unwrap();
    let shape: Vec<i64> = serde_json::from_value(r["hidden_shape"].clone()).unwrap();
    let want = Tensor::from_slice(&want).view(shape.as_slice());
    let hidden = tch::no_grad(|| model.forward(&inputs, &NoMethod, false).hidden);
    // Padded positions are not compared: pelt and transformers fill them differently.
    let keep = mask.unsqueeze(-1).to_kind(Kind::Float);
    let diff = ((&hidden - &want) * &keep).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "pelt's MPNet differs from transformers' by {diff}");
    // Without its bias table the model is another one: the check would notice a bias left unused.
    let other = Bert::load(&dir, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (name, mut var) in other.var_store().variables() {
            if name.contains("relative_attention_bias") {
                let _ = var.zero_();
            }
        }
    });
    let unbiased = tch::no_grad(|| other.forward(&inputs, &NoMethod, false).hidden);
    assert!(((&unbiased - &want) * keep).abs().max().double_value(&[]) > 1e-3);
}

#[test]
fn an_mpnet_does_not_warm_start_a_bert2bert() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_mpnet");
    let special = pelt_backbone::seq2seq::SpecialIds { start: 0, eos: 2, pad: 1 };
    let err = pelt_backbone::Bert2Bert::warm_start(&dir, special, 1, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("relative-position bias"), "{err}");
}
