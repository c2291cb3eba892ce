//! Temporal video grounding as a [`Family`]: a text encoder (the experiment's `backbone`) encodes each
//! query with the method attached, a frozen vision backbone gives each frame's feature, and the
//! grounding model ([`GroundingHead`]) trains in every run, as a task head does.
//!
//! Tasks:
//! - `tvg_fashion`: CONSTRUCTED videos of Fashion-MNIST images ("when is a sandal shown?", see
//!   `pelt_data::vl::constructed_grounding`);
//! - `tvg_digits`: CONSTRUCTED videos of MNIST 5k digits ("when is a digit seven shown?");
//! - `charades_sta`: Charades-STA as released (`sta_train.txt`, `sta_test.txt` and one `.npy` of clip
//!   features per video under `features/` in `tvg.charades.dir`), a user's copy: each video's features
//!   resampled to `tvg.frames`, each span's seconds mapped to frames at `tvg.charades.fps` feature
//!   frames a second; every tenth training video (in id order) is the dev set.
//!
//! Training and dev videos are built from `pool` training images (a fixed draw; videos with seeds 1
//! and 2), test videos from `pool / 4` test images (seed 3), so no test frame was seen in training. A
//! run draws K training videos with its seed; dev R@1 at IoU 0.5 selects the checkpoint; the record's
//! score is the test R@1 at IoU 0.5, with R@1 at 0.3 and 0.7 and the mean IoU beside it.

use crate::data::{frame_features, video_batch};
use crate::tvg::{best_spans, grounding_metrics, span_loss, GroundingHead, TvgConfig};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::{head::pool, Pooling};
use pelt_core::{params, Backbone, Method, Registry};
use pelt_data::vl::{constructed_grounding, ConstructedVideo};
use pelt_data::{Encoding, TextTokenizer};
use pelt_records::DataSize;
use pelt_train::{
    batch::{capped, inputs},
    fit, total_steps, AdamW, EvalClock, Family, Outcome, Plan, Pristine, Run, Selection, Steps, Training,
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// The temporal grounding task names: two constructed sets and Charades-STA.
pub const TVG: [&str; 3] = ["tvg_fashion", "tvg_digits", "charades_sta"];

/// Charades-STA in a user's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharadesSettings {
    /// The folder of `sta_train.txt`, `sta_test.txt` and `features/<video>.npy`.
    pub dir: PathBuf,
    /// Feature frames per second of video (the extractor's rate).
    pub fps: f64,
}

/// Whether `task` is a temporal grounding task.
pub fn is_tvg(task: &str) -> bool {
    TVG.contains(&task)
}

/// An experiment's `tvg:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TvgSettings {
    /// The frozen vision backbone whose class token is each frame's feature in the constructed sets (an
    /// HF ViT folder, such as the one `pelt pretrain-vit` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision: Option<PathBuf>,
    /// Charades-STA's folder and feature rate, for `charades_sta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charades: Option<CharadesSettings>,
    /// Frames per constructed video.
    #[serde(default = "default_frames")]
    pub frames: usize,
    /// Training images (and a quarter as many test images) the videos are built from.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// Videos in the training pool (K are drawn per run), the dev set and the test set.
    #[serde(default = "default_videos")]
    pub videos: [usize; 3],
    /// The grounding model's sizes.
    #[serde(default)]
    pub model: TvgConfig,
}

fn default_frames() -> usize {
    16
}
fn default_pool() -> usize {
    4000
}
fn default_videos() -> [usize; 3] {
    [2000, 200, 500]
}

impl TvgSettings {
    /// Refuses settings the sets cannot be built with: the message names the field.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        let bad = |field: &str, why: String| Err((field.to_owned(), why));
        if self.frames < 4 || self.frames as i64 > self.model.max_frames {
            return bad(
                "frames",
                format!("must be in 4..={} (model.max_frames), got {}", self.model.max_frames, self.frames),
            );
        }
        if self.pool < 40 {
            return bad("pool", format!("must be at least 40 images, got {}", self.pool));
        }
        if self.videos.contains(&0) {
            return bad("videos", "train, dev and test need at least one video each".into());
        }
        let m = &self.model;
        if m.hidden < 1 || m.heads < 1 || m.hidden % m.heads != 0 {
            return bad("model", format!("hidden ({}) must be a positive multiple of heads ({})", m.hidden, m.heads));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad("model", format!("dropout must be in [0, 1), got {}", m.dropout));
        }
        if let Some(c) = self.charades.as_ref().filter(|c| !(c.fps > 0.0 && c.fps.is_finite())) {
            return bad("charades", format!("fps must be a positive number, got {}", c.fps));
        }
        Ok(())
    }
}

