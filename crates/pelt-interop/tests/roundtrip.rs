//! Adapter folders out and back in, on a tiny random BERT: a pelt folder reproduces its check batch;
//! a peft export imported again gives the same tensors and the same logits; the AdapterHub layout
//! names what the library loads; what has no counterpart is refused by name; a changed tensor file
//! is caught by its digest.

use pelt_backbone::{Bert, BertConfig, ClassificationHead, Pooling};
use pelt_core::{Backbone, Inputs, Registry};
use pelt_interop::{adapterhub, folder, peft, InteropError};
use serde_json::json;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn registry() -> Registry {
    let mut r = Registry::new();
    r.extend(pelt_selective::methods());
    r.extend(pelt_lowrank::methods());
    r.extend(pelt_prompts::methods());
    r.extend(pelt_adapters::methods());
    r
}

/// Builds `method` with `config` on `bert`, gives every variable of it and of a 3-class head random
/// values (a trained adapter is not at its init), and saves a pelt folder at `dir` with a check batch.
fn saved_folder(bert: &Bert, method: &str, config: serde_json::Value, dir: &Path) -> folder::Saved {
    let registry = registry();
    let yaml: serde_yaml::Value = serde_json::from_value(config.clone()).unwrap();
    let m = (registry.get(method).unwrap().build)(&yaml, bert.dims(), Device::Cpu).unwrap();
    m.init_from(bert);
    tch::manual_seed(5);
    tch::no_grad(|| {
        for (_, mut t) in m.var_store().variables() {
            let _ = t.normal_(0.0, 0.2);
        }
    });
    let head = ClassificationHead::new(bert.dims().hidden, 3, Pooling::Mean, 0.0, Device::Cpu);
    tch::no_grad(|| {
        for (_, mut t) in head.var_store().variables() {
            let _ = t.normal_(0.0, 0.5);
        }
    });
    let ids = Tensor::from_slice(&[5i64, 9, 13, 2, 7, 0, 11, 3, 4, 0, 0, 0]).view([3, 4]);
    let inputs = Inputs::text(ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64), ids.zeros_like());
    let logits = tch::no_grad(|| head.forward(&bert.forward(&inputs, m.as_ref(), false), false));
    let mut tensors: Vec<(String, Tensor)> =
        m.var_store().variables().into_iter().map(|(n, t)| (format!("method.{n}"), t.detach().copy())).collect();
    tensors.extend(head.var_store().variables().into_iter().map(|(n, t)| (format!("head.{n}"), t.detach().copy())));
    tensors.extend([
        ("check.input_ids".to_owned(), inputs.input_ids),
        ("check.attention_mask".to_owned(), inputs.attention_mask),
        ("check.token_type_ids".to_owned(), inputs.token_type_ids),
        ("check.logits".to_owned(), logits),
    ]);
    let meta = folder::AdapterMeta {
        format: String::new(),
        version: 0,
        method: method.to_owned(),
        config: serde_json::to_value((registry.get(method).unwrap().default_config)()).map_or(
            config.clone(),
            |mut d| {
                for (k, v) in config.as_object().unwrap() {
                    d[k] = v.clone();
                }
                d
            },
        ),
        origin: json!({"key": "test"}),
        backbone: "tiny".into(),
        backbone_digest: None,
        run: json!({"task": "t", "labels": ["a", "b", "c"], "head": {"pooling": "mean", "outputs": 3}, "dims": bert.dims()}),
        tensors_sha256: String::new(),
    };
    folder::write(dir, meta, &tensors).unwrap();
    folder::read(dir).unwrap()
}

fn same_method_tensors(a: &folder::Saved, b: &folder::Saved) {
    let (a, b) = (a.part("method."), b.part("method."));
    assert_eq!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), b.iter().map(|x| &x.0).collect::<Vec<_>>());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y), "{n} changed on the way");
    }
}

