//! Forward + backward time of a MiniLM-sized backbone (batch 8, length 64) with each method of
//! pelt-prompts attached at its defaults, against the bare backbone's forward pass.

use criterion::{criterion_group, criterion_main, Criterion};
use pelt_backbone::{Bert, BertConfig};
use pelt_core::testkit;

fn bench(c: &mut Criterion) {
    let backbone = Bert::random(&BertConfig::minilm(), 0, tch::Device::Cpu);
    let mut group = c.benchmark_group("prompts");
    group.sample_size(10);
    testkit::bench_steps(&backbone, &pelt_prompts::methods(), |name, step| {
        group.bench_function(name, |b| b.iter(&mut *step));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
