//! Forward + backward time of a MiniLM-sized backbone (batch 8, length 64) with each method of
//! pelt-mixtures attached at its defaults, against the bare backbone's forward pass: the floor every
//! method adds to, since the bare backbone has nothing to train.

use criterion::{criterion_group, criterion_main, Criterion};
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{params::prepare_training, testkit, Backbone, NoMethod};

fn bench(c: &mut Criterion) {
    let backbone = Bert::random(&BertConfig::minilm(), 0, tch::Device::Cpu);
    let dims = backbone.dims().clone();
    let inputs = testkit::bench_inputs(&dims, 8, 64);
    let mut group = c.benchmark_group("mixtures");
    group.sample_size(10);
    for (name, method) in testkit::default_methods(&pelt_mixtures::methods(), &dims) {
        // Also resets requires_grad on the backbone left by the previous method.
        prepare_training(&backbone, method.as_ref());
        group.bench_function(name, |b| b.iter(|| testkit::forward_backward(&backbone, method.as_ref(), &inputs)));
    }
    prepare_training(&backbone, &testkit::Frozen::default());
    group.bench_function("bare_forward", |b| b.iter(|| testkit::forward_backward(&backbone, &NoMethod, &inputs)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