/// A grounding task as runs take it: frame features, videos and their tokenised queries.
#[derive(Debug)]
pub struct TvgTask {
    name: String,
    /// Frame features of the training images, then of the test images (test videos index past them).
    features: Tensor,
    /// Training pool, dev and test videos.
    videos: [Vec<ConstructedVideo>; 3],
    /// Each video's tokenised query, per split.
    queries: [Vec<Encoding>; 3],
    digest: String,
}

/// The grounding family: text encoder (with its pristine weights), tokenizer, settings.
pub struct Grounding<'a> {
    registry: &'a Registry,
    backbone: Box<dyn Backbone>,
    pristine: Pristine,
    tokenizer: TextTokenizer,
    vision: Option<Box<dyn Backbone>>,
    assets: PathBuf,
    settings: TvgSettings,
    training: Training,
    device: Device,
}

impl<'a> Grounding<'a> {
    /// Loads the text encoder at `backbone` and the vision backbone of `settings`.
    pub fn load(
        registry: &'a Registry,
        backbone: &Path,
        assets: &Path,
        settings: &TvgSettings,
        training: &Training,
        device: Device,
    ) -> Result<Grounding<'a>> {
        let model = pelt_backbone::load(backbone, device).with_context(|| format!("loading {}", backbone.display()))?;
        if model.dims().image.is_some() || model.dims().is_t5() {
            bail!("{}: temporal grounding encodes queries with a text encoder (BERT family)", backbone.display());
        }
        let vision = match &settings.vision {
            Some(dir) => {
                let v = pelt_backbone::load(dir, device)
                    .with_context(|| format!("loading the vision backbone {}", dir.display()))?;
                if v.dims().image.is_none() {
                    bail!("{}: `tvg.vision` must be a vision backbone (a ViT)", dir.display());
                }
                Some(v)
            }
            None => None,
        };
        let tokenizer = TextTokenizer::load(&backbone.join("tokenizer.json"), training.max_len)?;
        Ok(Grounding {
            registry,
            pristine: Pristine::of(model.var_store()),
            backbone: model,
            tokenizer,
            vision,
            assets: assets.to_owned(),
            settings: settings.clone(),
            training: training.clone(),
            device,
        })
    }
}

/// The image set and class names a grounding task's videos are built from.
fn images(name: &str, assets: &Path) -> Result<(pelt_data::vision::VisionDataset, Vec<String>)> {
    use pelt_data::vision;
    let hint = |e: pelt_data::DataError| anyhow!("{e} (run the set-up: scripts/setup.sh)");
    match name {
        "tvg_fashion" => Ok((
            vision::idx_folder(name, &assets.join("fashion_mnist"), &vision::FASHION_CLASSES).map_err(hint)?,
            vision::FASHION_CLASSES.iter().map(|c| c.to_lowercase()).collect(),
        )),
        "tvg_digits" => {
            let names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
            Ok((
                vision::csv_images(name, &assets.join("vision/mnist_5k.csv.gz"), 28, 255).map_err(hint)?,
                names.iter().map(|n| format!("digit {n}")).collect(),
            ))
        }
        other => bail!("unknown temporal grounding task `{other}` (known: {})", TVG.join(", ")),
    }
}

