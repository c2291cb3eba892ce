//! Hugging Face peft adapter folders: `adapter_config.json` and `adapter_model.safetensors`, as
//! `PeftModel.from_pretrained(AutoModel.from_pretrained(backbone), folder)` loads them.
//!
//! - LoRA: peft's `lora_A.weight` is pelt's A (r × d_in), `lora_B.weight` pelt's B (d_out × r), and
//!   both scale B A x by `lora_alpha / r`. Keys are `base_model.model.<module>.lora_{A,B}.weight` with
//!   `<module>` the Hugging Face module the site names on the backbone loaded with `AutoModel`
//!   (`encoder.layer.3.attention.self.query`); `target_modules` is a regular expression over those
//!   module names, since BERT's two `output.dense` modules (attention and FFN) cannot be told apart by
//!   suffix.
//! - Prompt tuning: `prompt_embeddings` (P × word width). peft puts the soft tokens in front of the
//!   word embeddings (`inputs_embeds`), so only prompt tuning trained with `placement:
//!   input_embeddings` exports; the default placement (after the embeddings' LayerNorm, no positions)
//!   has no peft equivalent and is refused.
//!
//! - LN-tuning: the trained LayerNorm gains and biases as peft's LN_TUNING copies,
//!   `<module>.ln_tuning_layers.{weight,bias}`.
//!
//! Import reads LoRA and prompt-tuning folders back into pelt's folder (with the head and check batch
//! of a pelt export when they are there). What pelt's LoRA cannot express is refused by name: DoRA,
//! trained biases, per-layer ranks or alphas, a subset of layers, whole modules saved beside the
//! adapter. rsLoRA's α/√r becomes pelt's α' = α·√r (the same scale).

use crate::{
    folder::{self, AdapterMeta, Saved},
    write_head_and_check, write_json, InteropError, Result, CHECK_FILE, HEAD_FILE,
};
use pelt_core::{BackboneDims, Site};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// peft's config file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// peft's weights file.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix peft gives every saved key (the PeftModel's `base_model.model`).
const PREFIX: &str = "base_model.model.";

/// The Hugging Face module path (under the `AutoModel`) of projection `site` in layer `layer` of a
/// BERT-family model of `model_type`, if the site is one.
pub fn module_path(model_type: &str, layer: i64, site: Site) -> Option<String> {
    Some(format!("{}.layer.{layer}.{}", stack(model_type), module_tail(model_type, site)?))
}

/// The layer stack's module name.
fn stack(model_type: &str) -> &'static str {
    if model_type == "distilbert" {
        "transformer"
    } else {
        "encoder"
    }
}

/// The module path of projection `site` inside a layer.
fn module_tail(model_type: &str, site: Site) -> Option<&'static str> {
    Some(if model_type == "distilbert" {
        match site {
            Site::Query => "attention.q_lin",
            Site::Key => "attention.k_lin",
            Site::Value => "attention.v_lin",
            Site::AttentionOutput => "attention.out_lin",
            Site::FfnIntermediate => "ffn.lin1",
            Site::FfnOutput => "ffn.lin2",
            _ => return None,
        }
    } else {
        match site {
            Site::Query => "attention.self.query",
            Site::Key => "attention.self.key",
            Site::Value => "attention.self.value",
            Site::AttentionOutput => "attention.output.dense",
            Site::FfnIntermediate => "intermediate.dense",
            Site::FfnOutput => "output.dense",
            _ => return None,
        }
    })
}

/// The (layer, site) a module path names, the inverse of [`module_path`] for any BERT-family type.
pub fn site_of(module: &str) -> Option<(i64, Site)> {
    let rest = module.strip_prefix("encoder.layer.").or_else(|| module.strip_prefix("transformer.layer."))?;
    let (layer, tail) = rest.split_once('.')?;
    let site = match tail {
        "attention.self.query" | "attention.q_lin" => Site::Query,
        "attention.self.key" | "attention.k_lin" => Site::Key,
        "attention.self.value" | "attention.v_lin" => Site::Value,
        "attention.output.dense" | "attention.out_lin" => Site::AttentionOutput,
        "intermediate.dense" | "ffn.lin1" => Site::FfnIntermediate,
        "output.dense" | "ffn.lin2" => Site::FfnOutput,
        _ => return None,
    };
    Some((layer.parse().ok()?, site))
}

/// The model type a saved folder's backbone has (from the run's recorded sizes).
fn model_type(saved: &Saved) -> String {
    saved.meta.run["dims"]["arch"].as_str().unwrap_or("bert").to_owned()
}

