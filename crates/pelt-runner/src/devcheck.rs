//! `pelt check-device`: every registered method trained for a few steps on a device and on the CPU from
//! the same weights and batch, their losses compared. A method that builds, attaches, back-propagates
//! and steps on the device, and lands where the CPU lands, works there. On `--device cpu` the two sides
//! are the same machine, which keeps the check itself exercised in CI.

use anyhow::{bail, Result};
use pelt_backbone::{Bert, BertConfig, ClassificationHead, Pooling};
use pelt_classify::run::loss_of;
use pelt_core::{params, Backbone, Inputs, Registry};
use pelt_data::LabelSpace;
use pelt_train::AdamW;
use tch::{Device, Kind, Tensor};

/// Training steps before the compared loss.
pub const STEPS: usize = 3;
/// Largest relative difference of the loss after [`STEPS`] steps (fp32) that passes.
pub const TOLERANCE: f64 = 1e-3;

/// One method's result.
#[derive(Debug, Clone)]
pub struct Row {
    /// Registry name.
    pub method: String,
    /// Its family.
    pub family: String,
    /// The loss after the steps on the CPU and on the device, or why the method was not run.
    pub outcome: std::result::Result<(f64, f64), String>,
}

impl Row {
    /// Relative difference of the two losses.
    pub fn relative(&self) -> Option<f64> {
        self.outcome.as_ref().ok().map(|(c, d)| (c - d).abs() / c.abs().max(1e-12))
    }

    /// Whether the row passes (a skipped method passes: it does not apply to a text encoder).
    pub fn ok(&self) -> bool {
        match &self.outcome {
            Ok((c, d)) => c.is_finite() && d.is_finite() && self.relative().is_some_and(|r| r < TOLERANCE),
            Err(_) => true,
        }
    }
}

/// Copies every variable of `from` into the same-named variable of `to` (across devices).
fn copy_vars(from: &tch::nn::VarStore, to: &tch::nn::VarStore) {
    let dst = to.variables();
    tch::no_grad(|| {
        for (name, t) in from.variables() {
            if let Some(d) = dst.get(&name) {
                d.shallow_clone().copy_(&t);
            }
        }
    });
}

/// The loss after `STEPS` AdamW steps of `method` (with its default config) on a tiny random BERT on
/// `device`, from weights drawn on the CPU with `seed`. Dropout is off, so the two devices see the same
/// function.
fn loss_after_steps(registry: &Registry, method: &str, device: Device, seed: i64) -> Result<f64> {
    let entry = registry.get(method)?;
    let config = (entry.default_config)();
    // Wide enough for every method's default config (MAM's 512-wide adapter, KronA's 32 × 32 factors).
    let tiny = BertConfig {
        hidden_size: 256,
        num_attention_heads: 4,
        intermediate_size: 512,
        num_hidden_layers: 2,
        ..BertConfig::tiny()
    };
    let cpu = Bert::random(&tiny, seed, Device::Cpu);
    let bert = Bert::random(&tiny, seed, device);
    copy_vars(cpu.var_store(), bert.var_store());
    pelt_core::manual_seed(seed + 1);
    let drawn = (entry.build)(&config, cpu.dims(), Device::Cpu)?;
    drawn.init_from(&cpu);
    let m = (entry.build)(&config, bert.dims(), device)?;
    m.init_from(&bert);
    copy_vars(drawn.var_store(), m.var_store());
    let head = ClassificationHead::new(bert.dims().hidden, 2, Pooling::Mean, 0.0, device);
    let drawn_head = ClassificationHead::new(bert.dims().hidden, 2, Pooling::Mean, 0.0, Device::Cpu);
    copy_vars(drawn_head.var_store(), head.var_store());
    let ids = Tensor::from_slice(&[5i64, 9, 13, 2, 7, 0, 11, 3, 4, 8, 0, 0, 6, 12, 14, 15, 10, 1])
        .view([3, 6])
        .to_device(device);
    let inputs = Inputs::text(ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64), ids.zeros_like());
    let labels = Tensor::from_slice(&[0i64, 1, 1]).to_device(device);
    let space = LabelSpace::Classes(vec!["a".into(), "b".into()]);
    let loss = || loss_of(&head.forward(&bert.forward(&inputs, m.as_ref(), false), false), &labels, &space);
    let mut trainable = params::prepare_training(&bert, m.as_ref());
    trainable.extend(head.var_store().variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
    pelt_core::run_calibration(m.as_ref(), 3, 3, |_| loss());
    let mut opt = AdamW::new(&trainable, 0.01);
    for step in 0..STEPS {
        if let Err(v) = opt.train_step(&loss(), m.as_ref(), 1.0, 1e-2) {
            bail!("{method}: loss {v} at step {step} on {device:?}");
        }
    }
    Ok(tch::no_grad(|| loss().double_value(&[])))
}

/// Runs every method of `registry` on `device` and on the CPU.
pub fn run(registry: &Registry, device: Device) -> Vec<Row> {
    registry
        .entries()
        .map(|e| {
            let name = e.info.name.to_owned();
            // A method the CPU cannot build on a text encoder (VPT wants a ViT) does not apply; one that
            // builds on the CPU but fails on the device is a failure, its error printed.
            let outcome = match loss_after_steps(registry, &name, Device::Cpu, 3) {
                Err(e) => Err(format!("not run: {e:#}")),
                Ok(c) => Ok((
                    c,
                    loss_after_steps(registry, &name, device, 3).unwrap_or_else(|e| {
                        eprintln!("{name} on {device:?}: {e:#}");
                        f64::NAN
                    }),
                )),
            };
            Row { method: name, family: e.info.family.to_owned(), outcome }
        })
        .collect()
}

/// The rows as a Markdown table with a verdict line.
pub fn render(rows: &[Row], device: Device) -> String {
    let mut out = format!(
        "Each method's default config on a small random BERT (d = 256, 4 heads, 2 layers), {STEPS} AdamW steps in fp32, dropout \
         off, from the same weights on the CPU and on {device:?}; the loss after the steps compared (relative \
         difference < {TOLERANCE}).\n\n| method | family | loss, CPU | loss, device | relative difference | |\n|---|---|---:|---:|---:|---|\n"
    );
    for r in rows {
        match &r.outcome {
            Ok((c, d)) => out.push_str(&format!(
                "| {} | {} | {c:.6} | {d:.6} | {:.1e} | {} |\n",
                r.method,
                r.family,
                r.relative().unwrap_or(f64::NAN),
                if r.ok() { "ok" } else { "FAILED" }
            )),
            Err(why) => out.push_str(&format!("| {} | {} | | | | {why} |\n", r.method, r.family)),
        }
    }
    let ran = rows.iter().filter(|r| r.outcome.is_ok()).count();
    let failed = rows.iter().filter(|r| !r.ok()).count();
    out.push_str(&format!(
        "\n{ran} methods ran on both, {failed} failed, {} do not apply to a text encoder.\n",
        rows.len() - ran
    ));
    out
}
