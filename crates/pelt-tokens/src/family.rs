//! Token classification (NER) as a [`Family`].

use crate::data::{NerFiles, NerTask};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use pelt_core::{Backbone, Registry};
use pelt_data::TextTokenizer;
use pelt_train::{Family, Outcome, Pristine, Run, Training};
use std::path::Path;
use tch::Device;

/// A NER sweep's encoder (with its pristine weights), tokenizer, task files and settings.
pub struct Tokens<'a> {
    registry: &'a Registry,
    backbone: Box<dyn Backbone>,
    pristine: Pristine,
    tokenizer: TextTokenizer,
    files: NerFiles,
    training: Training,
    device: Device,
}

impl<'a> Tokens<'a> {
    /// Loads the text encoder at `backbone` on `device` with its tokenizer.
    pub fn load(
        registry: &'a Registry,
        backbone: &Path,
        files: NerFiles,
        training: &Training,
        device: Device,
    ) -> Result<Tokens<'a>> {
        let model = pelt_backbone::load(backbone, device)
            .with_context(|| format!("loading backbone {}", backbone.display()))?;
        if model.dims().image.is_some() || model.dims().is_t5() {
            bail!("{}: NER tags the tokens of a text encoder (BERT family)", backbone.display());
        }
        let pristine = Pristine::of(model.var_store());
        let tokenizer = TextTokenizer::load(&backbone.join("tokenizer.json"), training.max_len)?;
        Ok(Tokens { registry, backbone: model, pristine, tokenizer, files, training: training.clone(), device })
    }
}

impl Family for Tokens<'_> {
    type Task = NerTask;

    fn prepare(&self, name: &str) -> Result<NerTask> {
        self.files.prepare(name, &self.tokenizer)
    }

    fn digest(&self, task: &NerTask) -> Option<String> {
        Some(task.digest())
    }

    fn run(&self, r: &Run, tasks: &[&NerTask], bar: &ProgressBar) -> Result<Vec<Outcome>> {
        let [task] = tasks else { bail!("a NER run trains one task, not {}", tasks.len()) };
        let outcome = crate::run::run(
            self.registry,
            self.backbone.as_ref(),
            r.spec,
            task,
            r.size,
            r.seed,
            &self.training,
            self.device,
            bar,
        )?;
        Ok(vec![outcome])
    }

    fn restore_pretrained(&self) {
        self.pristine.restore();
    }
}
