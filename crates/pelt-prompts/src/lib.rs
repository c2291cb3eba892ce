//! pelt-prompts: methods that add positions rather than modules.
//!
//! - Prompt tuning (Lester et al., EMNLP 2021): soft tokens prepended to the embedded input.
//! - Prefix tuning (Li & Liang, ACL 2021): key/value positions in every layer's attention, produced by
//!   an MLP during training and folded into plain keys and values for inference.
//! - Deep prompts (P-tuning v2, Liu et al., ACL 2022): the same positions trained directly.
//! - IDPG, the input-dependent prefix: a task prefix plus positions generated from each input.
//! - VPT shallow and deep (Jia et al., ECCV 2022): prompt tokens after a ViT's class token, once or in
//!   every layer.
//!
//! The backbone concatenates the positions and extends the attention mask so that they are visible to
//! every token; padding stays masked (the conformance suite checks that padding never changes a real
//! token's output).

#![warn(missing_docs)]

pub mod config;
pub mod idpg;
pub mod prefix;
pub mod prompt;
pub mod vpt;

pub use idpg::Idpg;
pub use prefix::{DeepPrompt, Lightner, PrefixModule, PrefixTuning};
pub use prompt::PromptTuning;
pub use vpt::Vpt;

use config::{DeepPromptConfig, IdpgConfig, PrefixConfig, PromptConfig, VptConfig};
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![
        method_entry!(
            MethodInfo {
                name: "prompt_tuning",
                family: "prompts",
                paper: "Lester et al. 2021, The Power of Scale for Parameter-Efficient Prompt Tuning",
                sites: &[Site::Embeddings],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "P·d (P soft tokens)",
            },
            PromptConfig,
            PromptTuning::new
        ),
        method_entry!(
            MethodInfo {
                name: "lightner",
                family: "prompts",
                paper: "Chen et al. 2022, LightNER: A Lightweight Tuning Paradigm for Low-resource NER via Pluggable Prompting",
                sites: &[Site::AttentionKv],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "as prefix_tuning with P = 10, m = 800 (+ the label-word head of token classification)",
            },
            PrefixConfig,
            prefix::Lightner::new,
            defaults = PrefixConfig { length: 10, mid_dim: 800, ..PrefixConfig::default() }
        ),
        method_entry!(
            MethodInfo {
                name: "prefix_tuning",
                family: "prompts",
                paper: "Li & Liang 2021, Prefix-Tuning: Optimizing Continuous Prompts for Generation",
                sites: &[Site::AttentionKv],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "P·d + (d·m + m) + (m·2Ld + 2Ld) while training (MLP width m); P·2Ld folded",
            },
            PrefixConfig,
            PrefixTuning::new
        ),
        method_entry!(
            MethodInfo {
                name: "deep_prompt",
                family: "prompts",
                paper: "Liu et al. 2022, P-Tuning v2",
                sites: &[Site::AttentionKv],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "P·2Ld",
            },
            DeepPromptConfig,
            DeepPrompt::new
        ),
        method_entry!(
            MethodInfo {
                name: "idpg",
                family: "prompts",
                paper: "Wu et al. 2022, IDPG: An Instance-Dependent Prompt Generation Method (as a prefix: a task prefix plus one generated from the input)",
                sites: &[Site::Embeddings, Site::AttentionKv],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "prefix_tuning (P = 10) + (d·k + k) + (k·P_x·d + P_x·d) (generator width k = 64, P_x = 5)",
            },
            IdpgConfig,
            Idpg::new
        ),
        method_entry!(
            MethodInfo {
                name: "vpt_shallow",
                family: "prompts",
                paper: "Jia et al. 2022, Visual Prompt Tuning (VPT-shallow)",
                sites: &[Site::Embeddings],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "P·d (P tokens after the class token)",
            },
            VptConfig,
            Vpt::shallow
        ),
        method_entry!(
            MethodInfo {
                name: "vpt_deep",
                family: "prompts",
                paper: "Jia et al. 2022, Visual Prompt Tuning (VPT-deep)",
                sites: &[Site::Embeddings],
                form: Form::Concatenated,
                scale: ScaleKind::None,
                formula: "L·P·d (P fresh tokens at every layer's input)",
            },
            VptConfig,
            Vpt::deep
        ),
    ]
}
