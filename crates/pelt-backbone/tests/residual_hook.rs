//! What `Attachment::residual_sublayer` reads: at the last layer's FFN, the residual sum must be the
//! layer's output itself on a post-norm BERT (LN(h + x)) and the un-normed residual stream the final norm
//! is applied to on a pre-norm ViT and T5 encoder. Pfeiffer adapters read it, so this pins their input.

use pelt_backbone::{Bert, BertConfig, Vit, T5};
use pelt_core::{Attachment, Backbone, Delta, Inputs, Site};
use std::{cell::RefCell, path::Path};
use tch::{Device, Kind, Tensor};

/// Records the residual sum at one (layer, site) and changes nothing.
struct Recorder {
    at: (usize, Site),
    seen: RefCell<Option<Tensor>>,
}

impl Recorder {
    fn new(layer: usize, site: Site) -> Recorder {
        Recorder { at: (layer, site), seen: RefCell::new(None) }
    }

    fn take(&self) -> Tensor {
        self.seen.borrow_mut().take().expect("the hook ran at the recorded site")
    }
}

impl Attachment for Recorder {
    fn residual_sublayer(&self, layer: usize, site: Site, sum: &dyn Fn() -> Tensor, _train: bool) -> Option<Delta> {
        if (layer, site) == self.at {
            *self.seen.borrow_mut() = Some(sum());
        }
        None
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn var(model: &dyn Backbone, name: &str) -> Tensor {
    model.var_store().variables().remove(name).unwrap_or_else(|| panic!("no variable {name}"))
}

#[test]
fn bert_residual_sum_is_the_layer_normed_output() {
    let config = BertConfig::tiny();
    let model = Bert::random(&config, 3, Device::Cpu);
    let ids = Tensor::from_slice(&[2i64, 7, 9, 4, 0, 2, 5, 6, 3, 8]).view([2, 5]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0, 1, 1, 1, 1, 1]).view([2, 5]);
    let inputs = Inputs::text(ids.shallow_clone(), mask, ids.zeros_like());
    let last = config.num_hidden_layers as usize - 1;
    let probe = Recorder::new(last, Site::FfnOutput);
    let out = tch::no_grad(|| model.forward(&inputs, &probe, false));
    assert_eq!(max_diff(&probe.take(), &out.hidden), 0.0);
}

#[test]
fn vit_residual_sum_is_the_stream_before_the_final_norm() {
    let model = Vit::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_vit"), Device::Cpu).unwrap();
    let c = model.config().clone();
    let pixels = Tensor::arange(2 * c.num_channels * c.image_size * c.image_size, (Kind::Float, Device::Cpu))
        .view([2, c.num_channels, c.image_size, c.image_size])
        .sin();
    let probe = Recorder::new(c.num_hidden_layers as usize - 1, Site::FfnOutput);
    let out = tch::no_grad(|| model.forward(&Inputs::images(pixels), &probe, false));
    let d = c.hidden_size;
    let normed = probe.take().layer_norm(
        [d].as_slice(),
        Some(&var(&model, "layernorm.weight")),
        Some(&var(&model, "layernorm.bias")),
        c.layer_norm_eps,
        false,
    );
    assert!(max_diff(&normed, &out.hidden) < 1e-6);
}

#[test]
fn t5_residual_sum_is_the_stream_before_the_final_norm() {
    let model = T5::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_t5"), Device::Cpu).unwrap();
    let ids = Tensor::from_slice(&[5i64, 9, 3, 12, 1, 7, 2, 1, 0, 0]).view([2, 5]);
    let inputs = Inputs::text(ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64), ids.zeros_like());
    let probe = Recorder::new(model.config().num_layers as usize - 1, Site::FfnOutput);
    let out = tch::no_grad(|| model.forward(&inputs, &probe, false));
    let sum = probe.take();
    let eps = model.config().layer_norm_epsilon;
    let normed = &sum
        * (sum.square().mean_dim([-1].as_slice(), true, Kind::Float) + eps).rsqrt()
        * var(&model, "encoder.final_layer_norm.weight");
    assert!(max_diff(&normed, &out.hidden) < 1e-6);
}