#[test]
fn lora_and_prompt_tuning_go_to_peft_and_come_back_with_the_same_logits() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let registry = registry();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("lora", json!({"r": 2, "alpha": 6.0, "targets": ["query", "value", "attention_output", "ffn_output"]})),
        ("prompt_tuning", json!({"length": 3, "placement": "input_embeddings"})),
    ];
    for (method, config) in cases {
        let saved = saved_folder(&bert, method, config, &tmp.path().join(method));
        let own = folder::check(&saved, &registry, &bert, Device::Cpu).unwrap().expect("a check batch");
        assert!(own < 1e-5, "{method}: the folder does not reproduce its own check batch ({own})");

        let out = tmp.path().join(format!("{method}-peft"));
        let written = peft::export(&saved, &out).unwrap();
        assert!(written.iter().any(|p| p.ends_with("adapter_model.safetensors")));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
        let names: Vec<String> = Tensor::read_safetensors(out.join("adapter_model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        match method {
            "lora" => {
                assert_eq!(config["peft_type"], "LORA");
                assert_eq!(config["lora_alpha"], 6);
                assert!(names.contains(&"base_model.model.encoder.layer.1.attention.output.dense.lora_B.weight".into()));
                assert!(names.contains(&"base_model.model.encoder.layer.0.output.dense.lora_A.weight".into()));
            }
            _ => {
                assert_eq!(config["peft_type"], "PROMPT_TUNING");
                assert_eq!(config["num_virtual_tokens"], 3);
                assert_eq!(names, vec!["prompt_embeddings".to_owned()]);
            }
        }

        let back = tmp.path().join(format!("{method}-back"));
        peft::write_imported(peft::import(&out, bert.dims(), "tiny").unwrap(), &back).unwrap();
        let imported = folder::read(&back).unwrap();
        assert_eq!(imported.meta.method, method);
        same_method_tensors(&saved, &imported);
        let diff = folder::check(&imported, &registry, &bert, Device::Cpu).unwrap().expect("head and check came back");
        assert!(diff < 1e-5, "{method}: imported adapter's logits differ by {diff}");
    }
}

#[test]
fn rslora_imports_as_the_same_scale() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let tmp = tempfile::tempdir().unwrap();
    let saved = saved_folder(&bert, "lora", json!({"r": 4, "alpha": 8.0, "targets": ["query"]}), &tmp.path().join("a"));
    let out = tmp.path().join("peft");
    peft::export(&saved, &out).unwrap();
    // α/√r with α = 4 and r = 4 is pelt's α'/r with α' = 8.
    let path = out.join("adapter_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["use_rslora"] = json!(true);
    config["lora_alpha"] = json!(4);
    std::fs::write(&path, config.to_string()).unwrap();
    let imported = peft::import(&out, bert.dims(), "tiny").unwrap();
    assert_eq!(imported.meta.config["alpha"], json!(8.0));
}

#[test]
fn what_peft_or_pelt_cannot_express_is_refused_by_name() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let tmp = tempfile::tempdir().unwrap();
    let after_ln = saved_folder(&bert, "prompt_tuning", json!({"length": 2}), &tmp.path().join("p"));
    let e = peft::export(&after_ln, &tmp.path().join("p-out")).unwrap_err();
    assert!(e.to_string().contains("placement: input_embeddings"), "{e}");
    let houlsby = saved_folder(&bert, "houlsby", json!({"bottleneck": 4}), &tmp.path().join("h"));
    let e = peft::export(&houlsby, &tmp.path().join("h-out")).unwrap_err();
    assert!(e.to_string().contains("adapterhub"), "{e}");

    // Import: DoRA, a subset of layers, and an unknown peft type each name the key.
    let saved = saved_folder(&bert, "lora", json!({"r": 2, "targets": ["query"]}), &tmp.path().join("l"));
    let out = tmp.path().join("l-out");
    peft::export(&saved, &out).unwrap();
    let path = out.join("adapter_config.json");
    let original = std::fs::read_to_string(&path).unwrap();
    for (key, value, expect) in [
        ("use_dora", json!(true), "use_dora"),
        ("layers_to_transform", json!([0]), "layers_to_transform"),
        ("peft_type", json!("IA3"), "peft_type"),
    ] {
        let mut config: serde_json::Value = serde_json::from_str(&original).unwrap();
        config[key] = value;
        std::fs::write(&path, config.to_string()).unwrap();
        let e = peft::import(&out, bert.dims(), "tiny").unwrap_err();
        assert!(matches!(&e, InteropError::Format { field, .. } if field == expect), "{key}: {e}");
        assert!(e.to_string().contains("adapter_config.json"), "{e}");
    }
    std::fs::write(&path, &original).unwrap();
    // A LoRA over one layer of two is not pelt's LoRA.
    let weights = out.join("adapter_model.safetensors");
    let kept: Vec<(String, Tensor)> =
        Tensor::read_safetensors(&weights).unwrap().into_iter().filter(|(n, _)| n.contains("layer.0.")).collect();
    Tensor::write_safetensors(&kept, &weights).unwrap();
    let e = peft::import(&out, bert.dims(), "tiny").unwrap_err();
    assert!(e.to_string().contains("1 of the backbone's 2 layers"), "{e}");
}

