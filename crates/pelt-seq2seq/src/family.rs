//! Summarization as a [`Family`]: a T5 / mT5, or a BERT2BERT warm-started from a BERT-family encoder.

use crate::{
    data::{load_seq2seq, load_summaries, GenerationSpec, SummaryData},
    run,
};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::Seq2Seq;
use pelt_core::Registry;
use pelt_data::TextTokenizer;
use pelt_train::{Family, Outcome, Pristine, Run, Training};
use std::path::{Path, PathBuf};
use tch::Device;

/// A summarization sweep's encoder-decoder (with its pristine weights), tokenizer and settings.
pub struct Summarization<'a> {
    registry: &'a Registry,
    model: Box<dyn Seq2Seq>,
    pristine: Pristine,
    tokenizer: TextTokenizer,
    assets: PathBuf,
    xlsum_dir: Option<PathBuf>,
    /// Where data-to-text tasks are read from (`e2e/`, `webnlg2017/`).
    d2t_dir: Option<PathBuf>,
    training: Training,
    generation: GenerationSpec,
    device: Device,
}

impl<'a> Summarization<'a> {
    /// Loads the encoder-decoder of `backbone` (a T5 / mT5 folder, or a BERT-family folder to warm-start
    /// a BERT2BERT from) and its tokenizer; tasks are read from `assets` and `xlsum_dir`.
    pub fn load(
        registry: &'a Registry,
        backbone: &Path,
        assets: &Path,
        xlsum_dir: Option<&Path>,
        training: &Training,
        generation: GenerationSpec,
        device: Device,
    ) -> Result<Summarization<'a>> {
        let tokenizer = TextTokenizer::load(&backbone.join("tokenizer.json"), training.max_len)?;
        let model = load_seq2seq(backbone, &tokenizer, device)
            .with_context(|| format!("loading the encoder-decoder from {}", backbone.display()))?;
        let pristine = Pristine::of(model.var_store());
        Ok(Summarization {
            registry,
            model,
            pristine,
            tokenizer,
            assets: assets.to_path_buf(),
            xlsum_dir: xlsum_dir.map(Path::to_path_buf),
            d2t_dir: None,
            training: training.clone(),
            generation,
            device,
        })
    }

    /// Reads data-to-text tasks from `dir` (`e2e/`, `webnlg2017/` in the releases' layouts).
    pub fn d2t_dir(mut self, dir: Option<&Path>) -> Summarization<'a> {
        self.d2t_dir = dir.map(Path::to_path_buf);
        self
    }
}

impl Family for Summarization<'_> {
    type Task = SummaryData;

    fn prepare(&self, name: &str) -> Result<SummaryData> {
        let splits = load_summaries(name, &self.assets, self.xlsum_dir.as_deref(), self.d2t_dir.as_deref())?;
        SummaryData::prepare(splits, &self.tokenizer, &self.generation)
    }

    fn digest(&self, _: &SummaryData) -> Option<String> {
        None
    }

    fn run(&self, r: &Run, tasks: &[&SummaryData], bar: &ProgressBar) -> Result<Vec<Outcome>> {
        run::run(
            self.registry,
            self.model.as_ref(),
            &self.tokenizer,
            r.spec,
            tasks,
            r.size,
            r.seed,
            &self.training,
            &self.generation,
            self.device,
            bar,
        )
    }

    fn restore_pretrained(&self) {
        self.pristine.restore();
    }
}
