//! pelt-vl: vision-language and temporal video grounding (issue 40, in progress).
//!
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
pub mod tvg;

pub use family::{is_tvg, CharadesSettings, Grounding, TvgSettings, TvgTask, TVG};

pub use tvg::{best_spans, grounding_metrics, span_loss, GroundingHead, TvgConfig};
