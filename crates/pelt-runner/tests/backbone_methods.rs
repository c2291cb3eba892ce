//! Registered methods on the other backbones: site-based methods attach to a ViT's and a T5's sites
//! unchanged, so each must pass the same conformance suite there as on BERT (the multi-task ones also on
//! a target after two sources). On T5 the suite checks the decoder's output with the encoder's on its
//! path, so modules in both stacks must train.

use pelt_backbone::{Vit, VitConfig};
use pelt_core::{testkit, Backbone, BackboneDims, Method, MethodEntry};
use tch::Device;

/// A small ViT at which every method's defaults are valid: d = 128 (MAM's adapter bottleneck of 512 must
/// be at most 4d), 16 × 16 RGB images in 2 × 2 patches (64 patches + the class token, so prompts of up to
/// 32 positions fit).
fn config() -> VitConfig {
    VitConfig {
        hidden_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 256,
        image_size: 16,
        patch_size: 2,
        num_channels: 3,
        ..VitConfig::default()
    }
}

/// libtorch's generator is global and the tests of a binary run in parallel threads: each test holds
/// this lock so that its backbone and methods are drawn the same way on every run (RAFT's
/// near-identity, for one, depends on how far the random weights push activations).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn backbone() -> Box<dyn Backbone> {
    Box::new(Vit::random(&config(), 5, Device::Cpu))
}

fn entries() -> Vec<MethodEntry> {
    [
        pelt_selective::methods(),
        pelt_adapters::methods(),
        pelt_lowrank::methods(),
        pelt_prompts::methods(),
        pelt_mixtures::methods(),
    ]
    .concat()
}

fn build(entry: &MethodEntry, dims: &BackboneDims, sources: usize) -> Box<dyn Method> {
    let mut m = (entry.build)(&serde_yaml::Value::Null, dims, Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: defaults do not build on a ViT: {e}", entry.info.name));
    if sources > 0 {
        m.begin_sources(sources).unwrap();
        m.begin_target().unwrap();
    }
    m
}

/// The conformance suite for every registered method on `backbone` (the multi-task ones also on a target
/// after two sources), each against its own formula on these sizes (hand counts are checked on BERT).
fn every_method_conforms(backbone: &dyn Fn() -> Box<dyn Backbone>, dims: &BackboneDims) {
    for entry in entries() {
        let routed = build(&entry, dims, 0).routes_tasks();
        for sources in if routed { vec![0, 2] } else { vec![0] } {
            let expected = build(&entry, dims, sources).formula_params(dims);
            testkit::run_conformance(backbone, &|d: &BackboneDims| build(&entry, d, sources), expected);
        }
    }
}

#[test]
fn every_method_conforms_on_a_vit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dims = config().dims();
    let mut names = Vec::new();
    for entry in entries() {
        let routed = build(&entry, &dims, 0).routes_tasks();
        for sources in if routed { vec![0, 2] } else { vec![0] } {
            // The parameter formulas are checked against hand-written counts on BERT; here the method's
            // own formula must still match its stores on the ViT's sizes.
            let expected = build(&entry, &dims, sources).formula_params(&dims);
            testkit::run_conformance(&backbone, &|d: &BackboneDims| build(&entry, d, sources), expected);
        }
        names.push(entry.info.name);
    }
    for name in ["lora", "houlsby", "bitfit", "vpt_shallow", "vpt_deep", "kadaptation", "prefix_tuning"] {
        assert!(names.contains(&name), "{name} missing");
    }
}

/// A small T5 (v1.1 layout) at which every module method's defaults are valid: d = 128 = 4 heads × 32,
/// 2 encoder and 2 decoder layers.
fn t5() -> Box<dyn Backbone> {
    Box::new(small_t5())
}

fn small_t5() -> pelt_backbone::T5 {
    let config = pelt_backbone::T5Config {
        vocab_size: 100,
        d_model: 128,
        d_kv: 32,
        d_ff: 256,
        num_layers: 2,
        num_heads: 4,
        relative_attention_num_buckets: 8,
        feed_forward_proj: "gated-gelu".into(),
        ..pelt_backbone::T5Config::default()
    };
    pelt_backbone::T5::random(&config, 5, Device::Cpu)
}

