//! The shared conformance suite for the low-rank methods, on a tiny random BERT.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, Site};
use pelt_lowrank::{
    config::{CompacterConfig, KAdaptationConfig, KronaConfig, KronaResConfig, LoraConfig},
    Compacter, KAdaptation, Krona, KronaRes, Lora,
};
use tch::Device;

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

fn lora(config: LoraConfig) -> impl Fn(&BackboneDims) -> Box<dyn Method> {
    move |d: &BackboneDims| -> Box<dyn Method> { Box::new(Lora::new(config.clone(), d, Device::Cpu).unwrap()) }
}

#[test]
fn lora_query_value_conforms_and_merges() {
    // d = 16, L = 2, r = 4 on query and value: 2 layers · 2 targets · 4·(16 + 16) = 512.
    let config = LoraConfig { r: 4, ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &lora(config), 512);
}

#[test]
fn lora_on_ffn_projections_conforms_and_merges() {
    // intermediate 16 → 32 and output 32 → 16, r = 2: 2 · (2·48 + 2·48) = 384.
    let config = LoraConfig { r: 2, targets: vec![Site::FfnIntermediate, Site::FfnOutput], ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &lora(config), 384);
}

fn build<C: Clone + 'static, M: Method + 'static>(
    config: C,
    ctor: fn(C, &BackboneDims, Device) -> pelt_core::Result<M>,
) -> impl Fn(&BackboneDims) -> Box<dyn Method> {
    move |d: &BackboneDims| -> Box<dyn Method> { Box::new(ctor(config.clone(), d, Device::Cpu).unwrap()) }
}

#[test]
fn krona_conforms_and_merges() {
    // d = 16, L = 2, A 4 × 4 and B 4 × 4 on query and value: 2 · 2 · (16 + 16) = 128.
    let config = KronaConfig { a_shape: [4, 4], ..KronaConfig::default() };
    testkit::run_conformance(&backbone, &build(config, Krona::new), 128);
    // Rectangular factors on the FFN (16 → 32 and 32 → 16), A 2 × 4: B is 16 × 4, then 8 × 8.
    let config = KronaConfig {
        a_shape: [2, 4],
        scale: 2.0,
        targets: vec![Site::FfnIntermediate, Site::FfnOutput],
        ..KronaConfig::default()
    };
    testkit::run_conformance(&backbone, &build(config, Krona::new), 2 * ((8 + 64) + (8 + 64)));
}

#[test]
fn krona_res_conforms() {
    // Per layer: A 4 × 4, B 4 × 4 and the learned scale.
    let config = KronaResConfig { a_shape: [4, 4], ..KronaResConfig::default() };
    testkit::run_conformance(&backbone, &build(config, KronaRes::new), 2 * (16 + 16 + 1));
}

#[test]
fn compacter_and_compacter_pp_conform() {
    // n = 4, r = 1, k = 8: each PHM adapter has down (16·1 + 1·8)… in all 2r(d + k) + d + k = 72;
    // the shared rule n³ = 64; LayerNorms 2·4·16 = 128.
    let config = CompacterConfig { bottleneck: 8, ..CompacterConfig::default() };
    testkit::run_conformance(&backbone, &build(config, Compacter::plain), 64 + 2 * 2 * 72 + 128);
    let config = CompacterConfig { bottleneck: 8, ..CompacterConfig::plus_plus() };
    testkit::run_conformance(&backbone, &build(config, Compacter::plus_plus), 64 + 2 * 72 + 128);
}

#[test]
fn kadaptation_conforms_and_merges() {
    // n = 4, rank 1 on query and value: shared A factors 2 targets · 2·16 = 64; per layer and target
    // u (4·4·1) and v (4·1·4) = 32, so 2 · 2 · 32 = 128.
    let config = KAdaptationConfig { n: 4, ..KAdaptationConfig::default() };
    testkit::run_conformance(&backbone, &build(config, KAdaptation::new), 64 + 128);
    let config = KAdaptationConfig { n: 4, rank: 2, targets: vec![Site::FfnOutput], ..KAdaptationConfig::default() };
    // One target 32 → 16: shared 2·16; per layer 2·(32 + 16).
    testkit::run_conformance(&backbone, &build(config, KAdaptation::new), 32 + 2 * 2 * 48);
}

#[test]
fn kronecker_configs_refuse_bad_values() {
    // The defaults are sized for real models (A 32 × 32, n = 32): check them against MiniLM's shape.
    let dims = BertConfig::minilm().dims();
    testkit::check_config::<KronaConfig>(
        &dims,
        &[
            ("a_shape: [5, 4]", "a_shape"),
            ("a_shape: [0, 4]", "a_shape"),
            ("scale: 0", "scale"),
            ("targets: [head]", "targets"),
        ],
    );
    testkit::check_config::<KronaResConfig>(&dims, &[("a_shape: [7, 4]", "a_shape"), ("scale: -1", "scale")]);
    testkit::check_config::<CompacterConfig>(
        &dims,
        &[("n: 5", "n"), ("bottleneck: 6", "n"), ("rank: 7", "rank"), ("sites: [query]", "sites"), ("phm: 1", "phm")],
    );
    testkit::check_config::<KAdaptationConfig>(
        &dims,
        &[("n: 5", "n"), ("rank: 13", "rank"), ("targets: []", "targets")],
    );
}

