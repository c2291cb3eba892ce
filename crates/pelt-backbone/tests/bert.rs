//! BERT loading and behaviour: HF folder round trip on a tiny random model, clear errors, padding
//! invariance, and parity with Hugging Face transformers on the real all-MiniLM-L6-v2.

use pelt_backbone::{head::pool, Bert, BertConfig, Pooling};
use pelt_core::{Backbone, Inputs, NoMethod};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn assets() -> PathBuf {
    std::env::var_os("PELT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"))
}

fn inputs(ids: &[i64], rows: i64) -> Inputs {
    let input_ids = Tensor::from_slice(ids).view([rows, -1]);
    Inputs::text(input_ids.shallow_clone(), input_ids.ne(0).to_kind(Kind::Int64), input_ids.zeros_like())
}

/// Writes `model` as an HF folder (config.json + model.safetensors), optionally with the `bert.`
/// prefix that task checkpoints carry.
fn write_folder(model: &Bert, dir: &Path, prefix: &str) {
    std::fs::write(dir.join("config.json"), serde_json::to_string(model.config()).unwrap()).unwrap();
    let tensors: Vec<(String, Tensor)> =
        model.var_store().variables().into_iter().map(|(n, t)| (format!("{prefix}{n}"), t)).collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
}

#[test]
fn tiny_random_model_round_trips_through_an_hf_folder() {
    let dir = tempfile::tempdir().unwrap();
    let model = Bert::random(&BertConfig::tiny(), 3, Device::Cpu);
    write_folder(&model, dir.path(), "bert.");
    let loaded = Bert::load(dir.path(), Device::Cpu).unwrap();
    let x = inputs(&[5, 6, 7, 8, 9, 10, 0, 0], 2);
    let a = model.forward(&x, &NoMethod, false).hidden;
    let b = loaded.forward(&x, &NoMethod, false).hidden;
    assert_eq!(a.size(), vec![2, 4, 16]);
    assert!(a.allclose(&b, 0.0, 0.0, false));
}

#[test]
fn load_errors_name_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let e = Bert::load(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    let model = Bert::random(&BertConfig::tiny(), 3, Device::Cpu);
    write_folder(&model, dir.path(), "");
    let mut config = BertConfig::tiny();
    config.intermediate_size = 64;
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    let e = Bert::load(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("intermediate.dense") && e.contains("shape"), "{e}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let e = Bert::load(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("t5"), "{e}");
}

#[test]
fn padding_never_changes_real_tokens() {
    let model = Bert::random(&BertConfig::tiny(), 3, Device::Cpu);
    let short = model.forward(&inputs(&[11, 12, 13], 1), &NoMethod, false).hidden;
    let padded = model.forward(&inputs(&[11, 12, 13, 0, 0, 0], 1), &NoMethod, false).hidden;
    let diff = (short - padded.narrow(1, 0, 3)).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "padding changed real-token outputs by {diff}");
}

