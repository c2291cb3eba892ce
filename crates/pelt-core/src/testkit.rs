//! The conformance suite every method runs (STYLE.md): names unique, exact parameter count, identity at
//! init where claimed, only method parameters get gradients and change, save/load round-trips, merged
//! weights match unmerged output, and configs refuse bad values naming the field.
//!
//! Method crates call [`run_conformance`] from `tests/conformance.rs` with a tiny random backbone.

use crate::{
    backbone::{Backbone, BackboneDims, Inputs},
    config::{parse_config, MethodConfig},
    method::{Identity, Method, NoMethod},
    params::{count, prepare_training, pruned},
    store::{load_trainable, save_trainable},
};
use tch::{Kind, Tensor};

/// Builds a backbone; must return identical weights on every call.
pub type BackboneFactory<'a> = &'a dyn Fn() -> Box<dyn Backbone>;
/// Builds the method under test for a backbone.
pub type MethodFactory<'a> = &'a dyn Fn(&BackboneDims) -> Box<dyn Method>;

/// A small batch: for text, 3 sequences of length 7, the last one with 2 padding positions; for a
/// vision backbone, 3 images of noise. Drawn from a fixed hash of the position rather than libtorch's
/// generator: that generator is global, and a test in a parallel thread seeding or drawing from it
/// between two calls here would change the inputs under a test that compares two forward passes.
pub fn sample_inputs(dims: &BackboneDims) -> Inputs {
    // SplitMix64 of the index: well spread, the same on every run and every thread.
    let hash = |i: u64| {
        let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    if let Some(img) = dims.image {
        let n = 3 * img.channels * img.size * img.size;
        // Uniform on [-√3, √3]: zero mean, unit variance, as the normalised images the backbone sees.
        let values: Vec<f32> = (0..n as u64)
            .map(|i| ((hash(i) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * 3f32.sqrt())
            .collect();
        return Inputs::images(Tensor::from_slice(&values).view([3, img.channels, img.size, img.size]));
    }
    let mut ids: Vec<i64> = (0..21u64).map(|i| 1 + (hash(i) % (dims.vocab as u64 - 1)) as i64).collect();
    let mut mask = vec![1i64; 21];
    for j in 19..21 {
        ids[j] = 0;
        mask[j] = 0;
    }
    let input_ids = Tensor::from_slice(&ids).view([3, 7]);
    Inputs::text(input_ids.shallow_clone(), Tensor::from_slice(&mask).view([3, 7]), input_ids.zeros_like())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "output shapes differ");
    (a - b).abs().max().double_value(&[])
}

/// Hidden states of the input's own positions, so that methods which insert positions still compare on
/// the positions both runs share.
fn real_positions(out: &crate::backbone::Encoded) -> Tensor {
    out.own_positions()
}

fn assert_unique_names(what: &str, names: impl Iterator<Item = String>) {
    for name in names {
        // tch silently renames a duplicate variable `x` to `x__1`.
        let dup = name.rsplit_once("__").is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()));
        assert!(!dup, "{what} variable `{name}` looks like a silently renamed duplicate");
    }
}

