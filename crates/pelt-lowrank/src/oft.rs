//! OFT (Qiu et al., NeurIPS 2023, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning"): a
//! projection's input is rotated by a block-diagonal orthogonal R before the frozen weight: in row form
//! h = (x R) Wᵀ + b, i.e. W' = W Rᵀ, each b × b block the Cayley transform
//! R = (I + Q)(I − Q)⁻¹ of a skew-symmetric Q = M − Mᵀ, M holding the b(b − 1)/2 trained entries above
//! the diagonal. Q starts at 0, so R = I. Mergeable.

use crate::config::{projection_shape, Cayley, OftConfig};
use pelt_core::{Attachment, Backbone, BackboneDims, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Kind, Tensor};

/// One target's blocks.
#[derive(Debug)]
struct Blocks {
    /// The entries above the diagonal, (blocks, b(b − 1)/2).
    upper: Tensor,
    /// b.
    size: i64,
}

/// OFT on the configured projections of every layer.
#[derive(Debug)]
pub struct Oft {
    vs: nn::VarStore,
    config: OftConfig,
    blocks: SiteTable<Blocks>,
}

impl Oft {
    /// Builds the blocks, Q = 0.
    pub fn new(config: OftConfig, dims: &BackboneDims, device: Device) -> Result<Oft> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let blocks = SiteTable::new(dims, &config.targets, |l, site| {
            let (d_in, _) = projection_shape(site, dims);
            let b = config.block_for(d_in);
            let upper =
                (&root / "layer" / l / site.as_str()).var("oft_r", &[d_in / b, b * (b - 1) / 2], nn::Init::Const(0.0));
            Blocks { upper, size: b }
        });
        Ok(Oft { vs, config, blocks })
    }

    /// The rotation blocks, (blocks, b, b).
    fn rotations(&self, blocks: &Blocks) -> Tensor {
        let b = blocks.size;
        let n = blocks.upper.size()[0];
        let opts = (blocks.upper.kind(), blocks.upper.device());
        // M's upper triangle, row by row (torch.triu_indices(b, b, 1)'s order, as peft stores it).
        let idx = Tensor::triu_indices(b, b, 1, (Kind::Int64, blocks.upper.device()));
        let flat = idx.get(0) * b + idx.get(1);
        let m = Tensor::zeros([n, b * b], opts).index_copy(1, &flat, &blocks.upper).view([n, b, b]);
        let q = &m - m.transpose(1, 2);
        let eye = Tensor::eye(b, opts).expand([n, b, b], false);
        match self.config.cayley {
            // X (I − Q) = I + Q.
            Cayley::Exact => Tensor::linalg_solve(&(&eye - &q), &(&eye + &q), false),
            Cayley::Neumann => {
                let terms = self.config.neumann_terms;
                let mut r = &eye + &q * 2.0;
                let mut power = q.shallow_clone();
                for k in 2..terms {
                    power = power.bmm(&q);
                    // The last term counts once, the others twice (peft's `_cayley_batch`).
                    r = if k + 1 == terms { r + &power } else { r + &power * 2.0 };
                }
                r
            }
        }
    }

    /// The whole block-diagonal R (d_in × d_in).
    fn rotation(&self, blocks: &Blocks) -> Tensor {
        let r = self.rotations(blocks);
        let n = r.size()[0];
        Tensor::block_diag(&(0..n).map(|i| r.get(i)).collect::<Vec<_>>())
    }
}

impl Attachment for Oft {
    fn projection_input(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Tensor> {
        let blocks = self.blocks.get(layer, site)?;
        let r = self.rotations(blocks);
        let size = x.size();
        let n = r.size()[0];
        let lead: Vec<i64> = size[..size.len() - 1].to_vec();
        // Per block: x_block R_block.
        let rows = x.reshape([-1, n, blocks.size]);
        let rotated = Tensor::einsum("trk,rkc->trc", &[&rows, &r], None::<&[i64]>);
        Some(rotated.reshape([lead, vec![n * blocks.size]].concat()))
    }
}

impl Method for Oft {
    fn name(&self) -> &str {
        "oft"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (d_in, _) = projection_shape(s, dims);
                let b = self.config.block_for(d_in);
                dims.layers_with(s) * (d_in / b) * (b * (b - 1) / 2)
            })
            .sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        let mut deltas = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for (layer, site, blocks) in self.blocks.iter() {
                let w = backbone.projection_weight(layer, site).ok_or_else(|| {
                    pelt_core::PeltError::Shape(format!("OFT needs the weight of {site} in layer {layer}"))
                })?;
                // W' = W Rᵀ.
                deltas.push((layer, site, w.matmul(&self.rotation(blocks).tr()) - &w));
            }
            Ok(())
        })?;
        for (layer, site, dw) in deltas {
            backbone.merge_projection(layer, site, &dw)?;
        }
        Ok(true)
    }
}