#[test]
fn bottleneck_adapters_take_the_adapterhub_layout() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let tmp = tempfile::tempdir().unwrap();
    // Pfeiffer: seq_bn after the FFN, the residual sum normed first; d = 16, m = 4 → factor 4.
    let pfeiffer = saved_folder(&bert, "pfeiffer", json!({"bottleneck": 4}), &tmp.path().join("pf"));
    let out = tmp.path().join("pf-out");
    adapterhub::export(&pfeiffer, &out).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["name"], "pelt_pfeiffer");
    // A folder without a version is read as a pre-v3 one, whose "gelu" means the tanh approximation.
    assert_eq!(config["version"], adapterhub::LIBRARY_VERSION);
    let c = &config["config"];
    assert_eq!((c["mh_adapter"].clone(), c["output_adapter"].clone()), (json!(false), json!(true)));
    assert_eq!((c["original_ln_before"].clone(), c["reduction_factor"].clone()), (json!(true), json!(4.0)));
    assert_eq!(c["non_linearity"], "relu");
    let tensors = Tensor::read_safetensors(out.join("adapter.safetensors")).unwrap();
    let down = tensors.iter().find(|(n, _)| n == "encoder.layer.1.output.adapters.pelt_pfeiffer.adapter_down.0.weight");
    assert!(down.is_some_and(|(_, t)| t.size() == [4, 16]));
    assert_eq!(tensors.len(), 2 * 4, "two layers × down and up weights and biases");
    assert!(out.join(pelt_interop::HEAD_FILE).is_file() && out.join(pelt_interop::CHECK_FILE).is_file());

    // Houlsby with its LayerNorms trained cannot go: the folder would lose them.
    let mut houlsby = saved_folder(&bert, "houlsby", json!({"bottleneck": 4}), &tmp.path().join("h"));
    houlsby.tensors.push((
        "backbone.encoder.layer.0.output.LayerNorm.weight".into(),
        Tensor::ones([16], (Kind::Float, Device::Cpu)),
    ));
    let e = adapterhub::export(&houlsby, &tmp.path().join("h-out")).unwrap_err();
    assert!(e.to_string().contains("train_layer_norm: false"), "{e}");
}

#[test]
fn a_changed_tensor_file_is_caught_by_its_digest() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    saved_folder(&bert, "lora", json!({"r": 2}), &dir);
    let path = dir.join(folder::TENSOR_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let e = folder::read(&dir).unwrap_err();
    assert!(matches!(e, InteropError::Digest { .. }), "{e}");
}

#[test]
fn ln_tuning_goes_to_peft_as_layer_norm_copies() {
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let tmp = tempfile::tempdir().unwrap();
    let mut saved = saved_folder(&bert, "ln_tuning", json!({}), &tmp.path().join("ln"));
    let vars = bert.var_store().variables();
    let trained: Vec<String> =
        vars.keys().filter(|n| n.starts_with("encoder.layer.") && n.contains("LayerNorm")).cloned().collect();
    assert_eq!(trained.len(), 2 * 2 * 2, "two layers × two LayerNorms × gain and bias");
    saved.tensors.extend(trained.iter().map(|n| (format!("backbone.{n}"), vars[n].detach().copy() + 0.5)));
    let out = tmp.path().join("ln-out");
    peft::export(&saved, &out).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LN_TUNING");
    let tensors = Tensor::read_safetensors(out.join("adapter_model.safetensors")).unwrap();
    assert_eq!(tensors.len(), trained.len());
    let gain = tensors
        .iter()
        .find(|(n, _)| n == "base_model.model.encoder.layer.1.attention.output.LayerNorm.ln_tuning_layers.weight");
    let original = &vars["encoder.layer.1.attention.output.LayerNorm.weight"];
    assert!(gain.is_some_and(|(_, t)| t.equal(&(original + 0.5))));
}
