//! The multi-task methods (Polytropon, Poly-S, Poly-μ, ATTEMPT): the conformance suite in each stage of
//! the two-stage protocol, per-example routing, and what adaptation keeps and changes.

use pelt_backbone::{Bert, BertConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method};
use pelt_mixtures::{
    attempt::AttemptConfig,
    poly::{PolyAdaptation, PolyConfig},
    Attempt, Poly,
};
use tch::{Device, Kind, Tensor};

fn backbone() -> Box<dyn Backbone> {
    Box::new(Bert::random(&BertConfig::tiny(), 7, Device::Cpu))
}

fn small_poly(splits: i64, adaptation: PolyAdaptation) -> PolyConfig {
    PolyConfig { r: 2, skills: 3, splits, adaptation, ..PolyConfig::default() }
}

/// Builds a method and takes it through `sources` source tasks and on to the target (0: stays single-task).
fn poly(config: &PolyConfig, d: &BackboneDims, sources: usize) -> Box<dyn Method> {
    let mut m = Poly::named("polytropon", config.clone(), d, Device::Cpu).unwrap();
    if sources > 0 {
        m.begin_sources(sources).unwrap();
        m.begin_target().unwrap();
    }
    Box::new(m)
}

// Tiny BERT: d = 16, L = 2, targets query and value (16 → 16). Per target and layer, inventory
// skills·r·(d_in + d_out) = 3·2·32 = 192, plus one trainable routing row of splits·skills.

#[test]
fn polytropon_conforms_single_task() {
    let c = small_poly(1, PolyAdaptation::Route);
    testkit::run_conformance(&backbone, &|d: &BackboneDims| poly(&c, d, 0), 2 * 2 * (192 + 3));
}

#[test]
fn polytropon_conforms_on_a_target_after_sources() {
    // The three source rows are frozen; the target's row and the inventory train.
    let c = small_poly(1, PolyAdaptation::Route);
    testkit::run_conformance(&backbone, &|d: &BackboneDims| poly(&c, d, 3), 2 * 2 * (192 + 3));
}

#[test]
fn poly_s_conforms_on_a_target_after_sources() {
    let c = small_poly(4, PolyAdaptation::Route);
    testkit::run_conformance(&backbone, &|d: &BackboneDims| poly(&c, d, 2), 2 * 2 * (192 + 4 * 3));
}

#[test]
fn poly_mu_conforms_on_a_target_after_sources() {
    // Only the averaged module trains: r·(d_in + d_out) = 64 per target and layer.
    let c = small_poly(1, PolyAdaptation::Average);
    testkit::run_conformance(&backbone, &|d: &BackboneDims| poly(&c, d, 2), 2 * 2 * 64);
}

fn attempt(d: &BackboneDims, sources: usize) -> Box<dyn Method> {
    let c = AttemptConfig { length: 3, attention_dim: 4, temperature: None };
    let mut m = Attempt::new(c, d, Device::Cpu).unwrap();
    if sources > 0 {
        m.begin_sources(sources).unwrap();
        m.begin_target().unwrap();
    }
    Box::new(m)
}

#[test]
fn attempt_conforms_single_task_and_on_a_target() {
    // Alone: the target prompt, P·d = 48. After sources: + attention 2·d·k + 2·d = 128 + 32.
    testkit::run_conformance(&backbone, &|d: &BackboneDims| attempt(d, 0), 48);
    testkit::run_conformance(&backbone, &|d: &BackboneDims| attempt(d, 2), 48 + 128 + 32);
}

#[test]
fn multitask_configs_name_their_fields() {
    let dims = BertConfig::minilm().dims();
    testkit::check_config::<PolyConfig>(
        &dims,
        &[
            ("r: 0", "r"),
            ("skills: 0", "skills"),
            ("splits: 5", "splits"),
            ("temperature: 0", "temperature"),
            ("targets: [ffn_output, ffn_output]", "targets"),
            ("adaptation: fuse", "adaptation"),
            ("router_lr: 0", "router_lr"),
        ],
    );
    testkit::check_config::<AttemptConfig>(
        &dims,
        &[("length: 0", "length"), ("attention_dim: 0", "attention_dim"), ("temperature: -1", "temperature")],
    );
}

/// Sets every variable whose name ends with `suffix` to fresh normal values (B starts at zero, which
/// would hide routing).
fn randomize(m: &dyn Method, suffix: &str) {
    tch::no_grad(|| {
        for (name, t) in m.var_store().variables() {
            if name.ends_with(suffix) {
                t.shallow_clone().copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.5));
            }
        }
    });
}

fn hidden(b: &dyn Backbone, m: &dyn Method, ids: Option<&[i64]>) -> Tensor {
    // Inputs come from a fixed hash, never from libtorch's global generator, which the tests running in
    // parallel threads seed and draw from.
    let inputs = testkit::sample_inputs(b.dims());
    let ids = ids.map(Tensor::from_slice);
    m.set_task_ids(ids.as_ref());
    tch::no_grad(|| b.forward(&inputs, m, false).hidden)
}