/// Methods that do not apply to a T5: BitFit trains bias terms, and T5 has none.
const NOT_ON_T5: [&str; 1] = ["bitfit"];

#[test]
fn every_method_that_applies_conforms_on_a_t5_encoder_decoder() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dims = t5().dims().clone();
    let mut tested = Vec::new();
    for entry in entries() {
        if NOT_ON_T5.contains(&entry.info.name) {
            let err = (entry.build)(&serde_yaml::Value::Null, &dims, Device::Cpu).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("no")), "{} should refuse a T5", entry.info.name);
            continue;
        }
        let routed = build(&entry, &dims, 0).routes_tasks();
        for sources in if routed { vec![0, 2] } else { vec![0] } {
            let expected = build(&entry, &dims, sources).formula_params(&dims);
            testkit::run_conformance(&t5, &|d: &BackboneDims| build(&entry, d, sources), expected);
        }
        tested.push(entry.info.name);
    }
    for name in ["full", "ln_tuning", "houlsby", "compacter", "raft", "lora", "prefix_tuning", "unipelt", "polytropon"]
    {
        assert!(tested.contains(&name), "{name} missing");
    }
}

#[test]
fn t5_parameter_formulas_match_hand_counts() {
    // The small T5 above: V = 100, d = 128 = 4 heads × 32, d_ff = 256 gated, 8 buckets, 2 + 2 layers,
    // tied head. Encoder layer: 4·128² + 3·128·256 + 2·128 = 164,096; decoder layer: 8·128² +
    // 3·128·256 + 3·128 = 229,760; embedding 12,800; per stack 8·4 buckets + a final norm of 128.
    let dims = t5().dims().clone();
    let full = (pelt_selective::methods().into_iter().find(|e| e.info.name == "full").unwrap().build)(
        &serde_yaml::Value::Null,
        &dims,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(full.formula_params(&dims), 12_800 + 2 * 164_096 + 2 * 229_760 + 2 * (32 + 128));
    // LN-tuning: 2 + 2 RMS gains per encoder layer... 2·2 + 2·3 layer norms and 2 final ones, d each.
    let ln = (pelt_selective::methods().into_iter().find(|e| e.info.name == "ln_tuning").unwrap().build)(
        &serde_yaml::Value::Null,
        &dims,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(ln.formula_params(&dims), (4 + 6 + 2) * 128);
}

fn lora_on(targets: &str) -> impl Fn(&BackboneDims) -> Box<dyn Method> + '_ {
    move |d: &BackboneDims| {
        let config = serde_yaml::from_str(&format!("{{r: 8, targets: [{targets}]}}")).unwrap();
        (pelt_lowrank::methods().into_iter().find(|e| e.info.name == "lora").unwrap().build)(&config, d, Device::Cpu)
            .unwrap()
    }
}

#[test]
fn methods_attach_to_the_cross_attention_of_decoder_layers_only() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // LoRA r 8 on q and v of the 4 self-attentions (4 · 2 · 8 · 256) and of the 2 cross-attentions
    // (2 · 2 · 8 · 256): 24,576.
    testkit::run_conformance(&t5, &lora_on("query, value, cross_query, cross_value"), 16_384 + 8_192);
    // Cross-attention alone: only its modules train, and the merged weights match.
    testkit::run_conformance(&t5, &lora_on("cross_key, cross_output"), 2 * 2 * 8 * 256);
    // A Houlsby adapter after the cross-attention sublayer too: 2 + 2 + 2 adapters of
    // 2·128·64 + 128 + 64 = 16,576 each (4 after self-attention, 2 after cross-attention... and 4 after
    // the FFN: 10 in all), plus every layer norm (10 · 128).
    let houlsby = |d: &BackboneDims| -> Box<dyn Method> {
        let config = serde_yaml::from_str("{sites: [attention_output, cross_output, ffn_output]}").unwrap();
        (pelt_adapters::methods().into_iter().find(|e| e.info.name == "houlsby").unwrap().build)(
            &config,
            d,
            Device::Cpu,
        )
        .unwrap()
    };
    testkit::run_conformance(&t5, &houlsby, 10 * 16_576 + 10 * 128);
    // An encoder has no cross-attention: the config is refused, naming the field.
    let bert = pelt_backbone::BertConfig::tiny().dims();
    let config = serde_yaml::from_str("{targets: [query, cross_value]}").unwrap();
    let err = (pelt_lowrank::methods().into_iter().find(|e| e.info.name == "lora").unwrap().build)(
        &config,
        &bert,
        Device::Cpu,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("targets") && err.contains("no decoder"), "{err}");
}

