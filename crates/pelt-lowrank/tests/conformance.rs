//! The shared conformance suite for the low-rank methods, on a tiny random BERT.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::Attachment;
use pelt_core::{testkit, Backbone, BackboneDims, Method, Site};
use pelt_lowrank::{
    config::{CompacterConfig, KAdaptationConfig, KronaConfig, KronaResConfig, KronaResForm, LoraConfig},
    Adalora, Compacter, Dora, Ia3, KAdaptation, Krona, KronaRes, Loha, Lokr, Lora, Oft, Vera,
};
use tch::{Device, Tensor};

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

#[test]
fn lora_inits_and_rslora_conform_and_merge() {
    use pelt_lowrank::config::LoraInit;
    // The count is LoRA's whatever the init or scale: 2 layers · 2 targets · 4·(16 + 16) = 512.
    for init in [LoraInit::Gaussian, LoraInit::Pissa] {
        testkit::run_conformance(&backbone, &lora(LoraConfig { r: 4, init, ..LoraConfig::default() }), 512);
    }
    testkit::run_conformance(&backbone, &lora(LoraConfig { r: 4, rslora: true, ..LoraConfig::default() }), 512);
    assert_eq!(LoraConfig { r: 4, alpha: 8.0, rslora: true, ..LoraConfig::default() }.scale(), 4.0);
}

/// PiSSA moves W's top-r singular part into the pair: B A · s is the best rank-r approximation of W, the
/// frozen weight keeps the rest, and their sum is W.
#[test]
fn pissa_splits_the_weight_into_its_principal_part_and_the_residual() {
    use pelt_lowrank::config::LoraInit;
    let bert = pelt_backbone::Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let w0 = bert.projection_weight(0, Site::Query).unwrap().copy();
    let config = LoraConfig { r: 4, init: LoraInit::Pissa, ..LoraConfig::default() };
    let m = Lora::new(config.clone(), bert.dims(), Device::Cpu).unwrap();
    m.init_from(&bert);
    let vars = m.var_store().variables();
    let (a, b) = (&vars["layer.0.query.lora_a"], &vars["layer.0.query.lora_b"]);
    let principal = b.matmul(a) * config.scale();
    let residual = bert.projection_weight(0, Site::Query).unwrap();
    let gap = (&residual + &principal - &w0).abs().max().double_value(&[]);
    assert!(gap < 1e-5, "residual + principal differs from W by {gap}");
    // The principal part is the truncated SVD: its singular values are W's top 4, the residual's the rest.
    let (_, s, _) = w0.svd(true, true);
    let (_, sp, _) = principal.svd(true, true);
    let (_, sr, _) = residual.svd(true, true);
    assert!((sp.narrow(0, 0, 4) - s.narrow(0, 0, 4)).abs().max().double_value(&[]) < 1e-4);
    assert!((sr.narrow(0, 0, 12) - s.narrow(0, 4, 12)).abs().max().double_value(&[]) < 1e-4);
    // A and B share the singular values' square roots: ‖A row i‖ = ‖B column i‖ = √(σ_i / s).
    let an = a.square().sum_dim_intlist(&[1i64][..], false, tch::Kind::Float).sqrt();
    let bn = b.square().sum_dim_intlist(&[0i64][..], false, tch::Kind::Float).sqrt();
    assert!((&an - &bn).abs().max().double_value(&[]) < 1e-4);
}

#[test]
fn dora_conforms_and_merges() {
    // LoRA's 512 (r 4 on query and value) and a magnitude per output: 2 layers · 2 targets · 16.
    let config = LoraConfig { r: 4, ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &build(config.clone(), Dora::new), 512 + 64);
    // On the FFN, where d_out differs between the two targets (32 and 16).
    let ffn = LoraConfig { r: 2, targets: vec![Site::FfnIntermediate, Site::FfnOutput], ..LoraConfig::default() };
    testkit::run_conformance(&backbone, &build(ffn, Dora::new), 384 + 2 * (32 + 16));
    // With PiSSA's start for the direction.
    let pissa = LoraConfig { init: pelt_lowrank::config::LoraInit::Pissa, ..config };
    testkit::run_conformance(&backbone, &build(pissa, Dora::new), 512 + 64);
}