#[test]
fn each_example_is_routed_by_its_own_task() {
    let b = backbone();
    let d = b.dims().clone();
    tch::manual_seed(3);
    let mut methods: Vec<Box<dyn Method>> = Vec::new();
    let mut p = Poly::named("poly_s", small_poly(4, PolyAdaptation::Route), &d, Device::Cpu).unwrap();
    p.begin_sources(3).unwrap();
    randomize(&p, "poly_b");
    randomize(&p, "router_1");
    randomize(&p, "router_2");
    methods.push(Box::new(p));
    let mut a =
        Attempt::new(AttemptConfig { length: 3, attention_dim: 4, temperature: None }, &d, Device::Cpu).unwrap();
    a.begin_sources(3).unwrap();
    methods.push(Box::new(a));
    for m in &methods {
        let mixed = hidden(b.as_ref(), m.as_ref(), Some(&[2, 0, 1]));
        for (row, task) in [(0, 2), (1, 0), (2, 1)] {
            let alone = hidden(b.as_ref(), m.as_ref(), Some(&[task; 3]));
            let diff = (mixed.get(row) - alone.get(row)).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{}: row {row} (task {task}) differs by {diff} in a mixed batch", m.name());
        }
        let t0 = hidden(b.as_ref(), m.as_ref(), Some(&[0; 3]));
        let t1 = hidden(b.as_ref(), m.as_ref(), Some(&[1; 3]));
        let apart = (t0 - t1).abs().max().double_value(&[]);
        assert!(apart > 1e-3, "{}: tasks 0 and 1 give the same output ({apart})", m.name());
    }
}

#[test]
fn routing_logits_train_at_their_own_rate() {
    let d = backbone().dims().clone();
    let mut p = Poly::named("polytropon", small_poly(1, PolyAdaptation::Route), &d, Device::Cpu).unwrap();
    p.begin_sources(2).unwrap();
    let names: Vec<String> = p.var_store().variables().into_keys().collect();
    let routers: Vec<&String> = names.iter().filter(|n| p.own_rate(n).is_some()).collect();
    // One routing row per source task in each of the 2 layers' 2 targets.
    assert_eq!(routers.len(), 2 * 2 * 2, "{names:?}");
    assert!(routers.iter().all(|n| n.contains("router_")));
    let rate = p.own_rate(routers[0]).unwrap();
    assert_eq!((rate.lr, rate.weight_decay), (0.1, Some(0.0)));
    assert!(names.iter().filter(|n| n.contains("poly_a")).all(|n| p.own_rate(n).is_none()));
}

#[test]
fn poly_mu_averages_the_inventory_into_uniform_routing() {
    let b = backbone();
    let d = b.dims().clone();
    tch::manual_seed(5);
    let mut m = Poly::named("poly_mu", small_poly(1, PolyAdaptation::Average), &d, Device::Cpu).unwrap();
    m.begin_sources(2).unwrap();
    randomize(&m, "poly_b");
    // Equal logits route uniformly: the source-stage output is the mean module's.
    tch::no_grad(|| {
        for (name, t) in m.var_store().variables() {
            if name.contains("router_") {
                let _ = t.shallow_clone().fill_(0.0);
            }
        }
    });
    let uniform = hidden(b.as_ref(), &m, Some(&[0; 3]));
    m.begin_target().unwrap();
    let averaged = hidden(b.as_ref(), &m, None);
    let diff = (uniform - averaged).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "averaged module differs from uniform routing by {diff}");
    for (name, t) in m.var_store().variables() {
        assert_eq!(t.requires_grad(), name.contains("avg_"), "{name}: only the averaged module trains");
    }
}

#[test]
fn adaptation_freezes_sources_and_keeps_their_outputs() {
    let b = backbone();
    let d = b.dims().clone();
    tch::manual_seed(11);
    let mut m = Poly::named("polytropon", small_poly(1, PolyAdaptation::Route), &d, Device::Cpu).unwrap();
    m.begin_sources(2).unwrap();
    randomize(&m, "poly_b");
    m.begin_target().unwrap();
    for (name, t) in m.var_store().variables() {
        let source_router = name.ends_with("router_0") || name.ends_with("router_1");
        assert_eq!(t.requires_grad(), !source_router, "{name}");
    }
    assert!(m.begin_target().is_err(), "a second target is refused");
    let mut fresh = Poly::named("polytropon", small_poly(1, PolyAdaptation::Route), &d, Device::Cpu).unwrap();
    assert!(fresh.begin_target().is_err(), "a target before sources is refused");
    assert!(fresh.begin_sources(0).is_err(), "zero sources are refused");
}

#[test]
fn attempt_reports_attention_over_sources_and_target() {
    let b = backbone();
    let d = b.dims().clone();
    let m = attempt(&d, 3);
    assert!(m.diagnostics().is_empty(), "no evaluation yet");
    let _ = hidden(b.as_ref(), m.as_ref(), None);
    let diag = m.diagnostics();
    let names: Vec<&str> = diag.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["attn_source_0", "attn_source_1", "attn_source_2", "attn_target"]);
    let total: f64 = diag.iter().map(|(_, v)| v).sum();
    assert!((total - 1.0).abs() < 1e-5, "attention weights sum to {total}");
}