/// A tiny BERT2BERT: 2 encoder and 2 warm-started decoder layers of d = 128 (MAM's bottleneck of 512 and
/// the prompt lengths fit), random weights.
fn bert2bert() -> Box<dyn Backbone> {
    Box::new(small_bert2bert())
}

fn small_bert2bert() -> pelt_backbone::Bert2Bert {
    let config = pelt_backbone::BertConfig {
        hidden_size: 128,
        num_attention_heads: 4,
        intermediate_size: 256,
        ..pelt_backbone::BertConfig::tiny()
    };
    let special = pelt_backbone::seq2seq::SpecialIds { start: 1, eos: 2, pad: 0 };
    pelt_backbone::Bert2Bert::random(&config, special, 9, Device::Cpu)
}

#[test]
fn every_method_conforms_on_a_warm_started_bert2bert() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dims = bert2bert().dims().clone();
    assert_eq!((dims.layers, dims.decoder_layers), (4, 2));
    every_method_conforms(&bert2bert, &dims);
    // Hand counts: LoRA r 8 on q, v of 4 layers = 4 · 2 · 8 · 256; BitFit: the embedding LayerNorm's
    // bias and per layer 4·128 + 256 + 128 + 2·128 biases (the new cross-attention is not the backbone's).
    let lora = build(&entries().into_iter().find(|e| e.info.name == "lora").unwrap(), &dims, 0);
    assert_eq!(lora.formula_params(&dims), 16_384);
    let bitfit = build(&entries().into_iter().find(|e| e.info.name == "bitfit").unwrap(), &dims, 0);
    assert_eq!(bitfit.formula_params(&dims), 128 + 4 * (512 + 256 + 128 + 256));
    testkit::run_conformance(&bert2bert, &lora_on("cross_query, cross_value"), 2 * 2 * 8 * 256);
}

/// A decoder position never depends on later ones, whatever method is attached, with its weights moved
/// off their (often identity) init: a method that pools over the sequence (UniPELT's gates) may only
/// pool over the past in a decoder.
#[test]
fn decoder_positions_never_see_later_tokens_with_any_method() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = small_t5();
    let dims = model.dims().clone();
    let inputs = testkit::sample_inputs(&dims);
    let (_, t) = inputs.input_ids.size2().unwrap();
    let changed = inputs.input_ids.copy();
    let _ = changed.narrow(1, t - 1, 1).g_add_scalar_(1).remainder_(dims.vocab);
    for entry in entries().iter().filter(|e| !NOT_ON_T5.contains(&e.info.name)) {
        let m = build(entry, &dims, 0);
        m.init_from(&model);
        tch::no_grad(|| {
            for (_, v) in m.var_store().variables() {
                let _ = v.shallow_clone().g_add_(&(v.randn_like() * 0.1));
            }
        });
        let (a, b) = tch::no_grad(|| {
            let encoded = model.forward(&inputs, m.as_ref(), false);
            (
                model.decoder_states(&encoded, &inputs.input_ids, m.as_ref(), false),
                model.decoder_states(&encoded, &changed, m.as_ref(), false),
            )
        });
        let past = |x: &tch::Tensor| x.narrow(1, 0, t - 1);
        let diff = (past(&a) - past(&b)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{}: changing the last decoder token moved earlier positions by {diff}", entry.info.name);
        let last = (a.narrow(1, t - 1, 1) - b.narrow(1, t - 1, 1)).abs().max().double_value(&[]);
        assert!(last > 1e-4, "{}: the last position should see its own token", entry.info.name);
    }
}

