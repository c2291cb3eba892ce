//! pelt's MAM parts against He et al.'s own `Prefix` and `Adapter_Layer` (jxhe/unify-parameter-efficient-
//! tuning, `petl/petl_factory.py`) on fixed weights. The numbers come from scripts/reference/mam_reference.py,
//! run once on a checkout of that repository, and are committed in tests/data/mam/; the test never runs
//! Python. Evaluation mode: the dropout after the ReLU is checked by pelt-adapters' own tests.

use pelt_adapters::config::{DropoutAt, ParallelConfig};
use pelt_backbone::BertConfig;
use pelt_core::{Attachment, Method, Scale, Site, Width};
use pelt_mixtures::{mam::MamConfig, Mam};
use pelt_prompts::config::PrefixConfig;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Tensor};

#[test]
fn mam_glue_parts_match_he_et_al_s_code() {
    let file: HashMap<String, Tensor> =
        Tensor::read_safetensors(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mam/reference.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    // The script's sizes (tests/data/mam/reference.json): d = 16, 2 layers, 2 heads; P = 4 through an MLP 8
    // wide; adapter m = 4 at s = 2 with dropout 0.1 after the ReLU: mam_glue's form, scaled down.
    let dims = BertConfig::tiny().dims();
    assert_eq!((dims.hidden, dims.layers, dims.heads), (16, 2, 2));
    let config = MamConfig {
        prefix: PrefixConfig { length: 4, mid_dim: 8, ..MamConfig::glue().prefix },
        adapter: ParallelConfig { bottleneck: Width::Fixed(4), ..MamConfig::glue().adapter },
    };
    assert_eq!((config.adapter.scale, config.adapter.dropout_at), (2.0, DropoutAt::Bottleneck));
    let m = Mam::named("mam_glue", config, &dims, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (name, mut var) in m.var_store().variables() {
            // Every layer's adapter takes the one reference adapter.
            let key = match name.strip_prefix("adapter.layer.") {
                Some(rest) => format!("adapter.{}", rest.rsplit('.').next().unwrap()),
                None => name.clone(),
            };
            let value = file.get(&key).unwrap_or_else(|| panic!("`{name}` ({key}) not in the reference"));
            assert_eq!(value.size(), var.size(), "{name}");
            var.copy_(value);
        }
    });
    let x = &file["input"];
    let gap = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    for layer in [0usize, 1] {
        let p = m.prefix(layer, x, false).expect("MAM has a prefix");
        assert!(gap(&p.keys, &file[&format!("keys.{layer}")]) < 1e-6, "layer {layer} keys");
        assert!(gap(&p.values, &file[&format!("values.{layer}")]) < 1e-6, "layer {layer} values");
        let delta = m.sublayer(layer, Site::FfnOutput, x, x, false).expect("an adapter beside the FFN");
        let Scale::Fixed(s) = delta.scale else { panic!("MAM's adapter scale is fixed") };
        assert!(gap(&(delta.value * s), &file["adapter_output"]) < 1e-6, "layer {layer} adapter");
    }
}
