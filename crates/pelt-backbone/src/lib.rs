//! pelt-backbone: pretrained transformers with named attachment sites.
//!
//! Each model is one file with blocks named like the checkpoint's tensors, so HF `model.safetensors`
//! files load by name, and each block calls the [`pelt_core::Attachment`] hooks at its sites.

#![warn(missing_docs)]

pub mod bert;
pub mod head;
pub mod loader;
pub mod vit;

pub use bert::{Bert, BertConfig};
pub use head::{ClassificationHead, Pooling};
pub use vit::{Vit, VitConfig};
