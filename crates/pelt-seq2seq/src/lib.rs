//! The seq2seq generation task family: summarization (BBC headlines, ACLSum, XL-Sum) on a T5 / mT5 or
//! a warm-started BERT2BERT, with ROUGE-selected checkpoints and greedy or beam decoding; and
//! data-to-text (E2E, WebNLG) scored against every reference, where PCG's content planner ([`plan`])
//! writes each input's plan in front of it. Its runs go through the shared loop of `pelt-train`; the sweep drives it through
//! [`Summarization`], a [`pelt_train::Family`].

#![warn(missing_docs)]

pub mod data;
mod family;
pub mod plan;
pub mod run;

pub use data::{is_summarization, GenerationSpec, SummaryData, SUMMARIZATION};
pub use family::Summarization;
