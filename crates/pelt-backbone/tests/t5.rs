//! T5 against Hugging Face transformers' `T5ForConditionalGeneration` on a tiny random checkpoint (v1.1
//! layout: gated-GELU FFN; made once by scripts/reference/tiny_t5.py): logits, greedy decoding and beam
//! search.

use pelt_backbone::{seq2seq, Generation, T5};
use pelt_core::{Backbone, Inputs, NoMethod};
use std::path::Path;
use tch::{Device, Tensor};

fn reference() -> (T5, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_t5");
    let model = T5::load(&dir, Device::Cpu).unwrap();
    let r = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    (model, r)
}

fn ids(v: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
    let t = rows[0].len() as i64;
    Tensor::from_slice(&rows.concat()).view([-1, t])
}

fn inputs(r: &serde_json::Value) -> Inputs {
    let input_ids = ids(&r["input_ids"]);
    Inputs::text(input_ids.shallow_clone(), ids(&r["attention_mask"]), input_ids.zeros_like())
}

#[test]
fn tiny_t5_logits_match_transformers() {
    let (model, r) = reference();
    let want: Vec<f32> = serde_json::from_value(r["logits"].clone()).unwrap();
    let shape: Vec<i64> = serde_json::from_value(r["logits_shape"].clone()).unwrap();
    let want = Tensor::from_slice(&want).view(shape.as_slice());
    let logits = tch::no_grad(|| {
        let encoded = model.forward(&inputs(&r), &NoMethod, false);
        model.decode(&encoded, &ids(&r["decoder_input_ids"]), &NoMethod, false)
    });
    assert_eq!(logits.size(), shape);
    let diff = (&logits - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "pelt's T5 logits differ from transformers' by {diff}");
    assert_eq!(model.dims().layers, 4, "encoder and decoder layers");
}

#[test]
fn tiny_t5_decodes_as_transformers_greedy_and_beam() {
    let (model, r) = reference();
    let greedy = seq2seq::generate(
        &model,
        &inputs(&r),
        &NoMethod,
        &Generation { max_new_tokens: 8, num_beams: 1, length_penalty: 1.0, no_repeat_ngram: 0, incremental: true },
    );
    let want: Vec<Vec<i64>> = serde_json::from_value(r["greedy"].clone()).unwrap();
    assert_eq!(greedy, want);
    let beam = seq2seq::generate(
        &model,
        &inputs(&r),
        &NoMethod,
        &Generation { max_new_tokens: 8, num_beams: 3, length_penalty: 1.0, no_repeat_ngram: 0, incremental: true },
    );
    let want: Vec<Vec<i64>> = serde_json::from_value(r["beam3"].clone()).unwrap();
    assert_eq!(beam, want);
}