impl Family for Grounding<'_> {
    type Task = TvgTask;

    fn prepare(&self, name: &str) -> Result<TvgTask> {
        if name == "charades_sta" {
            return self.charades();
        }
        let s = &self.settings;
        let vision = self.vision.as_deref().ok_or_else(|| anyhow!("{name}: the constructed sets need `tvg.vision`"))?;
        let (data, names) = images(name, &self.assets)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // A fixed draw of each split's images (a file sorted by class would otherwise give one class).
        let take = |n: usize, len: usize| {
            let mut all: Vec<usize> = (0..len).collect();
            all.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
            all.truncate(n);
            all
        };
        let train_images = data.train.select(&take(s.pool, data.train.len()));
        let test_images = data.test.select(&take(s.pool / 4, data.test.len()));
        let build = |set, n, seed| constructed_grounding(set, &names, n, s.frames, seed).map_err(|e| anyhow!("{e}"));
        let train = build(&train_images, s.videos[0], 1)?;
        let dev = build(&train_images, s.videos[1], 2)?;
        let mut test = build(&test_images, s.videos[2], 3)?;
        // Test videos index the test images, stored after the training images' features.
        for v in &mut test {
            for f in &mut v.frames {
                *f += train_images.len();
            }
        }
        let features = Tensor::cat(
            &[frame_features(vision, &train_images, self.device), frame_features(vision, &test_images, self.device)],
            0,
        );
        self.task(name, features, [train, dev, test])
    }

    fn digest(&self, task: &TvgTask) -> Option<String> {
        Some(task.digest.clone())
    }

    fn run(&self, r: &Run, tasks: &[&TvgTask], bar: &ProgressBar) -> Result<Vec<Outcome>> {
        let [task] = tasks else { bail!("a grounding run trains one task, not {}", tasks.len()) };
        Ok(vec![self.train(r, task, bar)?])
    }

    fn restore_pretrained(&self) {
        self.pristine.restore();
    }
}

/// What stays fixed through a run.
struct Ctx<'a> {
    backbone: &'a dyn Backbone,
    method: &'a dyn Method,
    head: &'a GroundingHead,
    task: &'a TvgTask,
    pad_id: i64,
    training: &'a Training,
    device: Device,
    clock: EvalClock,
}

impl Ctx<'_> {
    /// Start and end logits of videos `rows` of split `split` (0 train, 1 dev, 2 test).
    fn logits(&self, split: usize, rows: &[usize], train: bool) -> (Tensor, Tensor, crate::data::VideoBatch) {
        let t = self.task;
        let enc: Vec<&Encoding> = rows.iter().map(|&i| &t.queries[split][i]).collect();
        let x = inputs(&enc, self.pad_id, self.device);
        // The query vector: the mean of the encoder's states over the query's real tokens.
        let query = pool(&self.backbone.forward(&x, self.method, train), Pooling::Mean);
        let batch = video_batch(&t.videos[split], rows, &t.features);
        let (s, e) = self.head.forward(&batch.frames, &batch.mask, &query, train);
        (s, e, batch)
    }

    /// Metrics (×100) of split `split`'s videos `rows`, and a few (query, predicted, gold) samples.
    fn evaluate(&self, split: usize, rows: &[usize]) -> (BTreeMap<String, f64>, Vec<pelt_train::Sample>) {
        let (mut predicted, mut gold, mut samples) = (Vec::new(), Vec::new(), Vec::new());
        self.clock.measure(rows.len(), || {
            tch::no_grad(|| {
                for chunk in rows.chunks(self.training.eval_batch_size.max(1)) {
                    let (s, e, _) = self.logits(split, chunk, false);
                    for (&r, (i, j)) in chunk.iter().zip(best_spans(&s, &e)) {
                        let v = &self.task.videos[split][r];
                        predicted.push((i as f64, (j + 1) as f64));
                        gold.push((v.start as f64, v.end as f64));
                        if samples.len() < 20 {
                            samples.push(pelt_train::Sample {
                                input: v.query.clone(),
                                generated: format!("frames [{i}, {})", j + 1),
                                reference: format!("frames [{}, {})", v.start, v.end),
                            });
                        }
                    }
                }
            })
        });
        (grounding_metrics(&predicted, &gold), samples)
    }
}

/// The loop's hooks: shuffled batches of the run's training videos, the span loss, dev R@1 at IoU 0.5.
struct Loop<'a> {
    ctx: &'a Ctx<'a>,
    train: Vec<usize>,
    dev: Vec<usize>,
}

/// The metric that selects checkpoints and is the record's score.
const SCORE: &str = "r1_iou0.5";