/// Mean-pooled, normalised sentence embeddings of the model in `dir` against the reference file's
/// (scripts/reference/minilm_embeddings.py), token ids first.
fn matches_sentence_embeddings(dir: &std::path::Path, reference: &str, setup: &str) {
    assert!(dir.join("model.safetensors").is_file(), "{} is missing: run {setup}", dir.display());
    let reference: serde_json::Value = serde_json::from_str(reference).expect("reference json");
    let sentences: Vec<&str> = reference["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let tokenizer = pelt_data::TextTokenizer::load(&dir.join("tokenizer.json"), 128).unwrap();
    let encodings = tokenizer.encode_texts(&sentences).unwrap();
    for (enc, want) in encodings.iter().zip(reference["input_ids"].as_array().unwrap()) {
        let want: Vec<i64> = want.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(enc.ids, want, "token ids differ from the HF tokenizer");
    }
    let refs: Vec<&pelt_data::Encoding> = encodings.iter().collect();
    let padded = pelt_data::tokenize::pad(&refs, tokenizer.pad_id);
    let shape = [padded.rows as i64, padded.len as i64];
    let batch = Inputs::text(
        Tensor::from_slice(&padded.ids).view(shape),
        Tensor::from_slice(&padded.mask).view(shape),
        Tensor::from_slice(&padded.type_ids).view(shape),
    );
    let model = Bert::load(dir, Device::Cpu).unwrap();
    let encoded = tch::no_grad(|| model.forward(&batch, &NoMethod, false));
    let emb = pool(&encoded, Pooling::Mean);
    let emb = &emb / emb.norm_scalaropt_dim(2.0, [1], true);
    assert!(sentences.len() >= 8);
    for (i, want) in reference["embeddings"].as_array().unwrap().iter().enumerate() {
        let want: Vec<f32> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let want = Tensor::from_slice(&want);
        let got = emb.get(i as i64);
        let cos = got.dot(&want).double_value(&[]) / want.norm().double_value(&[]);
        assert!(cos >= 0.9999, "sentence {i} ({:?}): cosine {cos}", sentences[i]);
        let max_diff = (got - want).abs().max().double_value(&[]);
        assert!(max_diff < 1e-4, "sentence {i}: max abs diff {max_diff}");
    }
}

#[test]
fn minilm_matches_hugging_face_sentence_embeddings() {
    let reference = include_str!("data/minilm_reference.json");
    matches_sentence_embeddings(&assets().join("minilm"), reference, "scripts/setup.sh (the README's set-up)");
}

/// The real all-mpnet-base-v2 (opt-in asset): `just setup-mpnet && just test-mpnet`.
#[test]
#[ignore = "needs the opt-in asset: just setup-mpnet, then just test-mpnet"]
fn mpnet_matches_hugging_face_sentence_embeddings() {
    let reference = include_str!("data/mpnet_reference.json");
    matches_sentence_embeddings(&assets().join("mpnet"), reference, "just setup-mpnet");
}

/// Fixed prefix keys and values with an optional gate, for the gated-attention checks.
struct FixedPrefix {
    keys: Tensor,
    values: Tensor,
    gate: Option<f64>,
}

impl pelt_core::Attachment for FixedPrefix {
    fn prefix(&self, _layer: usize, x: &Tensor, _train: bool) -> Option<pelt_core::Prefix> {
        let (b, t) = (x.size()[0], x.size()[1]);
        let expand = |p: &Tensor| p.unsqueeze(0).expand([b, -1, -1, -1], false);
        Some(pelt_core::Prefix {
            keys: expand(&self.keys),
            values: expand(&self.values),
            gate: self.gate.map(|g| Tensor::full([b, t], g, (Kind::Float, Device::Cpu))),
        })
    }
}

#[test]
fn gated_prefix_attention_matches_the_fused_path_and_closes() {
    let c = BertConfig::tiny();
    let model = Bert::random(&c, 3, Device::Cpu);
    let x = inputs(&[5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 0, 0], 2);
    tch::manual_seed(0);
    let hd = c.hidden_size / c.num_attention_heads;
    let keys = Tensor::randn([c.num_attention_heads, 3, hd], (Kind::Float, Device::Cpu));
    let values = Tensor::randn([c.num_attention_heads, 3, hd], (Kind::Float, Device::Cpu));
    let run = |values: &Tensor, gate: Option<f64>| {
        let m = FixedPrefix { keys: keys.shallow_clone(), values: values.shallow_clone(), gate };
        tch::no_grad(|| model.forward(&x, &m, false)).hidden
    };
    // A gate of 1 is the ungated prefix: the spelled-out attention equals the fused kernel's.
    let fused = run(&values, None);
    let gated = run(&values, Some(1.0));
    assert!((&fused - &gated).abs().max().double_value(&[]) < 1e-5);
    // A gate of 0 removes the prefix's values from every context vector.
    let closed = run(&values, Some(0.0));
    let other = run(&(&values * 3.0 + 1.0), Some(0.0));
    assert!((&closed - &other).abs().max().double_value(&[]) < 1e-6);
    assert!((&closed - &fused).abs().max().double_value(&[]) > 1e-3);
}

/// Writes `tensors` and a `config.json` holding `config` into `dir`.
fn write_hf(dir: &Path, config: &serde_json::Value, tensors: Vec<(String, Tensor)>) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
}