/// DoRA's weight is m ⊙ (W + s·B A) / ‖W + s·B A‖ row by row: after the pair and the magnitude move,
/// the attached output equals a plain linear layer with that weight.
#[test]
fn dora_is_magnitude_times_the_normalised_direction() {
    let bert = pelt_backbone::Bert::random(&BertConfig::tiny(), 3, Device::Cpu);
    let config = LoraConfig { r: 2, dropout: 0.0, ..LoraConfig::default() };
    let m = Dora::new(config.clone(), bert.dims(), Device::Cpu).unwrap();
    m.init_from(&bert);
    tch::manual_seed(5);
    tch::no_grad(|| {
        for (_, mut v) in m.var_store().variables() {
            let _ = v.g_add_(&(v.randn_like() * 0.3));
        }
    });
    let vars = m.var_store().variables();
    let w = bert.projection_weight(1, Site::Value).unwrap();
    let (a, b, mag) = (&vars["layer.1.value.lora_a"], &vars["layer.1.value.lora_b"], &vars["layer.1.value.magnitude"]);
    let direction = &w + b.matmul(a) * config.scale();
    let norm = direction.square().sum_dim_intlist(&[1i64][..], true, tch::Kind::Float).sqrt();
    let want_w = mag.unsqueeze(1) * &direction / norm;
    let x = Tensor::randn([3, 5, 16], (tch::Kind::Float, Device::Cpu));
    let delta = m.projection(1, Site::Value, &x, false).unwrap();
    let got = x.matmul(&w.tr()) + delta.value;
    let gap = (got - x.matmul(&want_w.tr())).abs().max().double_value(&[]);
    assert!(gap < 1e-5, "DoRA output differs from m ⊙ V/‖V‖ by {gap}");
}

#[test]
fn vera_loha_and_lokr_conform_and_merge() {
    use pelt_lowrank::config::{LohaConfig, LokrConfig, VeraConfig};
    // VeRA, r 8 on query and value (d 16): 2 layers · 2 targets · (8 + 16) = 96; on the FFN the shared
    // pair is cut to 16 → 32 and 32 → 16: 2 · ((8 + 32) + (8 + 16)) = 128.
    let vera = VeraConfig { r: 8, ..VeraConfig::default() };
    testkit::run_conformance(&backbone, &build(vera.clone(), Vera::new), 96);
    let ffn = VeraConfig { targets: vec![Site::FfnIntermediate, Site::FfnOutput], ..vera };
    testkit::run_conformance(&backbone, &build(ffn, Vera::new), 128);
    // LoHa, r 2: 2 layers · 2 targets · 2·2·(16 + 16) = 512.
    testkit::run_conformance(&backbone, &build(LohaConfig { r: 2, ..LohaConfig::default() }, Loha::new), 512);
    // LoKr at d 16 (4 × 4 and 4 × 4): r 1 decomposes W₂ (1·(4 + 4)), r 8 keeps it full (16); W₁ full (16).
    let lokr = LokrConfig { r: 1, ..LokrConfig::default() };
    testkit::run_conformance(&backbone, &build(lokr.clone(), Lokr::new), 4 * (16 + 8));
    testkit::run_conformance(&backbone, &build(LokrConfig::default(), Lokr::new), 4 * (16 + 16));
    // Both factors decomposed, and 32 → 16 on the FFN output (W₁ 4 × 4, W₂ 4 × 8 → rank 1).
    let both = LokrConfig { r: 1, decompose_both: true, targets: vec![Site::FfnOutput], ..LokrConfig::default() };
    testkit::run_conformance(&backbone, &build(both, Lokr::new), 2 * ((4 + 4) + (4 + 8)));
}