/// Incremental decoding (the keys and values of earlier positions kept) gives the tokens that rerunning
/// the decoder over the whole prefix gives — greedy and beam search, on a BERT2BERT and on a T5 — for
/// every method that applies, with the method's weights moved off their (often identity) init; a
/// method that pools over the decoder's positions (UniPELT) is decoded the whole-prefix way.
#[test]
fn incremental_decoding_equals_whole_prefix_decoding_with_any_method() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bert2bert = small_bert2bert();
    let t5 = small_t5();
    let models: [(&str, &dyn pelt_backbone::Seq2Seq); 2] = [("bert2bert", &bert2bert), ("t5", &t5)];
    let mut stepped = 0;
    for (name, model) in models {
        let dims = model.dims().clone();
        let inputs = testkit::sample_inputs(&dims);
        for entry in entries().iter().filter(|e| name != "t5" || !NOT_ON_T5.contains(&e.info.name)) {
            let m = build(entry, &dims, 0);
            m.init_from(model);
            tch::no_grad(|| {
                for (_, v) in m.var_store().variables() {
                    let _ = v.shallow_clone().g_add_(&(v.randn_like() * 0.1));
                }
            });
            for num_beams in [1, 3] {
                let generation = |incremental| pelt_backbone::Generation {
                    max_new_tokens: 8,
                    num_beams,
                    length_penalty: 1.0,
                    no_repeat_ngram: 2,
                    incremental,
                };
                let a = pelt_backbone::seq2seq::generate(model, &inputs, m.as_ref(), &generation(true));
                let b = pelt_backbone::seq2seq::generate(model, &inputs, m.as_ref(), &generation(false));
                assert_eq!(a, b, "{} on {name}, {num_beams} beams: incremental decoding differs", entry.info.name);
            }
            stepped += usize::from(m.decodes_incrementally());
        }
    }
    assert!(stepped >= 60, "only {stepped} method runs decode incrementally");
    let dims = bert2bert.dims().clone();
    let unipelt = build(&entries().into_iter().find(|e| e.info.name == "unipelt").unwrap(), &dims, 0);
    assert!(!unipelt.decodes_incrementally());
}

/// A small MPNet (BERT's encoder with RoBERTa's positions, no segments and one relative-position bias
/// shared by its layers), d = 128 as the other backbones here.
fn mpnet() -> Box<dyn Backbone> {
    let config = pelt_backbone::BertConfig {
        model_type: "mpnet".into(),
        hidden_size: 128,
        num_attention_heads: 4,
        intermediate_size: 256,
        max_position_embeddings: 130,
        type_vocab_size: 0,
        pad_token_id: 1,
        relative_attention_num_buckets: Some(32),
        ..pelt_backbone::BertConfig::tiny()
    };
    Box::new(pelt_backbone::Bert::random(&config, 11, Device::Cpu))
}

#[test]
fn every_method_conforms_on_an_mpnet() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dims = mpnet().dims().clone();
    assert_eq!((dims.arch.as_str(), dims.type_vocab), ("mpnet", 0));
    every_method_conforms(&mpnet, &dims);
    // The shared bias table is the backbone's, not a bias: BitFit counts what it counts on BERT (the
    // embedding LayerNorm's bias and per layer 4·128 + 256 + 128 + 2·128 biases).
    let bitfit = build(&entries().into_iter().find(|e| e.info.name == "bitfit").unwrap(), &dims, 0);
    assert_eq!(bitfit.formula_params(&dims), 128 + 2 * (512 + 256 + 128 + 256));
}
