//! Adapters out of pelt and back in.
//!
//! - [`folder`]: pelt's own adapter folder, what `pelt sweep --save-adapters` keeps of each run.
//! - [`peft`]: Hugging Face peft adapter folders (`adapter_config.json` + `adapter_model.safetensors`):
//!   export for LoRA, prompt tuning (in peft's placement) and LN-tuning, import of LoRA and prompt tuning.
//! - [`adapterhub`]: the AdapterHub `adapters` library's layout for bottleneck adapters.
//!
//! Every export writes the task head beside the adapter (`pelt_head.safetensors` + `pelt_head.json`:
//! peft and AdapterHub know nothing of pelt's mean-pooled head) and the run's check batch
//! (`pelt_check.safetensors`: test inputs with pelt's logits), which
//! `scripts/reference/export_check.py` feeds through the Python libraries to show the same logits.

pub mod adapterhub;
pub mod folder;
pub mod peft;

use std::path::{Path, PathBuf};

/// What can go wrong reading or writing adapter folders.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what its format says: `field` names the key, tensor or line.
    #[error("{path}: {field}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The key, tensor or line.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A tensor file's digest is not the recorded one.
    #[error("{path}: SHA-256 {found}, but the folder records {expected}; the file was changed or damaged")]
    Digest {
        /// The file.
        path: PathBuf,
        /// The recorded digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// The method or setting has no counterpart in the target format.
    #[error("{0}")]
    Unsupported(String),
    /// libtorch refused a tensor operation or file.
    #[error("{path}: {message}")]
    Tch {
        /// The file.
        path: PathBuf,
        /// libtorch's message.
        message: String,
    },
}

impl InteropError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> InteropError {
        InteropError::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub(crate) fn format(path: impl AsRef<Path>, field: impl Into<String>, message: impl ToString) -> InteropError {
        InteropError::Format { path: path.as_ref().to_path_buf(), field: field.into(), message: message.to_string() }
    }

    pub(crate) fn tch(path: impl AsRef<Path>, e: impl ToString) -> InteropError {
        InteropError::Tch { path: path.as_ref().to_path_buf(), message: e.to_string() }
    }
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, InteropError>;

/// Files every export writes beside the adapter: the head, its description, and the check batch.
pub const HEAD_FILE: &str = "pelt_head.safetensors";
/// The head's description (pooling, labels).
pub const HEAD_META_FILE: &str = "pelt_head.json";
/// Test inputs with the logits pelt computed for them.
pub const CHECK_FILE: &str = "pelt_check.safetensors";

/// Writes the head (`weight`, `bias`) and its description, and the check batch, of `saved` into
/// `out`; returns the files written.
pub(crate) fn write_head_and_check(saved: &folder::Saved, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let head: Vec<(String, tch::Tensor)> = saved.part("head.classifier.").into_iter().collect();
    if !head.is_empty() {
        let path = out.join(HEAD_FILE);
        folder::write_tensors(&path, &head)?;
        written.push(path);
        let meta = serde_json::json!({
            "pooling": saved.meta.run["head"]["pooling"],
            "pooling_means": "mean: the average of the final hidden states over every attended position, \
                              prompt positions included (the attention mask extended by ones over them); \
                              cls: the first position",
            "labels": saved.meta.run["labels"],
            "logits": "pooled @ weight.T + bias",
            "task": saved.meta.run["task"],
            "origin": saved.meta.origin,
        });
        let path = out.join(HEAD_META_FILE);
        let json = serde_json::to_string_pretty(&meta).map_err(|e| InteropError::format(&path, "", e))?;
        std::fs::write(&path, json).map_err(|e| InteropError::io(&path, e))?;
        written.push(path);
    }
    let check = saved.part("check.");
    if !check.is_empty() {
        let path = out.join(CHECK_FILE);
        folder::write_tensors(&path, &check)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `value` as pretty JSON at `path`.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| InteropError::format(path, "", e))?;
    std::fs::write(path, json + "\n").map_err(|e| InteropError::io(path, e))
}
