//! Token classification (NER) as a [`Family`].

use crate::data::{NerFiles, NerTask, PrimingSettings};
use crate::run::Primer;
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use pelt_core::{Backbone, Registry};
use pelt_data::TextTokenizer;
use pelt_train::{Family, Outcome, Pristine, Run, Training};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::path::PathBuf;
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
    /// The priming stage: its settings, source task, cache folder and digest.
    priming: Option<(PrimingSettings, NerTask, PathBuf, String)>,
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
        Ok(Tokens {
            registry,
            backbone: model,
            pristine,
            tokenizer,
            files,
            training: training.clone(),
            device,
            priming: None,
        })
    }

    /// Primes entries that ask for it on `settings.source`, keeping primed weights in `cache`.
    pub fn priming(mut self, settings: Option<(PrimingSettings, PathBuf)>) -> Result<Tokens<'a>> {
        if let Some((s, cache)) = settings {
            let source = self.files.prepare(&s.source, &self.tokenizer)?;
            // Primed weights are a function of these settings, the source's data and the training settings.
            let mut h = Sha256::new();
            h.update(serde_json::to_string(&s)?);
            h.update(source.digest());
            h.update(serde_json::to_string(&self.training)?);
            let digest = format!("{:x}", h.finalize())[..12].to_owned();
            self.priming = Some((s, source, cache, digest));
        }
        Ok(self)
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
            self.priming
                .as_ref()
                .map(|(s, source, cache, digest)| Primer {
                    source,
                    steps: s.steps,
                    plm_lr: s.plm_lr,
                    cache: cache.clone(),
                    digest: digest.clone(),
                })
                .as_ref(),
            self.device,
            bar,
        )?;
        Ok(vec![outcome])
    }

    fn restore_pretrained(&self) {
        self.pristine.restore();
    }
}