#[test]
fn ia3_and_oft_conform_and_merge() {
    use pelt_lowrank::config::{Cayley, Ia3Config, OftConfig};
    // (IA)³ at the paper's sites: per layer keys 16 + values 16 + FFN activations 32.
    testkit::run_conformance(&backbone, &build(Ia3Config::default(), Ia3::new), 2 * (16 + 16 + 32));
    // On the query and the attention output instead (outputs of 16 each).
    let other = Ia3Config { sites: vec![Site::Query, Site::AttentionOutput] };
    testkit::run_conformance(&backbone, &build(other, Ia3::new), 2 * (16 + 16));
    // OFT, blocks of 4 on d_in 16: 4 blocks · 6 entries, on query and value of 2 layers.
    for cayley in [Cayley::Exact, Cayley::Neumann] {
        let config = OftConfig { block_size: 4, cayley, ..OftConfig::default() };
        testkit::run_conformance(&backbone, &build(config, Oft::new), 2 * 2 * 4 * 6);
    }
    // The default block of 32 falls back to d_in on the query (16) and fits the FFN output's d_in (32)
    // as it is: peft's adjustment.
    let config = OftConfig { targets: vec![Site::Query, Site::FfnOutput], ..OftConfig::default() };
    testkit::run_conformance(&backbone, &build(config, Oft::new), 2 * (16 * 15 / 2 + 32 * 31 / 2));
    assert_eq!(OftConfig { block_size: 5, ..OftConfig::default() }.block_for(16), 4);
    assert_eq!(OftConfig { block_size: 6, ..OftConfig::default() }.block_for(16), 4);
    assert_eq!(OftConfig { block_size: 7, ..OftConfig::default() }.block_for(16), 8);
}

/// OFT's exact rotation is orthogonal whatever Q, and it preserves the norm of every input block.
#[test]
fn oft_rotations_are_orthogonal() {
    use pelt_lowrank::config::OftConfig;
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let m = Oft::new(OftConfig { block_size: 4, ..OftConfig::default() }, bert.dims(), Device::Cpu).unwrap();
    tch::manual_seed(2);
    tch::no_grad(|| {
        for (_, mut v) in m.var_store().variables() {
            let _ = v.g_add_(&v.randn_like());
        }
    });
    let x = Tensor::randn([2, 3, 16], (tch::Kind::Float, Device::Cpu));
    let y = m.projection_input(0, Site::Query, &x, false).unwrap();
    let norms = |t: &Tensor| t.view([2, 3, 4, 4]).square().sum_dim_intlist(&[-1i64][..], false, tch::Kind::Float);
    let gap = (norms(&y) - norms(&x)).abs().max().double_value(&[]);
    assert!(gap < 1e-4, "a rotation changed a block's norm by {gap}");
    assert!(m.projection_input(0, Site::Key, &x, false).is_none(), "only the targets rotate");
}

#[test]
fn adalora_conforms_and_merges() {
    use pelt_lowrank::config::AdaloraConfig;
    // r₀ = 4 triplets on query and value: 2 layers · 2 targets · 4·(16 + 16 + 1).
    let config = AdaloraConfig { init_r: 4, target_r: 2, ..AdaloraConfig::default() };
    testkit::run_conformance(&backbone, &build(config, Adalora::new), 4 * 4 * 33);
}

/// Over a run the budget falls from r₀ per target to target_r on average: the kept triplets never grow
/// back, end at the target, and every masked λ is zero in the weights; the orthogonality penalty is
/// part of the loss the optimizer sees.
#[test]
fn adalora_prunes_its_triplets_to_the_target_budget_over_the_run() {
    use pelt_core::{prepare_training, testkit::sample_inputs};
    use pelt_lowrank::config::AdaloraConfig;
    let bert = Bert::random(&BertConfig::tiny(), 7, Device::Cpu);
    let config = AdaloraConfig { init_r: 6, target_r: 2, tinit: 0.1, tfinal: 0.2, ..AdaloraConfig::default() };
    let m = Adalora::new(config, bert.dims(), Device::Cpu).unwrap();
    let params = prepare_training(&bert, &m);
    let mut opt = pelt_train::AdamW::new(&params, 0.0);
    let inputs = sample_inputs(bert.dims());
    tch::manual_seed(3);
    let target = Tensor::randn([3, 7, 16], (tch::Kind::Float, Device::Cpu));
    let total = 30;
    m.begin_training(total);
    assert!(m.regularizer().unwrap().double_value(&[]) > 0.0, "P and Q start far from orthogonal");
    let mut kept = vec![m.kept()];
    for _ in 0..total {
        let loss = (bert.forward(&inputs, &m, true).hidden - &target).square().mean(tch::Kind::Float);
        opt.train_step(&loss, &m, 1.0, 1e-2).unwrap();
        kept.push(m.kept());
    }
    assert_eq!(kept[0], 4 * 6, "the run starts at r₀ per target");
    assert!(kept.windows(2).all(|w| w[1] <= w[0]), "the budget only falls: {kept:?}");
    assert_eq!(*kept.last().unwrap(), 4 * 2, "and ends at target_r per target: {kept:?}");
    let vars = m.var_store().variables();
    let zeros: i64 = vars
        .iter()
        .filter(|(n, _)| n.ends_with("lora_e"))
        .map(|(_, v)| v.eq(0.0).sum(tch::Kind::Int64).int64_value(&[]))
        .sum();
    assert_eq!(zeros, 4 * 6 - 4 * 2, "every masked λ is zero in the weights");
    assert_eq!(m.diagnostics()[0], ("adalora_mean_rank".to_owned(), 2.0));
}