/// Every BERT-family `model_type` from a tiny random checkpoint whose tensor names and config keys are
/// the ones transformers writes (`BertModel`, `RobertaModel`, `XLMRobertaModel`, `CamembertModel`,
/// `ElectraModel` with its narrower embeddings and `embeddings_project`, and `DistilBertModel` with
/// its own layer names and config keys, bare and with the task checkpoints' prefix): each loads, and
/// its weights land where BERT's names put them.
#[test]
fn every_bert_family_model_type_loads_from_transformers_names() {
    let x = inputs(&[5, 6, 7, 8, 9, 10, 0, 0], 2);
    for model_type in ["bert", "roberta", "xlm-roberta", "camembert", "electra"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BertConfig { model_type: model_type.into(), ..BertConfig::tiny() };
        if model_type == "electra" {
            config.embedding_size = Some(8);
        }
        if model_type != "bert" {
            // RoBERTa-style position ids start past the padding index.
            config.pad_token_id = 1;
        }
        let model = Bert::random(&config, 3, Device::Cpu);
        let prefix = if model_type == "electra" { "electra." } else { "" };
        let tensors = model.var_store().variables().into_iter().map(|(n, t)| (format!("{prefix}{n}"), t)).collect();
        write_hf(dir.path(), &serde_json::to_value(&config).unwrap(), tensors);
        let loaded = pelt_backbone::load(dir.path(), Device::Cpu).unwrap_or_else(|e| panic!("{model_type}: {e}"));
        let (a, b) = (model.forward(&x, &NoMethod, false).hidden, loaded.forward(&x, &NoMethod, false).hidden);
        assert_eq!(b.size(), vec![2, 4, 16], "{model_type}");
        assert!(a.allclose(&b, 0.0, 0.0, false), "{model_type}: loaded output differs");
    }
    // ELECTRA's embeddings are 8 wide and projected to 16.
    let electra = Bert::random(
        &BertConfig { model_type: "electra".into(), embedding_size: Some(8), ..BertConfig::tiny() },
        3,
        Device::Cpu,
    );
    let vars = electra.var_store().variables();
    assert_eq!(vars["embeddings.word_embeddings.weight"].size(), vec![100, 8]);
    assert_eq!(vars["embeddings_project.weight"].size(), vec![16, 8]);

    // DistilBERT: its own config keys, no segment embeddings, `transformer.layer.N.{q_lin, …}` names.
    let renames = [
        ("attention.self.query", "attention.q_lin"),
        ("attention.self.key", "attention.k_lin"),
        ("attention.self.value", "attention.v_lin"),
        ("attention.output.dense", "attention.out_lin"),
        ("attention.output.LayerNorm", "sa_layer_norm"),
        ("intermediate.dense", "ffn.lin1"),
        ("output.dense", "ffn.lin2"),
        ("output.LayerNorm", "output_layer_norm"),
    ];
    let distil = serde_json::json!({
        "model_type": "distilbert", "vocab_size": 100, "dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 32,
        "activation": "gelu", "dropout": 0.1, "attention_dropout": 0.1, "max_position_embeddings": 64,
        "pad_token_id": 0, "sinusoidal_pos_embds": false
    });
    let reference = Bert::random(
        &BertConfig { type_vocab_size: 0, model_type: "distilbert".into(), ..BertConfig::tiny() },
        5,
        Device::Cpu,
    );
    assert!(!reference.var_store().variables().contains_key("embeddings.token_type_embeddings.weight"));
    for prefix in ["", "distilbert."] {
        let dir = tempfile::tempdir().unwrap();
        let tensors: Vec<(String, Tensor)> = reference
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| {
                let hf = match name.strip_prefix("encoder.layer.") {
                    Some(rest) => {
                        let (layer, leaf) = rest.split_once('.').unwrap();
                        let (from, to) = renames.iter().find(|(from, _)| leaf.starts_with(from)).unwrap();
                        format!("transformer.layer.{layer}.{}", leaf.replacen(from, to, 1))
                    }
                    None => name,
                };
                (format!("{prefix}{hf}"), t)
            })
            .collect();
        assert!(tensors.iter().any(|(n, _)| n.ends_with("transformer.layer.1.ffn.lin2.weight")));
        write_hf(dir.path(), &distil, tensors);
        let loaded =
            pelt_backbone::load(dir.path(), Device::Cpu).unwrap_or_else(|e| panic!("distilbert {prefix}: {e}"));
        let (a, b) = (reference.forward(&x, &NoMethod, false).hidden, loaded.forward(&x, &NoMethod, false).hidden);
        assert!(a.allclose(&b, 0.0, 0.0, false), "distilbert {prefix}: loaded output differs");
        assert_eq!(loaded.dims().arch, "distilbert");
    }

    // An unsupported model_type is refused, naming it and what pelt reads.
    let dir = tempfile::tempdir().unwrap();
    write_hf(dir.path(), &serde_json::json!({"model_type": "gpt2"}), Vec::new());
    let e = pelt_backbone::load(dir.path(), Device::Cpu).err().expect("gpt2 refused").to_string();
    assert!(e.contains("model_type `gpt2` is not supported") && e.contains("electra, distilbert"), "{e}");
}
