//! VL-Adapter's model (Sung et al., CVPR 2022) from what pelt has, in VL-T5's form: an image becomes
//! visual tokens that the text encoder reads in front of the task's text, and every task is answered
//! from the encoder's output — by a classifier over the answer set (visual question answering) or by
//! the encoder-decoder (captioning).
//!
//! VL-T5 projects frozen region features with a trainable linear map. No pretrained vision encoder
//! that sees colour can be had here (pelt's own ViT is pretrained on grey digits), so the visual
//! features are the image's raw patches, as a ViT's patch embedding reads them: each `patch` × `patch`
//! RGB square, scaled to [−1, 1], is one token through the trainable projection. The projection
//! trains in every run, whatever the method, as VL-Adapter's visual projection does.

use pelt_core::{Attachment, Delta, Prefix, Site};
use pelt_data::vision::ImageSet;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// The vision-language task names: easy-VQA's questions, CONSTRUCTED captions of its images, and a
/// user's VQAv2.
pub const VL: [&str; 3] = ["evqa", "evqa_caption", "vqav2"];

/// Whether `task` is a vision-language task.
pub fn is_vl(task: &str) -> bool {
    VL.contains(&task)
}

/// An experiment's `vl:` section (every field has a default, so the section may be left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlSettings {
    /// Side of the square patches each 64 × 64 image is cut into; each is one visual token.
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Most tokens a generated caption may have.
    #[serde(default = "default_caption_tokens")]
    pub caption_tokens: usize,
    /// VQAv2 in a user's folder, for the `vqav2` task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vqav2: Option<Vqav2Settings>,
    /// How a shared run draws its tasks' batches.
    #[serde(default)]
    pub sampling: Sampling,
}

/// How a shared run draws its tasks' batches each epoch, as VL-T5's multi-task loader (`MultitaskLoader`,
/// which VL-Adapter trains with) offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every task's batches once, shuffled together, so tasks come in proportion to their sizes (VL-T5's
    /// `roundrobin`, its default).
    #[default]
    Proportional,
    /// The same number of batches from every task (the epoch's total over the number of tasks; a small
    /// task's examples go round again, reshuffled), VL-T5's `balanced`.
    Balanced,
}

/// VQAv2 as released, in one folder: `v2_OpenEnded_mscoco_<split>_questions.json`,
/// `v2_mscoco_<split>_annotations.json` and the COCO image folder `<split>/` (`COCO_<split>_<id>.jpg`),
/// for `train2014` (training and dev) and `val2014` (test; test-dev's answers are not released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vqav2Settings {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// Side the images are resized to (a multiple of `patch`). Every image is held in memory as bytes:
    /// train2014 and val2014's 123,287 images take 1.5 GB at 64 (the default), 18.6 GB at 224.
    #[serde(default = "default_vqav2_side")]
    pub image_size: usize,
    /// The answer classifier's answers: the most frequent answers of the training questions (VL-T5 and
    /// LXMERT keep 3,129).
    #[serde(default = "default_vqav2_answers")]
    pub answers: usize,
}

fn default_vqav2_side() -> usize {
    64
}

fn default_vqav2_answers() -> usize {
    3129
}

/// VQAv2's file names for `split` (`train2014`, `val2014`) in `dir`: questions, annotations, images.
pub fn vqav2_files(dir: &std::path::Path, split: &str) -> [std::path::PathBuf; 3] {
    [
        dir.join(format!("v2_OpenEnded_mscoco_{split}_questions.json")),
        dir.join(format!("v2_mscoco_{split}_annotations.json")),
        dir.join(split),
    ]
}

fn default_patch() -> usize {
    16
}

fn default_caption_tokens() -> usize {
    8
}

impl Default for VlSettings {
    fn default() -> Self {
        VlSettings {
            patch: default_patch(),
            caption_tokens: default_caption_tokens(),
            vqav2: None,
            sampling: Sampling::default(),
        }
    }
}

/// easy-VQA's image side.
pub const IMAGE_SIDE: usize = 64;