fn zero_grads(vars: &[(String, Tensor)]) {
    for (_, var) in vars {
        let mut g = var.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// Runs the whole suite for one method. `expected_params` is the test's own hand-written formula.
pub fn run_conformance(make_backbone: BackboneFactory, make_method: MethodFactory, expected_params: i64) {
    let backbone = make_backbone();
    // libtorch's RNG is global and tests run in parallel threads, so a second `make_backbone()` may
    // not reproduce these weights: keep a copy to reset fresh backbones from.
    let pristine: std::collections::HashMap<String, Tensor> =
        backbone.var_store().variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    let dims = backbone.dims().clone();
    let inputs = sample_inputs(&dims);
    // The bare backbone before the method's init, which may rewrite frozen weights (PiSSA keeps only
    // the residual of W and moves the rest into its pair).
    let bare = tch::no_grad(|| backbone.probe(&inputs, &NoMethod, false));
    let method = make_method(&dims);
    method.init_from(backbone.as_ref());

    assert_unique_names("backbone", backbone.var_store().variables().into_keys());
    assert_unique_names(method.name(), method.var_store().variables().into_keys());

    // Identity at init, in eval mode (dropout off).
    let with = tch::no_grad(|| backbone.probe(&inputs, method.as_ref(), false));
    // Token level: whatever positions a method inserts, every input token keeps its own output state, in
    // order (a token head — NER — reads them one by one).
    if dims.image.is_none() {
        let own = real_positions(&with).size();
        let input = inputs.input_ids.size();
        assert_eq!(
            own[..2],
            input[..2],
            "{}: the input's own positions come back as {own:?}, the input is {input:?}",
            method.name()
        );
    }
    let diff = max_abs_diff(&real_positions(&bare), &real_positions(&with));
    match method.identity() {
        Identity::Exact => assert!(diff < 1e-5, "{}: claims identity at init but differs by {diff}", method.name()),
        Identity::Approx(tol) => {
            assert!(diff < tol, "{}: claims near-identity ({tol}) but differs by {diff}", method.name())
        }
        Identity::None => {}
    }

    // Calibration (SNIP pruning) runs on gradients at init before training, as in the runner (here
    // one probe batch stands for the training examples).
    let trainable = prepare_training(backbone.as_ref(), method.as_ref());
    tch::manual_seed(99);
    let target = Tensor::randn(bare.hidden.size(), (Kind::Float, tch::Device::Cpu));
    let loss_of = |out: &crate::backbone::Encoded| (real_positions(out) - &target).square().mean(Kind::Float);
    if method.calibration_examples() > 0 {
        loss_of(&backbone.probe(&inputs, method.as_ref(), false)).backward();
        method.calibrate();
        zero_grads(&trainable);
    }

    // Padding never changes a real token's output: the padded row of the batch, run alone without its
    // padding, gives the same hidden states at its real positions (prompt and prefix positions must be
    // masked and placed right for this to hold).
    tch::no_grad(|| {
        let row = 2;
        let (alone, real) = match &inputs.pixels {
            // Images have no padding: the row alone must still match the row in the batch.
            Some(pixels) => (Inputs::images(pixels.narrow(0, row, 1)), real_positions(&with).size()[1]),
            None => {
                let real = inputs.attention_mask.get(row).sum(Kind::Int64).int64_value(&[]);
                let cut = |t: &Tensor| t.narrow(0, row, 1).narrow(1, 0, real);
                (Inputs::text(cut(&inputs.input_ids), cut(&inputs.attention_mask), cut(&inputs.token_type_ids)), real)
            }
        };
        let single = real_positions(&backbone.probe(&alone, method.as_ref(), false));
        // The batch again, after calibration: pruning moved the weights since `with` was computed.
        let batch = backbone.probe(&inputs, method.as_ref(), false);
        let batched = real_positions(&batch).narrow(0, row, 1).narrow(1, 0, real);
        let diff = max_abs_diff(&single, &batched);
        assert!(diff < 1e-4, "{}: padding changes real tokens' outputs by {diff}", method.name());
    });

    // Parameter count: stores == method formula == the test's formula.
    let counted = count(backbone.as_ref(), method.as_ref(), 0).method;
    let from_vars: i64 = trainable.iter().map(|(_, t)| t.numel() as i64).sum::<i64>() - pruned(method.as_ref());
    assert_eq!(counted, expected_params, "{}: counted parameters vs the test's formula", method.name());
    assert_eq!(from_vars, expected_params, "{}: requires_grad variables vs the test's formula", method.name());
    assert_eq!(method.formula_params(&dims), expected_params, "{}: method's own formula", method.name());

    // Gradients: only trainable variables get them, and all of them change over a few SGD steps.
    let snapshot: Vec<(String, Tensor, bool)> = backbone
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("backbone.{n}"), t.detach().copy(), method.trains_backbone(&n)))
        .chain(
            method
                .var_store()
                .variables()
                .into_iter()
                .map(|(n, t)| (format!("method.{n}"), t.detach().copy(), t.requires_grad())),
        )
        .collect();
    // Largest |gradient| each trainable variable saw. Methods with near-zero inits (Compacter's rule
    // matrices start at 1e-4) move some variables by less than a float's resolution in four steps,
    // so "trains" is checked on the gradient, and "frozen" on both gradient and value.
    let mut signal: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for step in 0..4 {
        let loss = loss_of(&backbone.probe(&inputs, method.as_ref(), false));
        zero_grads(&trainable);
        if trainable.is_empty() {
            assert!(!loss.requires_grad(), "{}: no trainable variables yet the loss has a graph", method.name());
            break;
        }
        loss.backward();
        method.after_backward();
        tch::no_grad(|| {
            for (name, var) in &trainable {
                let g = var.grad();
                assert!(g.defined(), "{}: trainable `{name}` got no gradient (step {step})", method.name());
                let largest = g.abs().max().double_value(&[]);
                let seen = signal.entry(name.clone()).or_insert(0.0);
                *seen = seen.max(largest);
                let mut v = var.shallow_clone();
                let _ = v.f_sub_(&(g * 0.5)).expect("sgd step");
            }
        });
    }
    let backbone_vars = backbone.var_store().variables();
    let method_vars = method.var_store().variables();
    for (name, keep) in method.masks() {
        let leaked = method_vars[&name].abs().masked_select(&keep.logical_not()).sum(Kind::Float).double_value(&[]);
        assert!(leaked == 0.0, "{}: pruned entries of `{name}` moved off zero ({leaked})", method.name());
    }
    for (name, before, trains) in &snapshot {
        let now = match name.split_once('.') {
            Some(("backbone", n)) => &backbone_vars[n],
            Some((_, n)) => &method_vars[n],
            None => unreachable!(),
        };
        if !trains {
            assert!(!now.grad().defined(), "{}: frozen `{name}` received a gradient", method.name());
        }
        let changed = max_abs_diff(before, now) > 0.0;
        let buffer = name.starts_with("method.") && !trains;
        if *trains && !trainable.is_empty() {
            let seen = signal.get(name).copied().unwrap_or(0.0);
            assert!(seen > 0.0, "{}: trainable `{name}` got only zero gradients in 4 steps", method.name());
        } else if !buffer {
            assert!(!changed, "{}: frozen `{name}` changed", method.name());
        }
    }

    // Federated: a client's round changes nothing but what it sends back, and the server's average of
    // identical updates is that update.
    if method.federates().is_ok() && !trainable.is_empty() {
        let step = || {
            let loss = loss_of(&backbone.probe(&inputs, method.as_ref(), true));
            zero_grads(&trainable);
            loss.backward();
            method.after_backward();
            tch::no_grad(|| {
                for (_, var) in &trainable {
                    let g = var.grad();
                    if g.defined() {
                        let _ = var.shallow_clone().f_sub_(&(g * 0.5)).expect("sgd step");
                    }
                }
            });
        };
        check_federated_round(backbone.as_ref(), method.as_ref(), &trainable, &step);
    }

    // Save/load round trip into a fresh backbone and a freshly initialised method.
    let trained = tch::no_grad(|| backbone.probe(&inputs, method.as_ref(), false));
    // Tests of one crate run in parallel threads of one process: each call needs its own folder.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pelt-testkit-{}-{}-{call}", method.name(), std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("method.safetensors");
    save_trainable(backbone.as_ref(), method.as_ref(), &file).expect("save");
    let fresh_backbone = make_backbone();
    tch::no_grad(|| {
        for (name, mut var) in fresh_backbone.var_store().variables() {
            var.copy_(&pristine[&name]);
        }
    });
    tch::manual_seed(4321);
    let fresh = make_method(&dims);
    fresh.init_from(fresh_backbone.as_ref());
    load_trainable(fresh_backbone.as_ref(), fresh.as_ref(), &file).expect("load");
    let reloaded = tch::no_grad(|| fresh_backbone.probe(&inputs, fresh.as_ref(), false));
    let diff = max_abs_diff(&trained.hidden, &reloaded.hidden);
    assert!(diff < 1e-6, "{}: reloaded weights give output differing by {diff}", method.name());
    let _ = std::fs::remove_dir_all(&dir);

    // Merge: merged weights with no method attached match the unmerged output.
    let mut merged_backbone = fresh_backbone;
    let merged = fresh.merge_into(merged_backbone.as_mut()).expect("merge");
    if merged {
        let out = tch::no_grad(|| merged_backbone.probe(&inputs, &NoMethod, false));
        let diff = max_abs_diff(&reloaded.hidden, &out.hidden);
        assert!(diff < 1e-4, "{}: merged output differs from unmerged by {diff}", method.name());
    }
}