#[test]
fn lora_config_refuses_bad_values() {
    let dims = Bert::random(&BertConfig::tiny(), 7, Device::Cpu).dims().clone();
    testkit::check_config::<LoraConfig>(
        &dims,
        &[
            ("r: 0", "r"),
            ("r: 1000", "r"),
            ("alpha: -1", "alpha"),
            ("dropout: 1.0", "dropout"),
            ("targets: [embeddings]", "targets"),
            ("targets: []", "targets"),
            ("rank: 4", "rank"),
        ],
    );
}

#[test]
fn an_evaluation_merge_matches_the_attached_method_and_restores_the_weights_bit_for_bit() {
    use pelt_core::{EvalMerge, Inputs, NoMethod};
    use tch::{Kind, Tensor};
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    for config in [
        LoraConfig { r: 4, ..LoraConfig::default() },
        LoraConfig { r: 2, targets: vec![Site::FfnIntermediate, Site::FfnOutput], ..LoraConfig::default() },
    ] {
        let m = Lora::new(config, bert.dims(), Device::Cpu).unwrap();
        // B starts at zero; a trained one does not.
        tch::no_grad(|| {
            for (_, mut t) in m.var_store().variables() {
                let _ = t.normal_(0.0, 0.3);
            }
        });
        let before: Vec<(String, Tensor)> =
            bert.var_store().variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let ids = Tensor::from_slice(&[5i64, 9, 13, 2, 7, 0, 11, 3, 4, 0]).view([2, 5]);
        let inputs = Inputs::text(ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64), ids.zeros_like());
        let attached = tch::no_grad(|| bert.forward(&inputs, &m, false).hidden);
        {
            let merged = EvalMerge::new(&bert, &m).expect("LoRA on a BERT merges");
            let out = tch::no_grad(|| bert.forward(&inputs, &NoMethod, false).hidden);
            let diff = (&out - &attached).abs().max().double_value(&[]);
            // The testkit's merge tolerance: the merged matmul sums in another order, and the CI CPU
            // (not this one) put 1.7e-5 between the two paths on outputs of order one.
            assert!(diff < 1e-4, "merged output differs by {diff}");
            drop(merged);
        }
        let vars = bert.var_store().variables();
        for (name, original) in &before {
            assert!(vars[name].equal(original), "{name} not restored exactly");
        }
        // A method that does not merge (prompts, adapters: `merge_into` says false) gets no guard.
        assert!(EvalMerge::new(&bert, &NoMerge).is_none());
    }
}

/// A method with nothing to merge.
struct NoMerge;
impl pelt_core::Attachment for NoMerge {}
impl Method for NoMerge {
    fn name(&self) -> &str {
        "no_merge"
    }
    fn var_store(&self) -> &tch::nn::VarStore {
        unimplemented!("not used")
    }
    fn identity(&self) -> pelt_core::Identity {
        pelt_core::Identity::Exact
    }
    fn formula_params(&self, _: &BackboneDims) -> i64 {
        0
    }
}

#[test]
fn an_evaluation_merge_works_on_a_vit_too() {
    use pelt_backbone::{Vit, VitConfig};
    use pelt_core::{EvalMerge, Inputs, NoMethod};
    use tch::Tensor;
    let vit = Vit::random(&VitConfig::tiny(), 4, Device::Cpu);
    let m = Lora::new(LoraConfig { r: 2, ..LoraConfig::default() }, vit.dims(), Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (_, mut t) in m.var_store().variables() {
            let _ = t.normal_(0.0, 0.3);
        }
    });
    let image = vit.dims().image.unwrap();
    let pixels = Tensor::randn([2, image.channels, image.size, image.size], (tch::Kind::Float, Device::Cpu));
    let inputs = Inputs::images(pixels);
    let before = vit.var_store().variables()["encoder.layer.0.attention.attention.query.weight"].copy();
    let attached = tch::no_grad(|| vit.forward(&inputs, &m, false).hidden);
    let merged = EvalMerge::new(&vit, &m).expect("LoRA on a ViT merges");
    let out = tch::no_grad(|| vit.forward(&inputs, &NoMethod, false).hidden);
    assert!((&out - &attached).abs().max().double_value(&[]) < 1e-4);
    drop(merged);
    assert!(vit.var_store().variables()["encoder.layer.0.attention.attention.query.weight"].equal(&before));
}