impl VlSettings {
    /// Refuses settings the model cannot be built with for `tasks`: (field, why).
    pub fn check(&self, tasks: &[String]) -> std::result::Result<(), (String, String)> {
        let easy = tasks.iter().any(|t| t.starts_with("evqa"));
        if self.patch < 4 || (easy && !IMAGE_SIDE.is_multiple_of(self.patch)) {
            return Err((
                "patch".into(),
                format!("must divide easy-VQA's {IMAGE_SIDE} and be at least 4, got {}", self.patch),
            ));
        }
        if self.caption_tokens == 0 {
            return Err(("caption_tokens".into(), "must be at least 1".into()));
        }
        if tasks.iter().any(|t| t == "vqav2") {
            let Some(v) = &self.vqav2 else {
                return Err(("vqav2".into(), "the vqav2 task needs `vqav2: {dir}` (the release's folder)".into()));
            };
            if v.image_size < self.patch || !v.image_size.is_multiple_of(self.patch) {
                let why = format!("image_size {} must be a multiple of patch ({})", v.image_size, self.patch);
                return Err(("vqav2".into(), why));
            }
            if v.answers < 2 {
                return Err(("vqav2".into(), format!("answers must be at least 2, got {}", v.answers)));
            }
            for split in ["train2014", "val2014"] {
                if let Some(missing) = vqav2_files(&v.dir, split).into_iter().find(|f| !f.exists()) {
                    return Err(("vqav2".into(), format!("{}: no such file or folder", missing.display())));
                }
            }
        } else if self.vqav2.is_some() {
            return Err(("vqav2".into(), "only for the vqav2 task".into()));
        }
        Ok(())
    }

    /// Values per visual feature (a patch's RGB values).
    pub fn feature_width(&self) -> i64 {
        (3 * self.patch * self.patch) as i64
    }
}

/// Images `rows` of `images` (RGB, `side` × `side`) cut into `patch` × `patch` squares, row by row:
/// (batch, (side / patch)², 3 · patch²), each square's values channel-major as a ViT's patch
/// convolution reads them, scaled from [0, max] to [−1, 1].
pub fn patches(images: &ImageSet, rows: &[usize], patch: usize, device: Device) -> Tensor {
    let (c, s) = (images.channels, images.size);
    let per = c * s * s;
    let pixels: Vec<u8> = rows.iter().flat_map(|&i| images.pixels[i * per..(i + 1) * per].iter().copied()).collect();
    let (b, c, s, p) = (rows.len() as i64, c as i64, s as i64, patch as i64);
    let g = s / p;
    Tensor::from_slice(&pixels)
        .to_kind(Kind::Float)
        .view([b, c, g, p, g, p])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([b, g * g, c * p * p])
        .divide_scalar(f64::from(images.max_value) / 2.0)
        .g_sub_scalar(1.0)
        .to_device(device)
}

/// The trainable projection of visual features into the text encoder's word-embedding width.
#[derive(Debug)]
pub struct VisualProjection {
    linear: nn::Linear,
}

impl VisualProjection {
    /// A projection from `features` values to `width`, under `path` (PyTorch's default Linear init, as
    /// VL-T5's `nn.Linear`).
    pub fn new(path: nn::Path, features: i64, width: i64) -> VisualProjection {
        VisualProjection { linear: nn::linear(path, features, width, Default::default()) }
    }

    /// Visual tokens (batch, n, width) of features (batch, n, features).
    pub fn forward(&self, features: &Tensor) -> Tensor {
        features.apply(&self.linear)
    }
}

/// A method with one batch's visual tokens: every hook is the method's, and the visual tokens go in
/// front of the input's word embeddings (after any soft prompt the method puts there), where the
/// backbone adds positions and segment embeddings and normalises them with the text's.
pub struct Visual<'a> {
    inner: &'a dyn Attachment,
    tokens: Tensor,
}

