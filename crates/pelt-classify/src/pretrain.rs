//! Pretraining a small ViT with pelt itself, for the vision sweeps: no pretrained ViT can be installed
//! here, so a randomly initialised ViT is trained (full fine-tuning, the same loop as every run) on one
//! shipped image set and saved as a Hugging Face ViT folder, which the vision experiments then load as
//! their backbone like any other.

use crate::{data::load_vision, run};
use anyhow::{anyhow, Context, Result};
use pelt_backbone::{Vit, VitConfig};
use pelt_core::{Backbone, Registry};
use pelt_records::DataSize;
use pelt_train::{EvalEvery, MethodSpec, Training};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a pretrained folder was made with; a folder whose `pretrain.json` matches is reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretrain {
    /// The image task trained on (all of its training pool; its test split reports the accuracy).
    pub task: String,
    /// The ViT's shape.
    pub vit: VitConfig,
    /// Optimisation (full fine-tuning from random init).
    pub training: Training,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed of the init and the data order.
    pub seed: u64,
}

/// Trains (or finds already trained) the ViT of `settings` and writes it to `out`: `config.json`,
/// `model.safetensors`, and `pretrain.json` with the settings and the test accuracy reached.
pub fn pretrain(settings: &Pretrain, registry: &Registry, assets: &Path, out: &Path) -> Result<()> {
    let record = out.join("pretrain.json");
    if let Ok(text) = std::fs::read_to_string(&record) {
        let done: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if done.get("settings") == Some(&serde_json::to_value(settings)?) && out.join("model.safetensors").is_file() {
            eprintln!("{}: already pretrained with these settings", out.display());
            return Ok(());
        }
    }
    let task = load_vision(&settings.task, assets, None)?;
    let backbone = Vit::random(&settings.vit, settings.seed as i64, tch::Device::Cpu);
    let spec = MethodSpec {
        method: "full".into(),
        label: None,
        lr: settings.lr,
        lr_search: Vec::new(),
        config: serde_yaml::Value::Null,
        transfer: false,
        shared: false,
        federated: false,
        partition: None,
        prime: pelt_train::Priming::None,
        prime_lr: None,
    };
    let bar = indicatif::ProgressBar::hidden();
    let started = std::time::Instant::now();
    let outcome = run::run(
        registry,
        &backbone,
        &spec,
        &task,
        DataSize::All,
        settings.seed,
        false,
        &settings.training,
        None,
        tch::Device::Cpu,
        &bar,
    )?;
    if let Some(message) = outcome.diverged {
        return Err(anyhow!("pretraining diverged: {message}"));
    }
    // The run leaves its best-dev weights in the backbone: save those.
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    std::fs::write(partial.join("config.json"), serde_json::to_string_pretty(&settings.vit)?)?;
    let mut tensors: Vec<(String, tch::Tensor)> = backbone.var_store().variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tch::Tensor::write_safetensors(&tensors, partial.join("model.safetensors"))?;
    let summary = serde_json::json!({
        "settings": settings,
        "test_accuracy": outcome.score,
        "best_dev": outcome.best_dev.map(|b| b.0),
        "steps": outcome.steps,
        "train_examples": outcome.sizes.0,
        "seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::write(partial.join("pretrain.json"), serde_json::to_string_pretty(&summary)? + "\n")?;
    let _ = std::fs::remove_dir_all(out);
    std::fs::rename(&partial, out).with_context(|| format!("moving {} into place", out.display()))?;
    eprintln!(
        "{}: ViT pretrained on {} in {:.0} s, {} steps, test accuracy {:.2}",
        out.display(),
        settings.task,
        started.elapsed().as_secs_f64(),
        outcome.steps,
        outcome.score.unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The default small ViT: d = 64, 4 layers of 4 heads, FFN 128, 28 × 28 grey images in 4 × 4 patches
/// (49 patches), trained 30 epochs on MNIST 5k (batch 64, AdamW at 1e-3, best dev of each epoch).
pub fn default_settings() -> Pretrain {
    Pretrain {
        task: "mnist_5k".into(),
        vit: VitConfig {
            hidden_size: 64,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 128,
            image_size: 28,
            patch_size: 4,
            num_channels: 1,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.0,
            ..VitConfig::default()
        },
        training: Training { epochs: 30, batch_size: 64, eval_every: EvalEvery::Epoch, ..Training::default() },
        lr: 1e-3,
        seed: 1,
    }
}