/// One simulated client round (two training steps in train mode, dropout on) from the current values:
/// every variable outside `trainable` — frozen backbone weights and the method's buffers alike — must
/// come out unchanged, since a federated run neither sends nor aggregates it; and N copies of the
/// client's update, under any example weights, must aggregate to that update (FedAvg) and move a
/// FedAdam server as one copy does.
fn check_federated_round(
    backbone: &dyn Backbone,
    method: &dyn Method,
    trainable: &[(String, Tensor)],
    client_step: &dyn Fn(),
) {
    let everything = || -> Vec<(String, Tensor)> {
        let backbone_vars = backbone.var_store().variables().into_iter().map(|(n, t)| (format!("backbone.{n}"), t));
        let method_vars = method.var_store().variables().into_iter().map(|(n, t)| (format!("method.{n}"), t));
        backbone_vars.chain(method_vars).collect()
    };
    let before: Vec<(String, Tensor)> = everything().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    let sent: std::collections::HashSet<&str> = trainable.iter().map(|(n, _)| n.as_str()).collect();
    let values = || -> Vec<Tensor> { trainable.iter().map(|(_, t)| t.detach().copy()).collect() };
    let global = values();
    client_step();
    client_step();
    let update = values();
    let now: std::collections::HashMap<String, Tensor> = everything().into_iter().collect();
    for (name, old) in &before {
        if !sent.contains(name.as_str()) {
            let moved = max_abs_diff(old, &now[name]);
            assert!(
                moved == 0.0,
                "{}: `{name}` is not sent in a federated round, yet a round moved it by {moved}",
                method.name()
            );
        }
    }
    let copies = |weights: &[usize]| -> Vec<(Vec<Tensor>, usize)> {
        weights.iter().map(|&n| (update.iter().map(Tensor::copy).collect(), n)).collect()
    };
    let aggregated = |aggregator, weights: &[usize]| {
        let mut into: Vec<Tensor> = global.iter().map(Tensor::copy).collect();
        crate::federated::Server::new(aggregator, &into).aggregate(&mut into, &copies(weights));
        into
    };
    let close = |a: &[Tensor], b: &[Tensor]| a.iter().zip(b).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f64::max);
    let averaged = aggregated(crate::federated::Aggregator::Fedavg, &[1, 2, 6]);
    let gap = close(&averaged, &update);
    assert!(gap < 1e-6, "{}: FedAvg of identical updates differs from the update by {gap}", method.name());
    let adam = crate::federated::Aggregator::Fedadam { lr: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
    let gap = close(&aggregated(adam, &[3, 3, 3]), &aggregated(adam, &[5]));
    assert!(gap < 1e-6, "{}: FedAdam moves differently for N identical updates than for one, by {gap}", method.name());
}

