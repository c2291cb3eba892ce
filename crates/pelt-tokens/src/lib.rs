//! pelt-tokens: the token classification task family — named-entity recognition on CoNLL / BIO files
//! (WNUT-17, LightNER's K-shot MIT-Restaurant and MIT-Movie splits, CoNLL-2003 where a user has it),
//! every method of the registry on a BERT-family encoder with a linear tag head, scored by entity-level
//! F1 as seqeval computes it (`pelt_data::conll`).

#![warn(missing_docs)]

pub mod data;
pub mod family;
pub mod run;

pub use data::{is_ner, NerFiles, NerTask, PrimingSettings, NER_TASKS, SHOTS};
pub use family::Tokens;
