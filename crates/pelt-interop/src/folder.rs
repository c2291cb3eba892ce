//! pelt's own adapter folder: a run's parameters at its best dev step, as `pelt sweep
//! --save-adapters` keeps them under `<suite>/adapters/<run key>/`.
//!
//! - `adapter.json`: [`AdapterMeta`] — the method and its resolved config, the run it came from, the
//!   backbone it was trained on (path and weights digest), the head's pooling and the task's labels,
//!   and the SHA-256 of the tensor file.
//! - `adapter.safetensors`: `method.*`, `head.*`, `backbone.*` (trained backbone variables) and
//!   `check.*` tensors (see `pelt_train::Checkpoint`).
//!
//! A folder is written into a temporary sibling and renamed into place, so a reader never sees half
//! of one; reading verifies the digest before any tensor is used.

use crate::{InteropError, Result};
use pelt_backbone::{ClassificationHead, Pooling};
use pelt_core::{Backbone, Method, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The `format` every pelt adapter folder declares.
pub const FORMAT: &str = "pelt-adapter";
/// The folder layout's version.
pub const VERSION: u32 = 1;
/// The metadata file.
pub const META_FILE: &str = "adapter.json";
/// The tensor file.
pub const TENSOR_FILE: &str = "adapter.safetensors";

/// What `adapter.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for folders this build writes.
    pub version: u32,
    /// The registry name of the method (`lora`, `prompt_tuning`, `pfeiffer`, ...).
    pub method: String,
    /// The method's config with every default filled in, as the record has it.
    pub config: serde_json::Value,
    /// Where the parameters came from: the run's record key, suite, label, learning rate, size and seed
    /// (`{}` for an imported adapter, which names its source instead).
    pub origin: serde_json::Value,
    /// The backbone folder the method was trained on, as the experiment named it.
    pub backbone: String,
    /// SHA-256 of the backbone's weights file (pelt's weights digest), when known.
    pub backbone_digest: Option<String>,
    /// The family's part: task name, labels (a list, or `"regression"`), the head's pooling and
    /// outputs, the backbone's sizes.
    pub run: serde_json::Value,
    /// SHA-256 of `adapter.safetensors`, checked on every read.
    pub tensors_sha256: String,
}

/// A folder as read: its metadata and tensors (on the CPU).
#[derive(Debug)]
pub struct Saved {
    /// The folder.
    pub dir: PathBuf,
    /// `adapter.json`.
    pub meta: AdapterMeta,
    /// `adapter.safetensors`, by name.
    pub tensors: Vec<(String, Tensor)>,
}

impl Saved {
    /// The tensors whose names start with `prefix`, the prefix removed, in name order.
    pub fn part(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.tensors.iter().filter_map(|(n, t)| Some((n.strip_prefix(prefix)?.to_owned(), t.shallow_clone()))).collect()
    }

    /// The tensor `name`, or an error naming the folder and what is missing.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.shallow_clone())
            .ok_or_else(|| InteropError::format(self.dir.join(TENSOR_FILE), name, "missing"))
    }

    /// The head's pooling from the run metadata (mean when it says nothing).
    pub fn pooling(&self) -> Pooling {
        serde_json::from_value(self.meta.run["head"]["pooling"].clone()).unwrap_or_default()
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `tensors` as a safetensors file at `path` (made contiguous on the CPU first).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let ready: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&ready, path).map_err(|e| InteropError::tch(path, e))
}

/// Writes a folder at `dir` (replacing one there) with `meta` (its digest filled in here) and
/// `tensors`: into `<dir>.partial`, then renamed into place.
pub fn write(dir: &Path, mut meta: AdapterMeta, tensors: &[(String, Tensor)]) -> Result<()> {
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| InteropError::io(&partial, e))?;
    let tensor_path = partial.join(TENSOR_FILE);
    write_tensors(&tensor_path, tensors)?;
    let bytes = std::fs::read(&tensor_path).map_err(|e| InteropError::io(&tensor_path, e))?;
    meta.format = FORMAT.to_owned();
    meta.version = VERSION;
    meta.tensors_sha256 = sha256(&bytes);
    let json = serde_json::to_string_pretty(&meta).map_err(|e| InteropError::format(dir.join(META_FILE), "", e))?;
    std::fs::write(partial.join(META_FILE), json).map_err(|e| InteropError::io(partial.join(META_FILE), e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| InteropError::io(dir, e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| InteropError::io(dir, e))
}

/// Reads the folder at `dir`, refusing another format, a newer version, or tensors whose digest is
/// not the one recorded.
pub fn read(dir: &Path) -> Result<Saved> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| InteropError::io(&meta_path, e))?;
    let meta: AdapterMeta = serde_json::from_str(&text).map_err(|e| {
        InteropError::format(&meta_path, format!("line {}", e.line()), format!("not a pelt adapter description: {e}"))
    })?;
    if meta.format != FORMAT {
        return Err(InteropError::format(&meta_path, "format", format!("expected `{FORMAT}`, got `{}`", meta.format)));
    }
    if meta.version > VERSION {
        return Err(InteropError::format(
            &meta_path,
            "version",
            format!("{} is newer than this pelt reads ({VERSION})", meta.version),
        ));
    }
    let tensor_path = dir.join(TENSOR_FILE);
    let bytes = std::fs::read(&tensor_path).map_err(|e| InteropError::io(&tensor_path, e))?;
    let found = sha256(&bytes);
    if found != meta.tensors_sha256 {
        return Err(InteropError::Digest { path: tensor_path, expected: meta.tensors_sha256, found });
    }
    let mut tensors = Tensor::read_safetensors(&tensor_path).map_err(|e| InteropError::tch(&tensor_path, e))?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Saved { dir: dir.to_path_buf(), meta, tensors })
}

