//! pelt-adapters: small modules inserted into the backbone's sublayers.
//!
//! - Houlsby (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019): a
//!   down-projection, nonlinearity and up-projection after the attention sublayer and after the FFN,
//!   in sequential form (Δ computed from the sublayer output h, added before the residual and
//!   LayerNorm), initialised near identity; the layers' LayerNorms train too, as in the paper.
//! - Pfeiffer (Pfeiffer et al., "AdapterFusion", EACL 2021): one such adapter after the FFN only, ReLU,
//!   reduction factor 16, LayerNorms frozen. pelt adds Δ before the FFN's residual and LayerNorm, as
//!   for Houlsby; adapter-transformers applies it after the original LayerNorm and normalises again.
//! - Parallel and scaled parallel adapters (He et al., "Towards a Unified View of Parameter-Efficient
//!   Transfer Learning", ICLR 2022): the bottleneck reads the sublayer's input and runs beside it, its
//!   output scaled by s (1, or 4 for the scaled variant).
//! - AdapterBias (Fu et al., NAACL Findings 2022): a token-dependent shift α_i·v of the FFN output.
//! - SparseAdapter (He et al., EMNLP Findings 2022): Houlsby adapters pruned at init (SNIP, random or
//!   magnitude), pruned weights held at zero; Large-Sparse doubles the bottleneck at the same budget.

#![warn(missing_docs)]

pub mod adapter_bias;
pub mod config;
pub mod parallel;
pub mod sequential;
pub mod sparse;

pub use adapter_bias::AdapterBias;
pub use parallel::{ParallelAdapter, ParallelModule};
pub use sequential::SequentialAdapter;
pub use sparse::SparseAdapter;

use config::{AdapterBiasConfig, BottleneckConfig, ParallelConfig, SparseConfig};
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![
        method_entry!(
            MethodInfo {
                name: "houlsby",
                family: "adapters",
                paper: "Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP",
                sites: &[Site::AttentionOutput, Site::FfnOutput, Site::LayerNorm],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "L·s·(2dm + d + m) + L·4d with LayerNorms (s sites, bottleneck m)",
            },
            BottleneckConfig,
            SequentialAdapter::houlsby
        ),
        method_entry!(
            MethodInfo {
                name: "pfeiffer",
                family: "adapters",
                paper: "Pfeiffer et al. 2021, AdapterFusion",
                sites: &[Site::FfnOutput],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "L·(2dm + d + m) (bottleneck m)",
            },
            BottleneckConfig,
            SequentialAdapter::pfeiffer,
            defaults = BottleneckConfig::pfeiffer()
        ),
        method_entry!(
            MethodInfo {
                name: "parallel_adapter",
                family: "adapters",
                paper: "He et al. 2022, Towards a Unified View of Parameter-Efficient Transfer Learning",
                sites: &[Site::FfnOutput],
                form: Form::Parallel,
                scale: ScaleKind::Fixed,
                formula: "L·(2dm + d + m) (bottleneck m, s = 1)",
            },
            ParallelConfig,
            ParallelAdapter::plain
        ),
        method_entry!(
            MethodInfo {
                name: "scaled_parallel_adapter",
                family: "adapters",
                paper: "He et al. 2022, Towards a Unified View of Parameter-Efficient Transfer Learning",
                sites: &[Site::FfnOutput],
                form: Form::Parallel,
                scale: ScaleKind::Fixed,
                formula: "L·(2dm + d + m) (bottleneck m, s = 4)",
            },
            ParallelConfig,
            ParallelAdapter::scaled,
            defaults = ParallelConfig::scaled()
        ),
        method_entry!(
            MethodInfo {
                name: "adapter_bias",
                family: "adapters",
                paper: "Fu et al. 2022, AdapterBias",
                sites: &[Site::FfnOutput, Site::LayerNorm],
                form: Form::Parallel,
                scale: ScaleKind::Fixed,
                formula: "L·(d_ff + 1 + d) + (L + 1)·2d with the non-attention LayerNorms",
            },
            AdapterBiasConfig,
            AdapterBias::new
        ),
        method_entry!(
            MethodInfo {
                name: "sparse_adapter",
                family: "adapters",
                paper: "He et al. 2022, SparseAdapter",
                sites: &[Site::AttentionOutput, Site::FfnOutput, Site::LayerNorm],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "round((1 − p)·2Lsdm) + Ls(d + m) + L·4d (sparsity p, SNIP by default)",
            },
            SparseConfig,
            SparseAdapter::sparse
        ),
        method_entry!(
            MethodInfo {
                name: "large_sparse_adapter",
                family: "adapters",
                paper: "He et al. 2022, SparseAdapter (Large-Sparse)",
                sites: &[Site::AttentionOutput, Site::FfnOutput, Site::LayerNorm],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "as sparse_adapter with m = 128, p = 0.5 (a dense m = 64 budget)",
            },
            SparseConfig,
            SparseAdapter::large,
            defaults = SparseConfig::large()
        ),
    ]
}