/// VeRA's frozen pair is a function of its seed alone: two builds agree whatever libtorch's generator
/// did in between, and another seed gives another pair.
#[test]
fn vera_draws_its_shared_pair_from_its_own_seed() {
    use pelt_lowrank::config::VeraConfig;
    let dims = BertConfig::tiny().dims();
    tch::manual_seed(1);
    let one = Vera::new(VeraConfig::default(), &dims, Device::Cpu).unwrap();
    tch::manual_seed(2);
    let two = Vera::new(VeraConfig::default(), &dims, Device::Cpu).unwrap();
    assert!(one.shared().0.equal(&two.shared().0) && one.shared().1.equal(&two.shared().1));
    let other = Vera::new(VeraConfig { projection_seed: 1, ..VeraConfig::default() }, &dims, Device::Cpu).unwrap();
    assert!(!one.shared().0.equal(&other.shared().0));
    // Bounds √(6 / fan_in): A is 256 × 16, B 16 × 256.
    let (a, b) = one.shared();
    assert!(a.abs().max().double_value(&[]) <= (6.0f64 / 16.0).sqrt());
    assert!(b.abs().max().double_value(&[]) <= (6.0f64 / 256.0).sqrt());
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
    testkit::run_conformance(&backbone, &build(config.clone(), KronaRes::new), 2 * (16 + 16 + 1));
    let branch = KronaResConfig { form: KronaResForm::ScaledBranch, ..config };
    testkit::run_conformance(&backbone, &build(branch, KronaRes::new), 2 * (16 + 16 + 1));
}

#[test]
fn krona_res_adds_a_learned_identity_path_and_old_configs_keep_their_form() {
    let dims = BackboneDims { hidden: 16, layers: 2, heads: 2, intermediate: 32, ..Default::default() };
    let x = Tensor::randn([2, 3, 16], (tch::Kind::Float, Device::Cpu));
    let delta = |config: KronaResConfig| {
        let m = KronaRes::new(config, &dims, Device::Cpu).unwrap();
        let d = m.sublayer(1, Site::FfnOutput, &x, &x, false).unwrap();
        let s = match d.scale {
            pelt_core::Scale::Fixed(s) => Tensor::from(s),
            pelt_core::Scale::Tensor(t) => t,
        };
        d.value * s
    };
    let gap = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    // B starts at zero, so at init Δ = s_res·x in the residual form and 0 in the scaled-branch form.
    let residual = KronaResConfig { a_shape: [4, 4], residual_init: 0.5, ..KronaResConfig::default() };
    assert!(gap(&delta(residual.clone()), &(&x * 0.5)) < 1e-6);
    let branch = KronaResConfig { form: KronaResForm::ScaledBranch, residual_init: 1.0, ..residual.clone() };
    assert_eq!(delta(branch).abs().max().double_value(&[]), 0.0);
    // A config written before `form` existed reads as the scaled branch it was trained with; the new
    // default writes its form, so its runs hash apart from the old ones.
    let old: KronaResConfig = serde_yaml::from_str("a_shape: [4, 4]\nscale: 1.0\n").unwrap();
    assert_eq!(old.form, KronaResForm::ScaledBranch);
    let new = serde_yaml::to_string(&KronaResConfig::default()).unwrap();
    assert!(new.contains("form: residual") && !new.contains("residual_init"), "{new}");
    let old_text = serde_yaml::to_string(&old).unwrap();
    assert!(!old_text.contains("form"), "{old_text}");
}