/// Checks a config type: the default validates and round-trips through YAML, and each bad document
/// is refused with an error naming the expected field.
pub fn check_config<C: MethodConfig + PartialEq>(dims: &BackboneDims, bad: &[(&str, &str)]) {
    let default = C::default();
    default.validate(dims).expect("default config validates");
    let text = serde_yaml::to_string(&default).expect("serialise");
    let back: C = parse_config(&serde_yaml::from_str(&text).expect("yaml"), dims).expect("round trip");
    assert_eq!(back, default, "config round trip");
    for (doc, field) in bad {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("test yaml");
        let err = parse_config::<C>(&value, dims).expect_err(doc);
        assert_eq!(&err.field, field, "`{doc}` refused as {err}, expected field `{field}`");
    }
}

/// A BERT-base-like shape at MiniLM size (6 layers, d = 384) for benches: the real model's cost
/// without its weights.
pub fn bench_inputs(dims: &BackboneDims, batch: i64, len: i64) -> Inputs {
    tch::manual_seed(5);
    let input_ids = Tensor::randint_low(1, dims.vocab, [batch, len], (Kind::Int64, tch::Device::Cpu));
    Inputs::text(input_ids.shallow_clone(), input_ids.ones_like(), input_ids.zeros_like())
}

/// One training step's forward and backward through `backbone` with `method` attached (after
/// [`prepare_training`]), as benches time it; returns the loss.
pub fn forward_backward(backbone: &dyn Backbone, method: &dyn crate::Attachment, inputs: &Inputs) -> f64 {
    let out = backbone.probe(inputs, method, true);
    let loss = out.hidden.square().mean(Kind::Float);
    if loss.requires_grad() {
        loss.backward();
    }
    loss.double_value(&[])
}