/// A saved method put back on a backbone: the method built from the registry with the saved config,
/// its variables (and any trained backbone variables) loaded from the folder, and the head when the
/// folder has one.
pub struct Attached {
    /// The method, ready to attach.
    pub method: Box<dyn Method>,
    /// The task head, when the folder holds one.
    pub head: Option<ClassificationHead>,
}

/// Builds the folder's method for `backbone` and loads its parameters. Every variable of the method
/// must be in the folder with its shape, and every `method.*` tensor of the folder must be a variable:
/// a mismatch (another config, another backbone size) is refused by name. Trained backbone variables
/// (`backbone.*`) are copied into the backbone.
pub fn attach(saved: &Saved, registry: &Registry, backbone: &dyn Backbone, device: Device) -> Result<Attached> {
    let file = saved.dir.join(TENSOR_FILE);
    let entry =
        registry.get(&saved.meta.method).map_err(|e| InteropError::format(saved.dir.join(META_FILE), "method", e))?;
    let config: serde_yaml::Value = serde_json::from_value(saved.meta.config.clone())
        .map_err(|e| InteropError::format(saved.dir.join(META_FILE), "config", e))?;
    let method = (entry.build)(&config, backbone.dims(), device)
        .map_err(|e| InteropError::format(saved.dir.join(META_FILE), "config", e))?;
    // As every run does: a method may take frozen state from the backbone (DoRA's weights) or rewrite
    // it (PiSSA's residual) before its saved values replace its own.
    method.init_from(backbone);
    copy_into(&saved.part("method."), &method.var_store().variables(), &file, "method")?;
    let trained = saved.part("backbone.");
    if !trained.is_empty() {
        copy_into(&trained, &backbone.var_store().variables(), &file, "backbone")?;
    }
    let head_tensors = saved.part("head.");
    let head = match head_tensors.iter().find(|(n, _)| n == "classifier.weight") {
        Some((_, w)) => {
            let (outputs, hidden) = w.size2().map_err(|e| InteropError::tch(&file, e))?;
            let head = ClassificationHead::new(hidden, outputs, saved.pooling(), 0.0, device);
            copy_into(&head_tensors, &head.var_store().variables(), &file, "head")?;
            Some(head)
        }
        None => None,
    };
    Ok(Attached { method, head })
}

/// Copies `from` into the variables `to` of the same names. `part` names the part in errors; for the
/// method every variable must be covered, for the backbone and head only the named ones.
fn copy_into(
    from: &[(String, Tensor)],
    to: &std::collections::HashMap<String, Tensor>,
    file: &Path,
    part: &str,
) -> Result<()> {
    for (name, t) in from {
        let field = format!("{part}.{name}");
        let var = to
            .get(name)
            .ok_or_else(|| InteropError::format(file, &field, "no such variable in the method as configured"))?;
        if var.size() != t.size() {
            return Err(InteropError::format(
                file,
                &field,
                format!("shape {:?}, but the variable is {:?}", t.size(), var.size()),
            ));
        }
        tch::no_grad(|| var.shallow_clone().copy_(t));
    }
    if part == "method" {
        if let Some(missing) = to.keys().find(|k| !from.iter().any(|(n, _)| n == *k)) {
            return Err(InteropError::format(file, format!("method.{missing}"), "missing"));
        }
    }
    Ok(())
}

/// Runs the folder's check batch through `backbone` with the folder's method and head attached (in
/// eval mode, the method not merged) and returns the largest difference from the logits recorded
/// with it; `None` when the folder has no head or no check batch. The backbone must hold the weights
/// the adapter was trained on; trained backbone variables in the folder are copied into it.
pub fn check(saved: &Saved, registry: &Registry, backbone: &dyn Backbone, device: Device) -> Result<Option<f64>> {
    let part = saved.part("check.");
    let get = |name: &str| part.iter().find(|(n, _)| n == name).map(|(_, t)| t.to_device(device));
    let (Some(ids), Some(mask), Some(types), Some(want)) =
        (get("input_ids"), get("attention_mask"), get("token_type_ids"), get("logits"))
    else {
        return Ok(None);
    };
    let attached = attach(saved, registry, backbone, device)?;
    let Some(head) = attached.head else { return Ok(None) };
    let inputs = pelt_core::Inputs::text(ids, mask, types);
    let got = tch::no_grad(|| head.forward(&backbone.forward(&inputs, attached.method.as_ref(), false), false));
    Ok(Some((got - want).abs().max().double_value(&[])))
}