#[test]
fn compacter_and_compacter_pp_conform() {
    // n = 4, r = 1, k = 8: each PHM adapter has down (16·1 + 1·8)… in all 2r(d + k) + d + k = 72;
    // the shared rule n³ = 64; LayerNorms 2·4·16 = 128.
    let config = CompacterConfig { bottleneck: 8.into(), ..CompacterConfig::default() };
    testkit::run_conformance(&backbone, &build(config, Compacter::plain), 64 + 2 * 2 * 72 + 128);
    let config = CompacterConfig { bottleneck: 8.into(), ..CompacterConfig::plus_plus() };
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
    testkit::check_config::<KronaResConfig>(
        &dims,
        &[("a_shape: [7, 4]", "a_shape"), ("scale: -1", "scale"), ("form: sideways", "form")],
    );
    testkit::check_config::<CompacterConfig>(
        &dims,
        &[
            ("n: 5", "n"),
            ("bottleneck: 6", "n"),
            ("bottleneck: d/0", "bottleneck"),
            ("bottleneck: d/2x", "bottleneck"),
            ("rank: 7", "rank"),
            ("sites: [query]", "sites"),
            ("phm: 1", "phm"),
        ],
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
            ("init: xavier", "init"),
            ("rslora: maybe", "rslora"),
        ],
    );
    use pelt_lowrank::config::{LohaConfig, LokrConfig, VeraConfig};
    testkit::check_config::<VeraConfig>(
        &dims,
        &[
            ("r: 0", "r"),
            ("d_initial: 0", "d_initial"),
            ("dropout: -0.1", "dropout"),
            ("targets: [layer_norm]", "targets"),
        ],
    );
    testkit::check_config::<LohaConfig>(&dims, &[("r: 0", "r"), ("alpha: 0", "alpha"), ("targets: []", "targets")]);
    testkit::check_config::<LokrConfig>(
        &dims,
        &[("r: 0", "r"), ("decompose_factor: 0", "decompose_factor"), ("decompose_both: 2", "decompose_both")],
    );
}

/// The LoRA options stay out of the serialised config at their defaults (old LoRA records keep their
/// hashes) and appear when set.
#[test]
fn lora_options_serialise_only_when_set() {
    use pelt_lowrank::config::LoraInit;
    let text = serde_yaml::to_string(&LoraConfig::default()).unwrap();
    assert!(!text.contains("init") && !text.contains("rslora"), "{text}");
    let set =
        serde_yaml::to_string(&LoraConfig { init: LoraInit::Pissa, rslora: true, ..LoraConfig::default() }).unwrap();
    assert!(set.contains("init: pissa") && set.contains("rslora: true"), "{set}");
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

#[test]
fn compacter_budget_is_a_reduction_factor() {
    // The reference's factor 32: 12 at MiniLM's d = 384, 24 at d = 768; an integer still fixes it.
    let default = CompacterConfig::default();
    assert_eq!(default.bottleneck.resolve(384), 12);
    assert_eq!(default.bottleneck.resolve(768), 24);
    assert_eq!(serde_yaml::to_string(&default.bottleneck).unwrap().trim(), "d/32");
    let fixed: CompacterConfig = serde_yaml::from_str("bottleneck: 24").unwrap();
    assert_eq!(fixed.bottleneck.resolve(384), 24);
    assert_eq!(serde_yaml::to_string(&fixed.bottleneck).unwrap().trim(), "24");
    let minilm = BertConfig::minilm().dims();
    let m = Compacter::plus_plus(CompacterConfig::plus_plus(), &minilm, Device::Cpu).unwrap();
    // n³ + L·(2r(d + k) + d + k) + LayerNorms at k = 12.
    assert_eq!(m.formula_params(&minilm), 64 + 6 * (2 * (384 + 12) + 384 + 12) + minilm.layer_norm_params());
}
