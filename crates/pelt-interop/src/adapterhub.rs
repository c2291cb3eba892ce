//! The AdapterHub `adapters` library's folder for bottleneck adapters, as `model.load_adapter(folder,
//! use_safetensors=True)` reads it after `adapters.init(model)`: `adapter_config.json` (`{"config":
//! {...}, "name": ...}`) and `adapter.safetensors`.
//!
//! With h the sublayer's dense output, r its residual input, LN its own LayerNorm and
//! f(z) = up(act(down(z))), the library computes (methods/bottleneck.py, modeling.py of adapters 1.3):
//!
//! - `seq_bn` (Pfeiffer: original_ln_before, residual_before_ln, original_ln_after):
//!   LN(h + f(LN(h + r)) + r) — pelt's `pfeiffer` (`placement: residual`) exactly;
//! - `double_seq_bn` (Houlsby: original_ln_after only): LN(h + f(h) + r) — pelt's `houlsby`;
//! - `par_bn` (is_parallel): LN(h + s·f(r) + r) — pelt's `parallel_adapter` and
//!   `scaled_parallel_adapter` with s their scale.
//!
//! pelt's sites map to the library's two slots: `attention_output` is `mh_adapter` (in
//! `attention.output`), `ffn_output` is `output_adapter` (in `output`). The bottleneck size m is written as
//! `reduction_factor` = d / m, which must give m back (the library takes `d // reduction_factor`).
//! A run that also trained the backbone's LayerNorms (pelt's Houlsby default, `train_layer_norm: true`)
//! is refused: an adapter folder cannot carry changed backbone weights.

use crate::{
    folder::{self, Saved},
    write_head_and_check, write_json, InteropError, Result,
};
use pelt_core::Site;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The library's config file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The library's safetensors weights file.
pub const WEIGHTS_FILE: &str = "adapter.safetensors";
/// The library version the folders are written for (and checked against).
pub const LIBRARY_VERSION: &str = "adapters.1.3.0";

/// The library's name for pelt's activation.
fn non_linearity(act: &serde_json::Value) -> Result<&'static str> {
    match act.as_str() {
        Some("relu") => Ok("relu"),
        Some("gelu") => Ok("gelu"),
        Some("tanh") => Ok("tanh"),
        other => Err(InteropError::Unsupported(format!("activation {other:?} has no AdapterHub name"))),
    }
}

/// Writes `saved` (a bottleneck adapter) as an AdapterHub adapter folder named `name` in `out`, with
/// the head and check batch beside it; returns the files written.
pub fn export(saved: &Saved, out: &Path) -> Result<Vec<PathBuf>> {
    let c = &saved.meta.config;
    let method = saved.meta.method.as_str();
    // The library's seq_bn, double_seq_bn and par_bn settings.
    let mut config = match method {
        "houlsby" | "pfeiffer" => {
            // Either method with either placement exports: the placement decides the library's kind.
            let residual = c["placement"] == json!("residual");
            json!({"original_ln_before": residual, "original_ln_after": true, "residual_before_ln": true})
        }
        "parallel_adapter" | "scaled_parallel_adapter" => json!({
            "original_ln_before": false, "original_ln_after": true, "is_parallel": true,
            "scaling": c["scale"], "init_weights": "mam_adapter",
        }),
        other => {
            return Err(InteropError::Unsupported(format!(
                "`{other}` has no AdapterHub export in pelt: the bottleneck adapters houlsby, pfeiffer, \
                 parallel_adapter and scaled_parallel_adapter do (lora and prompt_tuning export with --format peft)"
            )))
        }
    };
    if !saved.part("backbone.").is_empty() {
        return Err(InteropError::Unsupported(format!(
            "{}: the run also trained the backbone's LayerNorms (train_layer_norm: true), which an AdapterHub \
             adapter folder cannot carry; train with `train_layer_norm: false` to export",
            saved.dir.display()
        )));
    }
    if saved.meta.run["dims"]["image"].is_object() || saved.meta.run["dims"]["arch"] == json!("distilbert") {
        return Err(InteropError::Unsupported(
            "AdapterHub export covers BERT-style text encoders (encoder.layer.N.attention.output / output)".into(),
        ));
    }
    let hidden = saved.meta.run["dims"]["hidden"].as_i64().unwrap_or(0);
    let m = c["bottleneck"].as_i64().unwrap_or(0);
    let factor = hidden as f64 / m.max(1) as f64;
    if m < 1 || (hidden as f64 / factor).floor() as i64 != m {
        return Err(InteropError::Unsupported(format!(
            "bottleneck {m} on hidden size {hidden}: the library sizes bottlenecks as hidden // reduction_factor, \
             which gives no factor for this m"
        )));
    }
    let sites: Vec<Site> = serde_json::from_value(c["sites"].clone())
        .map_err(|e| InteropError::format(saved.dir.join(folder::META_FILE), "config.sites", e))?;
    let name = format!("pelt_{method}");
    let file = saved.dir.join(folder::TENSOR_FILE);
    let mut tensors = Vec::new();
    for (n, t) in saved.part("method.") {
        // pelt's names: layer.<l>.<site>.{down,up}_{weight,bias}.
        let parts: Vec<&str> = n.split('.').collect();
        let [_, layer, site, which] = parts[..] else {
            return Err(InteropError::format(&file, format!("method.{n}"), "not a bottleneck tensor name"));
        };
        let slot = match site {
            "attention_output" => "attention.output",
            "ffn_output" => "output",
            _ => return Err(InteropError::Unsupported(format!("an adapter at `{site}` has no AdapterHub slot"))),
        };
        let param = match which {
            "down_weight" => "adapter_down.0.weight",
            "down_bias" => "adapter_down.0.bias",
            "up_weight" => "adapter_up.weight",
            "up_bias" => "adapter_up.bias",
            _ => return Err(InteropError::format(&file, format!("method.{n}"), "not a bottleneck tensor name")),
        };
        tensors.push((format!("encoder.layer.{layer}.{slot}.adapters.{name}.{param}"), t));
    }
    if let Some(map) = config.as_object_mut() {
        map.insert("mh_adapter".into(), json!(sites.contains(&Site::AttentionOutput)));
        map.insert("output_adapter".into(), json!(sites.contains(&Site::FfnOutput)));
        map.insert("reduction_factor".into(), json!(factor));
        map.insert("non_linearity".into(), json!(non_linearity(&c["activation"])?));
    }
    std::fs::create_dir_all(out).map_err(|e| InteropError::io(out, e))?;
    let config_path = out.join(CONFIG_FILE);
    write_json(
        &config_path,
        &json!({
            "config": config,
            "name": name,
            "hidden_size": hidden,
            "model_type": saved.meta.run["dims"]["arch"],
            "model_name": saved.meta.backbone,
            "model_class": "BertModel",
            // Without a version the library takes the folder for a pre-v3 one and reads "gelu" as
            // "gelu_new" (the tanh approximation): the export check caught it as a 3e-4 logit gap.
            "version": LIBRARY_VERSION,
        }),
    )?;
    let weights = out.join(WEIGHTS_FILE);
    folder::write_tensors(&weights, &tensors)?;
    let mut written = vec![config_path, weights];
    written.extend(write_head_and_check(saved, out)?);
    Ok(written)
}