/// A number as JSON: an integer when it is one (peft types `lora_alpha` as int).
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// Writes `saved` as a peft adapter folder in `out` (created; files there of the same names are
/// replaced), with the head and check batch beside it; returns the files written.
pub fn export(saved: &Saved, out: &Path) -> Result<Vec<PathBuf>> {
    let arch = model_type(saved);
    if saved.meta.run["dims"]["image"].is_object() {
        return Err(InteropError::Unsupported(
            "peft export covers text backbones; this adapter was trained on a ViT".into(),
        ));
    }
    let (config, tensors) = match saved.meta.method.as_str() {
        "lora" => lora_out(saved, &arch)?,
        "prompt_tuning" => prompt_out(saved)?,
        "ln_tuning" => ln_out(saved, &arch)?,
        other => {
            return Err(InteropError::Unsupported(format!(
                "`{other}` has no peft export in pelt: peft's formats are written for lora, prompt_tuning \
                 (placement: input_embeddings) and ln_tuning; bottleneck adapters export with --format adapterhub"
            )))
        }
    };
    if saved.meta.method != "ln_tuning" && !saved.part("backbone.").is_empty() {
        return Err(InteropError::Unsupported(format!(
            "{}: the run also trained backbone variables (train_layer_norm or a selective part), which a peft {} \
             folder cannot carry",
            saved.dir.display(),
            saved.meta.method
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| InteropError::io(out, e))?;
    let mut config = config;
    if let Some(map) = config.as_object_mut() {
        map.insert("base_model_name_or_path".into(), json!(saved.meta.backbone));
        map.insert("task_type".into(), json!("FEATURE_EXTRACTION"));
        map.insert("inference_mode".into(), json!(true));
    }
    let config_path = out.join(CONFIG_FILE);
    write_json(&config_path, &config)?;
    let weights = out.join(WEIGHTS_FILE);
    folder::write_tensors(&weights, &tensors)?;
    let mut written = vec![config_path, weights];
    written.extend(write_head_and_check(saved, out)?);
    Ok(written)
}

/// LoRA's config and tensors in peft's names.
fn lora_out(saved: &Saved, arch: &str) -> Result<(serde_json::Value, Vec<(String, Tensor)>)> {
    let c = &saved.meta.config;
    if c["init"] == json!("pissa") {
        // The pair alone does not carry the adapted model: PiSSA also rewrote W as W − s·B A.
        return Err(InteropError::Unsupported(
            "a PiSSA-initialised LoRA changed the base weights (W − s·B A at init); peft takes such an adapter \
             only converted to a plain LoRA of rank 2r, which pelt does not write yet"
                .into(),
        ));
    }
    let file = saved.dir.join(folder::TENSOR_FILE);
    let mut tensors = Vec::new();
    let mut modules = std::collections::BTreeSet::new();
    for (name, t) in saved.part("method.") {
        // pelt's names: layer.<l>.<site>.lora_{a,b}.
        let parts: Vec<&str> = name.split('.').collect();
        let [_, layer, site, which] = parts[..] else {
            return Err(InteropError::format(&file, format!("method.{name}"), "not a LoRA tensor name"));
        };
        let site: Site = serde_json::from_value(json!(site))
            .map_err(|_| InteropError::format(&file, format!("method.{name}"), "unknown site"))?;
        let layer: i64 = layer
            .parse()
            .map_err(|_| InteropError::format(&file, format!("method.{name}"), "layer is not a number"))?;
        let module = module_path(arch, layer, site)
            .ok_or_else(|| InteropError::Unsupported(format!("LoRA on `{site}` has no peft module on {arch}")))?;
        let key = match which {
            "lora_a" => "lora_A",
            "lora_b" => "lora_B",
            _ => return Err(InteropError::format(&file, format!("method.{name}"), "not a LoRA tensor name")),
        };
        modules.insert(module_tail(arch, site).unwrap_or_default());
        tensors.push((format!("{PREFIX}{module}.{key}.weight"), t));
    }
    let alternatives: Vec<String> = modules.iter().map(|m| m.replace('.', "\\.")).collect();
    let pattern = format!(".*{}\\.layer\\.\\d+\\.({})", stack(arch), alternatives.join("|"));
    let config = json!({
        "peft_type": "LORA",
        "r": c["r"],
        "lora_alpha": number(c["alpha"].as_f64().unwrap_or(1.0)),
        "lora_dropout": c["dropout"],
        "target_modules": pattern,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": c["rslora"] == json!(true),
        "use_dora": false,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
    });
    Ok((config, tensors))
}

/// LN-tuning's config and tensors in peft's names: peft's LN_TUNING trains a copy of each targeted
/// LayerNorm in place of the original, so the trained gains and biases go in as
/// `<module>.ln_tuning_layers.{weight,bias}`.
fn ln_out(saved: &Saved, arch: &str) -> Result<(serde_json::Value, Vec<(String, Tensor)>)> {
    if arch == "distilbert" {
        return Err(InteropError::Unsupported(
            "LN-tuning export covers BERT-style LayerNorm names, not DistilBERT's".into(),
        ));
    }
    let mut tensors = Vec::new();
    for (name, t) in saved.part("backbone.") {
        let (module, which) = name.rsplit_once('.').filter(|(m, _)| m.ends_with("LayerNorm")).ok_or_else(|| {
            InteropError::Unsupported(format!("LN-tuning trained `{name}`, which is not a LayerNorm"))
        })?;
        tensors.push((format!("{PREFIX}{module}.ln_tuning_layers.{which}"), t));
    }
    // Only the LayerNorms pelt trained: the layers' (and the embeddings' when configured).
    let embeddings = saved.meta.config["embeddings"] == json!(true);
    let pattern = if embeddings { ".*LayerNorm" } else { "encoder\\.layer\\.\\d+\\..*LayerNorm" };
    Ok((json!({"peft_type": "LN_TUNING", "target_modules": pattern, "modules_to_save": null}), tensors))
}

/// Prompt tuning's config and tensor in peft's names (input-embeddings placement only).
fn prompt_out(saved: &Saved) -> Result<(serde_json::Value, Vec<(String, Tensor)>)> {
    if saved.meta.config["placement"] != json!("input_embeddings") {
        return Err(InteropError::Unsupported(
            "prompt tuning trained with the default placement (soft tokens after the embeddings' LayerNorm, no \
             positions) has no peft equivalent: peft puts them in front of the word embeddings. Train with \
             `placement: input_embeddings` to export"
                .into(),
        ));
    }
    let prompt = saved.tensor("method.prompt")?;
    let (p, width) = prompt.size2().map_err(|e| InteropError::tch(&saved.dir, e))?;
    let dims = &saved.meta.run["dims"];
    let config = json!({
        "peft_type": "PROMPT_TUNING",
        "num_virtual_tokens": p,
        "token_dim": width,
        "num_transformer_submodules": 1,
        "num_attention_heads": dims["heads"],
        "num_layers": dims["layers"],
        "prompt_tuning_init": "RANDOM",
    });
    Ok((config, vec![("prompt_embeddings".to_owned(), prompt)]))
}

/// A peft folder read into pelt's terms.
#[derive(Debug)]
pub struct Imported {
    /// The metadata of the pelt folder to write (digest filled in by [`folder::write`]).
    pub meta: AdapterMeta,
    /// `method.*` tensors, plus `head.*` and `check.*` from a pelt export's side files.
    pub tensors: Vec<(String, Tensor)>,
}

/// Reads the peft folder `dir` for a backbone of `dims` (its model type and layer count decide the
/// module names and that every layer is covered) and `backbone` (recorded as the folder's backbone).
pub fn import(dir: &Path, dims: &BackboneDims, backbone: &str) -> Result<Imported> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| InteropError::io(&config_path, e))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| InteropError::format(&config_path, format!("line {}", e.line()), e))?;
    let weights = dir.join(WEIGHTS_FILE);
    let raw = Tensor::read_safetensors(&weights).map_err(|e| InteropError::tch(&weights, e))?;
    // Keys as peft saves them; a file saved with the adapter's name inside is read too.
    let tensors: BTreeMap<String, Tensor> = raw
        .into_iter()
        .map(|(k, t)| (k.strip_prefix(PREFIX).unwrap_or(&k).replace(".default.", "."), t.to_kind(Kind::Float)))
        .collect();
    let peft_type = config["peft_type"].as_str().unwrap_or_default();
    let (method, method_config, mut out) = match peft_type {
        "LORA" => lora_in(&config, &config_path, &tensors, &weights, dims)?,
        "PROMPT_TUNING" => prompt_in(&config, &config_path, &tensors, &weights)?,
        other => {
            return Err(InteropError::format(
                &config_path,
                "peft_type",
                format!("pelt imports LORA and PROMPT_TUNING adapters, got `{other}`"),
            ))
        }
    };
    // A pelt export's head and check batch come back with it.
    for (file, prefix) in [(HEAD_FILE, "head.classifier."), (CHECK_FILE, "check.")] {
        let path = dir.join(file);
        if path.exists() {
            for (n, t) in Tensor::read_safetensors(&path).map_err(|e| InteropError::tch(&path, e))? {
                out.push((format!("{prefix}{n}"), t));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let head_meta = std::fs::read_to_string(dir.join(crate::HEAD_META_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or(json!({}));
    let outputs = out.iter().find(|(n, _)| n == "head.classifier.weight").map(|(_, t)| t.size()[0]);
    let meta = AdapterMeta {
        format: folder::FORMAT.into(),
        version: folder::VERSION,
        method: method.into(),
        config: method_config,
        origin: json!({"imported_from": dir.display().to_string(), "peft_type": peft_type}),
        backbone: backbone.to_owned(),
        backbone_digest: None,
        run: json!({
            "task": head_meta["task"],
            "labels": head_meta["labels"],
            "head": {"pooling": head_meta.get("pooling").cloned().unwrap_or(json!("mean")), "outputs": outputs},
            "dims": dims,
        }),
        tensors_sha256: String::new(),
    };
    Ok(Imported { meta, tensors: out })
}

/// Refuses a config key unless it has one of the values pelt's LoRA can express.
fn require(config: &serde_json::Value, path: &Path, key: &str, ok: &[serde_json::Value], what: &str) -> Result<()> {
    let v = config.get(key).cloned().unwrap_or(serde_json::Value::Null);
    if v.is_null() || ok.contains(&v) {
        return Ok(());
    }
    Err(InteropError::format(path, key, format!("{v}: {what}")))
}

type Parts = (&'static str, serde_json::Value, Vec<(String, Tensor)>);

fn lora_in(
    config: &serde_json::Value,
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    weights: &Path,
    dims: &BackboneDims,
) -> Result<Parts> {
    require(config, path, "use_dora", &[json!(false)], "DoRA is not pelt's LoRA")?;
    require(config, path, "bias", &[json!("none")], "pelt's LoRA trains no biases")?;
    require(config, path, "layers_to_transform", &[], "pelt's LoRA adapts every layer")?;
    require(config, path, "rank_pattern", &[json!({})], "pelt's LoRA has one rank")?;
    require(config, path, "alpha_pattern", &[json!({})], "pelt's LoRA has one alpha")?;
    require(config, path, "modules_to_save", &[], "whole modules saved beside the adapter are not LoRA")?;
    let mut out = Vec::new();
    let mut per_site: BTreeMap<Site, Vec<i64>> = BTreeMap::new();
    let mut rank = None;
    for (key, t) in tensors {
        let Some((module, which)) = key.strip_suffix(".weight").and_then(|k| k.rsplit_once('.')) else {
            return Err(InteropError::format(weights, key, "not a LoRA weight"));
        };
        let which = match which {
            "lora_A" => "lora_a",
            "lora_B" => "lora_b",
            _ => return Err(InteropError::format(weights, key, "not a LoRA weight (lora_A / lora_B)")),
        };
        let (layer, site) = site_of(module).ok_or_else(|| {
            InteropError::format(
                weights,
                key,
                "not a projection of a BERT-family encoder layer that pelt's LoRA adapts",
            )
        })?;
        if which == "lora_a" {
            per_site.entry(site).or_default().push(layer);
            let r = t.size()[0];
            if rank.is_some_and(|q| q != r) {
                return Err(InteropError::format(
                    weights,
                    key,
                    format!("rank {r}, but another pair has {}", rank.unwrap_or(0)),
                ));
            }
            rank = Some(r);
        }
        out.push((format!("method.layer.{layer}.{}.{which}", site.as_str()), t.shallow_clone()));
    }
    let r = rank.ok_or_else(|| InteropError::format(weights, "lora_A", "no LoRA pairs in the file"))?;
    for (site, layers) in &per_site {
        if layers.len() as i64 != dims.layers {
            return Err(InteropError::format(
                weights,
                site.as_str(),
                format!(
                    "adapted in {} of the backbone's {} layers; pelt's LoRA adapts every layer",
                    layers.len(),
                    dims.layers
                ),
            ));
        }
    }
    let alpha = config["lora_alpha"].as_f64().unwrap_or(8.0);
    let alpha = if config["use_rslora"] == json!(true) { alpha * (r as f64).sqrt() } else { alpha };
    let config = json!({
        "r": r,
        "alpha": alpha,
        "dropout": config["lora_dropout"].as_f64().unwrap_or(0.0),
        "targets": per_site.keys().map(|s| s.as_str()).collect::<Vec<_>>(),
    });
    Ok(("lora", config, out))
}

fn prompt_in(
    config: &serde_json::Value,
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    weights: &Path,
) -> Result<Parts> {
    require(config, path, "num_transformer_submodules", &[json!(1)], "an encoder takes one prompt")?;
    let prompt = tensors
        .get("prompt_embeddings")
        .ok_or_else(|| InteropError::format(weights, "prompt_embeddings", "missing"))?;
    let (p, _) = prompt.size2().map_err(|e| InteropError::tch(weights, e))?;
    let config = json!({"length": p, "init": "random", "placement": "input_embeddings"});
    Ok(("prompt_tuning", config, vec![("method.prompt".to_owned(), prompt.shallow_clone())]))
}

/// Writes an [`Imported`] adapter as a pelt folder at `out`.
pub fn write_imported(imported: Imported, out: &Path) -> Result<()> {
    folder::write(out, imported.meta, &imported.tensors)
}