impl Steps for Loop<'_> {
    type Batch = Vec<usize>;

    fn epoch(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        let mut order = self.train.clone();
        order.shuffle(rng);
        order.chunks(self.ctx.training.batch_size.max(1)).map(<[usize]>::to_vec).collect()
    }

    fn loss(&self, rows: &Vec<usize>) -> (Tensor, usize) {
        let (s, e, b) = self.ctx.logits(0, rows, true);
        (span_loss(&s, &e, &b.start, &b.last), rows.len())
    }

    fn dev_score(&self) -> Result<f64> {
        Ok(self.ctx.evaluate(1, &self.dev).0[SCORE])
    }
}

impl Grounding<'_> {
    /// A task from its frame features and videos: the queries tokenised, the digest of what was built.
    fn task(&self, name: &str, features: Tensor, videos: [Vec<ConstructedVideo>; 3]) -> Result<TvgTask> {
        let encode = |videos: &[ConstructedVideo]| -> Result<Vec<Encoding>> {
            let texts: Vec<&str> = videos.iter().map(|v| v.query.as_str()).collect();
            Ok(self.tokenizer.encode_texts(&texts)?)
        };
        let queries = [encode(&videos[0])?, encode(&videos[1])?, encode(&videos[2])?];
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for v in videos.iter().flatten() {
            h.update(format!("{:?}|{}|{}|{}|{}\n", v.frames, v.class, v.start, v.end, v.query));
        }
        h.update(serde_json::to_string(&self.settings)?);
        let digest = format!("{:x}", h.finalize())[..16].to_owned();
        Ok(TvgTask { name: name.to_owned(), features, videos, queries, digest })
    }

    /// Charades-STA from the user's folder: each video's features read once and resampled to
    /// `tvg.frames`, its moments' seconds mapped to those frames; every tenth training video (in id
    /// order) and its moments are the dev set.
    fn charades(&self) -> Result<TvgTask> {
        let s = &self.settings;
        let c = s.charades.as_ref().ok_or_else(|| anyhow!("charades_sta needs `tvg.charades` (dir, fps)"))?;
        let features_dir = c.dir.join("features");
        let read =
            |file: &str| pelt_data::vl::read_charades_sta(&c.dir.join(file), &features_dir).map_err(|e| anyhow!("{e}"));
        let (train, test) = (read("sta_train.txt")?, read("sta_test.txt")?);
        let mut ids: Vec<&str> = train.iter().map(|m| m.video.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let dev_videos: std::collections::BTreeSet<&str> = ids.iter().copied().step_by(10).collect();
        // One block of `frames` rows per video, in first-seen order.
        let t = s.frames;
        let (mut rows, mut dim, mut at): (Vec<f32>, usize, BTreeMap<String, (usize, usize)>) =
            (Vec::new(), 0, BTreeMap::new());
        let mut videos: [Vec<ConstructedVideo>; 3] = Default::default();
        for (split, moments) in [(0usize, &train), (2, &test)] {
            for m in moments {
                if !at.contains_key(&m.video) {
                    let path = features_dir.join(format!("{}.npy", m.video));
                    let (frames, d, values) = pelt_data::vl::read_features(&path).map_err(|e| anyhow!("{e}"))?;
                    if dim != 0 && d != dim {
                        bail!("{}: features of dimension {d}, the others' are {dim}", path.display());
                    }
                    dim = d;
                    at.insert(m.video.clone(), (rows.len() / d.max(1) / t.max(1), frames));
                    rows.extend(crate::data::resample(&values, frames, d, t));
                }
                let (block, frames) = at[&m.video];
                let (start, end) = crate::data::span_frames(m.start, m.end, c.fps, frames, t);
                let split = if split == 0 && dev_videos.contains(m.video.as_str()) { 1 } else { split };
                videos[split].push(ConstructedVideo {
                    frames: (block * t..(block + 1) * t).collect(),
                    class: 0,
                    start,
                    end,
                    query: m.query.clone(),
                });
            }
        }
        if videos.iter().any(Vec::is_empty) {
            bail!("{}: charades_sta needs training, dev and test moments", c.dir.display());
        }
        let n = (rows.len() / dim.max(1)) as i64;
        let features = Tensor::from_slice(&rows).view([n, dim as i64]).to_device(self.device);
        self.task("charades_sta", features, videos)
    }

    fn train(&self, r: &Run, task: &TvgTask, bar: &ProgressBar) -> Result<Outcome> {
        let (spec, training, device) = (r.spec, &self.training, self.device);
        let k = match r.size {
            DataSize::Examples(k) => Some(k),
            DataSize::All => None,
            DataSize::Shot(_) => bail!("{}: sizes are numbers of videos or `all`", task.name),
        };
        let split = pelt_data::sampler::low_resource(task.videos[0].len(), k, true, r.seed)
            .with_context(|| format!("sampling {} videos of {}", r.size.label(), task.name))?;
        let dev = capped(task.videos[1].len(), training.dev_limit);
        let test = capped(task.videos[2].len(), training.test_limit);

        let method = pelt_train::seeded_method(self.registry, spec, self.backbone.as_ref(), r.seed, device)?;
        // The grounding model is drawn after the method, from the same seeded generator.
        let head_vs = nn::VarStore::new(device);
        let frame_dim = task.features.size()[1];
        let head =
            GroundingHead::new(head_vs.root(), frame_dim, self.backbone.dims().hidden, self.settings.model.clone());
        let trainable = params::prepare_training(self.backbone.as_ref(), method.as_ref());
        let mut all: Vec<(String, Tensor)> = trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        all.extend(head_vs.variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
        all.sort_by(|a, b| a.0.cmp(&b.0));

        let ctx = Ctx {
            backbone: self.backbone.as_ref(),
            method: method.as_ref(),
            head: &head,
            task,
            pad_id: self.tokenizer.pad_id,
            training,
            device,
            clock: EvalClock::default(),
        };
        // SNIP scores weights by the loss gradient at init: the first training videos, dropout off, each
        // batch's mean-loss gradient summed (as the other families do).
        pelt_core::run_calibration(method.as_ref(), split.train.len(), training.batch_size, |chunk| {
            let rows: Vec<usize> = chunk.iter().map(|&p| split.train[p]).collect();
            let (s, e, b) = ctx.logits(0, &rows, false);
            span_loss(&s, &e, &b.start, &b.last)
        });
        let head_params = params::numel(head_vs.trainable_variables().iter());
        let counts = params::count(self.backbone.as_ref(), method.as_ref(), head_params);
        let train_n = split.train.len();
        let hooks = Loop { ctx: &ctx, train: split.train, dev: dev.clone() };
        let total = total_steps(training, train_n.div_ceil(training.batch_size.max(1)));
        let head_scale = training.head_lr.map_or(1.0, |h| h / spec.lr);
        let mut opt = AdamW::new(&all, training.weight_decay)
            .scale_group("head.", head_scale)
            .method_rates(method.as_ref(), spec.lr);
        let mut rng = ChaCha8Rng::seed_from_u64(r.seed ^ 0x5eed);
        let mut selection = Selection::default();
        let plan = Plan { opt: &mut opt, method: method.as_ref(), params: &all, lr: spec.lr, total, training };
        let fitted = fit(&hooks, plan, &mut rng, &mut selection, bar)?;
        let mut outcome = Outcome {
            diverged: fitted.diverged.clone(),
            score: None,
            metrics: BTreeMap::new(),
            best_dev: None,
            curve: selection.curve().to_vec(),
            steps: fitted.steps,
            sizes: (train_n, dev.len(), test.len()),
            params: counts,
            train_eps: fitted.examples_per_second(),
            eval_eps: None,
            diagnostics: method.diagnostics().into_iter().collect(),
            samples: Vec::new(),
            checkpoint: None,
        };
        if fitted.diverged.is_none() {
            let best = selection.restore_best(&all).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
            let (metrics, samples) = ctx.evaluate(2, &test);
            outcome.score = metrics.get(SCORE).copied();
            outcome.metrics = metrics;
            outcome.best_dev = Some(best);
            outcome.samples = samples;
        }
        outcome.eval_eps = ctx.clock.examples_per_second();
        Ok(outcome)
    }
}
