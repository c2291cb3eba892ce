//! Saving and loading what a method trained: its own variables plus the backbone variables it unfroze.

use crate::{backbone::Backbone, method::Method, PeltError, Result};
use std::path::Path;
use tch::Tensor;

fn named(backbone: &dyn Backbone, method: &dyn Method) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = backbone
        .var_store()
        .variables()
        .into_iter()
        .filter(|(n, _)| method.trains_backbone(n))
        .map(|(n, t)| (format!("backbone.{n}"), t))
        .collect();
    // All method variables, trainable or not: buffers such as pruning masks are part of the method.
    out.extend(method.var_store().variables().into_iter().map(|(n, t)| (format!("method.{n}"), t)));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes the method's weights to a safetensors file (written to a temporary name, then renamed).
pub fn save_trainable(backbone: &dyn Backbone, method: &dyn Method, path: &Path) -> Result<()> {
    let tensors = named(backbone, method);
    let tmp = path.with_extension("safetensors.partial");
    Tensor::write_safetensors(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|source| PeltError::Io { path: path.display().to_string(), source })
}

/// Loads weights written by [`save_trainable`] into a backbone and method of the same configuration.
pub fn load_trainable(backbone: &dyn Backbone, method: &dyn Method, path: &Path) -> Result<()> {
    let file: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
    let err = |message: String| PeltError::Weights { path: path.display().to_string(), message };
    let targets = named(backbone, method);
    if file.len() != targets.len() {
        return Err(err(format!("holds {} tensors, the method expects {}", file.len(), targets.len())));
    }
    tch::no_grad(|| {
        for (name, mut var) in targets {
            let src = file.get(&name).ok_or_else(|| err(format!("tensor `{name}` is missing")))?;
            if src.size() != var.size() {
                return Err(err(format!("tensor `{name}` has shape {:?}, expected {:?}", src.size(), var.size())));
            }
            var.copy_(src);
        }
        Ok(())
    })
}
