//! pelt-vl: vision-language tasks (VL-Adapter's multi-task setting) and temporal video grounding.
//!
//! - [`vqa`]: the vision-language model: an image's patches projected into visual tokens that a text
//!   encoder reads in front of the task's text (VL-T5's form), any method attached as on text.
//! - [`multitask`]: easy-VQA (`evqa`) and CONSTRUCTED captions of its images (`evqa_caption`) as a task
//!   family, one method instance per task or one shared by every task of the sweep.
//! - [`tvg`]: the temporal video grounding model (frame features modulated by the query vector of a
//!   PEFT-tuned text encoder, a temporal transformer, start / end logits), its span loss and decoding,
//!   and the field's metrics (R@1 at IoU 0.3 / 0.5 / 0.7, mean IoU).
//! - [`family`]: temporal grounding as a task family on the constructed sets (`tvg_fashion`,
//!   `tvg_digits`) and a user's Charades-STA (`charades_sta`): the query encoder carries the method, the
//!   grounding model trains in every run.
//! - [`data`]: frame features from a frozen vision backbone (computed once per image) and batches of
//!   videos with their spans.

#![warn(missing_docs)]

pub mod data;
pub mod family;
pub mod multitask;
pub mod tvg;
pub mod vqa;

pub use multitask::{VisionLanguage, VlTask};
pub use vqa::{is_vl, VlSettings, VL};

pub use family::{is_tvg, CharadesSettings, Grounding, TvgSettings, TvgTask, TVG};

pub use tvg::{best_spans, grounding_metrics, span_loss, GroundingHead, TvgConfig};