impl<'a> Visual<'a> {
    /// `method` with visual tokens (batch, n, word width).
    pub fn new(method: &'a dyn Attachment, tokens: Tensor) -> Visual<'a> {
        Visual { inner: method, tokens }
    }
}

impl Attachment for Visual<'_> {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        self.inner.projection(layer, site, x, train)
    }
    fn projection_input(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Tensor> {
        self.inner.projection_input(layer, site, x, train)
    }
    fn projection_output(&self, layer: usize, site: Site, h: &Tensor, train: bool) -> Option<Tensor> {
        self.inner.projection_output(layer, site, h, train)
    }
    fn sublayer(&self, layer: usize, site: Site, x: &Tensor, h: &Tensor, train: bool) -> Option<Delta> {
        self.inner.sublayer(layer, site, x, h, train)
    }
    fn residual_sublayer(&self, layer: usize, site: Site, sum: &dyn Fn() -> Tensor, train: bool) -> Option<Delta> {
        self.inner.residual_sublayer(layer, site, sum, train)
    }
    fn begin_stack(&self, keep: &Tensor, causal: bool) {
        self.inner.begin_stack(keep, causal)
    }
    fn prefix(&self, layer: usize, x: &Tensor, train: bool) -> Option<Prefix> {
        self.inner.prefix(layer, x, train)
    }
    fn prompt(&self, embeddings: &Tensor, mask: &Tensor, train: bool) -> Option<Tensor> {
        self.inner.prompt(embeddings, mask, train)
    }
    fn input_prompt(&self, batch: i64, train: bool) -> Option<Tensor> {
        // Only the encoder asks (a decoder embeds its own tokens), once per batch: the batch's images.
        debug_assert_eq!(batch, self.tokens.size()[0], "one image per input");
        Some(match self.inner.input_prompt(batch, train) {
            Some(soft) => Tensor::cat(&[soft, self.tokens.shallow_clone()], 1),
            None => self.tokens.shallow_clone(),
        })
    }
    fn layer_prompt(&self, layer: usize, batch: i64, train: bool) -> Option<Tensor> {
        self.inner.layer_prompt(layer, batch, train)
    }
    fn activation(&self, layer: usize, x: &Tensor, train: bool) -> Option<Tensor> {
        self.inner.activation(layer, x, train)
    }
    fn decodes_incrementally(&self) -> bool {
        self.inner.decodes_incrementally()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_core::{Backbone, Inputs, NoMethod};

    #[test]
    fn patches_keep_each_square_whole_and_scale_to_unit_range() {
        // A 4 × 4 RGB image whose value at (c, y, x) is 16c + 4y + x, cut into 2 × 2 squares.
        let pixels: Vec<u8> = (0..3u8).flat_map(|c| (0..16u8).map(move |i| 16 * c + i)).collect();
        let set = ImageSet { pixels, labels: vec![0], channels: 3, size: 4, max_value: 2 };
        let p = patches(&set, &[0], 2, Device::Cpu);
        assert_eq!(p.size(), [1, 4, 12]);
        // Square 1 is rows 0-1, columns 2-3; its values channel-major: (0,0,2) (0,0,3) (0,1,2) (0,1,3) (1,0,2)…
        let got = Vec::<f32>::try_from(p.get(0).get(1).g_add_scalar(1.0)).unwrap();
        let want: Vec<f32> = [2, 3, 6, 7, 18, 19, 22, 23, 34, 35, 38, 39].iter().map(|&v| v as f32).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn settings_refuse_patches_that_do_not_tile_the_image() {
        let easy = ["evqa".to_owned()];
        assert!(VlSettings::default().check(&easy).is_ok());
        let bad = VlSettings { patch: 12, ..VlSettings::default() };
        assert_eq!(bad.check(&easy).unwrap_err().0, "patch");
        let vqa = ["vqav2".to_owned()];
        assert_eq!(VlSettings::default().check(&vqa).unwrap_err().0, "vqav2");
        let dir = tempfile::tempdir().unwrap();
        let with = |image_size| VlSettings {
            patch: 32,
            vqav2: Some(Vqav2Settings { dir: dir.path().into(), image_size, answers: 10 }),
            ..VlSettings::default()
        };
        let (field, why) = with(200).check(&vqa).unwrap_err();
        assert!(field == "vqav2" && why.contains("multiple of patch"), "{why}");
        let (_, why) = with(224).check(&vqa).unwrap_err();
        assert!(why.contains("v2_OpenEnded_mscoco_train2014_questions.json: no such file"), "{why}");
    }

    #[test]
    fn visual_tokens_come_first_and_change_the_encoding() {
        let config = pelt_backbone::BertConfig::tiny();
        let bert = pelt_backbone::Bert::random(&config, 0, Device::Cpu);
        let ids = Tensor::from_slice(&[1i64, 7, 8, 2]).view([1, 4]);
        let x = Inputs::text(ids.shallow_clone(), ids.ones_like(), ids.zeros_like());
        let width = bert.dims().embedding_width();
        let plain = bert.forward(&x, &NoMethod, false);
        let a =
            bert.forward(&x, &Visual::new(&NoMethod, Tensor::randn([1, 3, width], (Kind::Float, Device::Cpu))), false);
        let b =
            bert.forward(&x, &Visual::new(&NoMethod, Tensor::randn([1, 3, width], (Kind::Float, Device::Cpu))), false);
        assert_eq!(a.inserted, (0, 3));
        assert_eq!(a.hidden.size(), [1, 7, bert.dims().hidden]);
        // The text positions read the image: another image, other states.
        assert!(!a.own_positions().allclose(&b.own_positions(), 1e-4, 1e-4, false));
        assert_eq!(plain.hidden.size(), [1, 4, bert.dims().hidden]);
    }
}
