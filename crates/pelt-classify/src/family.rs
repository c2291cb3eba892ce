//! Sequence classification and regression (and image classification on a ViT) as a [`Family`].

use crate::{
    data::{data_digest, prepare, TaskData, TaskFiles},
    federated::Federated,
    run,
    transfer::{Sources, Transfer},
};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use pelt_core::{Backbone, Registry};
use pelt_data::TextTokenizer;
use pelt_records::file_part;
use pelt_train::{Family, Outcome, Pristine, Run, Training};
use std::path::{Path, PathBuf};
use tch::Device;

/// A classification sweep's model and settings: the backbone (with its pristine weights), its
/// tokenizer for text tasks, where tasks are read from, and the transfer protocol's sources.
pub struct Classification<'a> {
    registry: &'a Registry,
    backbone: Box<dyn Backbone>,
    pristine: Pristine,
    tokenizer: Option<TextTokenizer>,
    files: TaskFiles,
    training: Training,
    device: Device,
    /// The two-stage protocol's settings, its prepared source tasks, and the folder of its
    /// source-trained checkpoints.
    sources: Option<(Transfer, Vec<TaskData>, PathBuf)>,
    /// Federated training's settings, when the experiment has a `federated:` block.
    federated: Option<Federated>,
}

impl<'a> Classification<'a> {
    /// Loads the backbone at `backbone` on `device` (and its tokenizer, for a text model) and prepares
    /// the transfer protocol's source tasks, whose source-trained checkpoints go to `source_cache`.
    pub fn load(
        registry: &'a Registry,
        backbone: &Path,
        files: TaskFiles,
        training: &Training,
        transfer: Option<(&Transfer, PathBuf)>,
        device: Device,
    ) -> Result<Classification<'a>> {
        let model = pelt_backbone::load(backbone, device)
            .with_context(|| format!("loading backbone {}", backbone.display()))?;
        let pristine = Pristine::of(model.var_store());
        // Vision backbones have no tokenizer.
        let tokenizer = match model.dims().image {
            None => Some(TextTokenizer::load(&backbone.join("tokenizer.json"), training.max_len)?),
            Some(_) => None,
        };
        let mut family = Classification {
            registry,
            backbone: model,
            pristine,
            tokenizer,
            files,
            training: training.clone(),
            device,
            sources: None,
            federated: None,
        };
        if let Some((t, cache)) = transfer {
            let tasks = t.sources.iter().map(|name| family.prepare(name)).collect::<Result<Vec<_>>>()?;
            family.sources = Some((t.clone(), tasks, cache));
        }
        Ok(family)
    }

    /// Trains every run federated with `settings` (see [`crate::federated`]).
    pub fn federated(mut self, settings: Option<Federated>) -> Classification<'a> {
        self.federated = settings;
        self
    }
}

impl Family for Classification<'_> {
    type Task = TaskData;

    fn prepare(&self, name: &str) -> Result<TaskData> {
        let size = self.backbone.dims().image.map(|i| i.size);
        prepare(name, &self.files, self.tokenizer.as_ref(), size)
    }

    fn digest(&self, task: &TaskData) -> Option<String> {
        Some(data_digest(task))
    }

    fn run(&self, r: &Run, tasks: &[&TaskData], bar: &ProgressBar) -> Result<Vec<Outcome>> {
        let [task] = tasks else { bail!("a classification run trains one task, not {}", tasks.len()) };
        if let Some(fed) = self.federated.as_ref().filter(|_| r.spec.federated) {
            let fed = match &r.spec.partition {
                Some(p) => {
                    fed.with_partition(p).map_err(|e| anyhow::anyhow!("federated.{}: {}", e.field, e.message))?
                }
                None => fed.clone(),
            };
            let fed = &fed;
            let outcome = crate::federated::train::run(
                self.registry,
                self.backbone.as_ref(),
                r.spec,
                task,
                r.size,
                r.seed,
                &self.training,
                fed,
                self.device,
                bar,
            )?;
            return Ok(vec![outcome]);
        }
        // A federated experiment's centralised reference row: the same examples, as many steps as the
        // clients take in all, dev evaluations as often as the federated runs'.
        let training = match &self.federated {
            Some(fed) => {
                let n = match r.size {
                    pelt_records::DataSize::Examples(k) => k,
                    _ => task.dataset.train.len(),
                };
                let (total, every) = fed.centralised_steps(n, self.training.batch_size);
                Training {
                    epochs: total,
                    min_steps: total,
                    max_steps: total,
                    eval_every: pelt_train::EvalEvery::Steps(every.max(1)),
                    ..self.training.clone()
                }
            }
            None => self.training.clone(),
        };
        // Source training is shared by every target, size and seed of a method: keyed by label and seed.
        let source_key = format!("{}__s{}__{}", file_part(r.spec.label()), r.seed, r.hash);
        let sources = self.sources.as_ref().map(|(transfer, tasks, cache)| Sources {
            transfer,
            tasks: tasks.iter().collect(),
            cache: cache.clone(),
        });
        let outcome = run::run(
            self.registry,
            self.backbone.as_ref(),
            r.spec,
            task,
            r.size,
            r.seed,
            r.keep,
            &training,
            sources.as_ref().map(|s| (s, source_key.as_str())),
            self.device,
            bar,
        )?;
        Ok(vec![outcome])
    }

    fn restore_pretrained(&self) {
        self.pristine.restore();
    }
}
