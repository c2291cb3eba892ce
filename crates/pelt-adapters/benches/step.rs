//! Forward + backward time of a MiniLM-sized backbone with houlsby attached, against the bare
//! backbone (whose step is a forward pass only: the floor every method adds to).

use criterion::{criterion_group, criterion_main, Criterion};
use pelt_backbone::{Bert, BertConfig};
use pelt_core::{params::prepare_training, testkit, Backbone, Method, NoMethod};
use tch::Device;

fn bench(c: &mut Criterion) {
    let backbone = Bert::random(&BertConfig::minilm(), 0, Device::Cpu);
    let d = backbone.dims().clone();
    let d = &d;
    let inputs = testkit::bench_inputs(d, 8, 64);
    let method: Box<dyn Method> =
        Box::new(pelt_adapters::SequentialAdapter::houlsby(Default::default(), d, Device::Cpu).expect("build"));
    let mut group = c.benchmark_group("houlsby");
    group.sample_size(10);
    prepare_training(&backbone, method.as_ref());
    group.bench_function("houlsby", |b| b.iter(|| testkit::forward_backward(&backbone, method.as_ref(), &inputs)));
    // The bare backbone has nothing to train, so its step is a forward pass: the floor a method adds to.
    group.bench_function("bare_forward", |b| b.iter(|| testkit::forward_backward(&backbone, &NoMethod, &inputs)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