/// The step every crate's bench times: for each entry built at its default configuration, then for the
/// bare backbone (a forward pass only, since it has nothing to train: the floor every method adds to),
/// `register(name, step)` with a closure running one forward + backward on a batch of 8 × 64 random
/// tokens. Benches hand `register` to criterion; `backbone` should have a real model's shape.
pub fn bench_steps(
    backbone: &dyn Backbone,
    entries: &[crate::MethodEntry],
    mut register: impl FnMut(&str, &mut dyn FnMut() -> f64),
) {
    let dims = backbone.dims().clone();
    let inputs = bench_inputs(&dims, 8, 64);
    for e in entries {
        let method = (e.build)(&serde_yaml::Value::Null, &dims, tch::Device::Cpu)
            .unwrap_or_else(|err| panic!("{}: default config does not build: {err}", e.info.name));
        method.init_from(backbone);
        // Also resets requires_grad on the backbone left by the previous method.
        prepare_training(backbone, method.as_ref());
        register(e.info.name, &mut || forward_backward(backbone, method.as_ref(), &inputs));
        if method.routes_tasks() {
            // Multi-task methods also as they adapt to a target after four source tasks.
            let mut method = (e.build)(&serde_yaml::Value::Null, &dims, tch::Device::Cpu)
                .unwrap_or_else(|err| panic!("{}: default config does not build: {err}", e.info.name));
            method.init_from(backbone);
            method.begin_sources(4).and_then(|()| method.begin_target()).unwrap_or_else(|err| panic!("{err}"));
            prepare_training(backbone, method.as_ref());
            let name = format!("{}_target_after_4_sources", e.info.name);
            register(&name, &mut || forward_backward(backbone, method.as_ref(), &inputs));
        }
    }
    prepare_training(backbone, &Frozen::default());
    register("bare_forward", &mut || forward_backward(backbone, &NoMethod, &inputs));
}

/// A method that trains nothing, to freeze a backbone again with [`prepare_training`].
#[derive(Debug)]
pub struct Frozen(tch::nn::VarStore);

impl Default for Frozen {
    fn default() -> Self {
        Frozen(tch::nn::VarStore::new(tch::Device::Cpu))
    }
}

impl crate::Attachment for Frozen {}

impl Method for Frozen {
    fn name(&self) -> &str {
        "frozen"
    }
    fn var_store(&self) -> &tch::nn::VarStore {
        &self.0
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, _: &BackboneDims) -> i64 {
        0
    }
}
