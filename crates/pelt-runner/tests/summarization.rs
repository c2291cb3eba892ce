//! Summarization sweeps end to end: a tiny mT5 written as an HF folder (config.json, model.safetensors and
//! a word-level tokenizer.json) learns XL-Sum-layout JSONL for two languages, one Latin-script and one
//! not, with the three multilingual strategies of `experiments/xlsum.yaml` (full fine-tuning, a method per
//! language, one method shared across languages); malformed summarization files are refused before any
//! training; the shipped experiment files all validate.

mod common;
use common::pelt;
use pelt_backbone::{T5Config, T5};
use pelt_core::Backbone;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// English and Hindi words of the tiny vocabulary (ids 3…), after <pad>, </s> and <unk>.
const WORDS: [&str; 16] = [
    "the",
    "market",
    "rose",
    "fell",
    "team",
    "won",
    "lost",
    "today",
    "भारत",
    "में",
    "बारिश",
    "हुई",
    "टीम",
    "जीती",
    "आज",
    "बाजार",
];

/// A word-level tokenizer.json in the format Hugging Face `tokenizers` reads: whitespace pre-tokenizer,
/// `</s>` appended to every input as T5's tokenizer does, <pad> = 0.
fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, w) in ["<pad>", "</s>", "<unk>"].iter().chain(WORDS.iter()).enumerate() {
        vocab.insert((*w).to_owned(), i.into());
    }
    let special = |id: &str, n: u32| serde_json::json!({"id": n, "content": id, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special("<pad>", 0), special("</s>", 1), special("<unk>", 2)],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// A tiny random mT5 (gated-GELU, untied head, 2 + 2 layers of d = 32) as an HF folder.
fn tiny_mt5(dir: &Path) {
    let config = T5Config {
        model_type: "mt5".into(),
        vocab_size: 3 + WORDS.len() as i64,
        d_model: 32,
        d_kv: 8,
        d_ff: 64,
        num_layers: 2,
        num_heads: 4,
        relative_attention_num_buckets: 8,
        feed_forward_proj: "gated-gelu".into(),
        tie_word_embeddings: false,
        ..T5Config::default()
    };
    let model = T5::random(&config, 3, Device::Cpu);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(model.config()).unwrap()).unwrap();
    let tensors: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
}

/// XL-Sum's layout: `<dir>/<language>/<language>_{train,val,test}.jsonl`; each summary is the article's
/// first three words, so a model can learn it.
fn tiny_xlsum(dir: &Path) {
    for (language, words) in [("english", &WORDS[..8]), ("hindi", &WORDS[8..])] {
        let folder = dir.join(language);
        std::fs::create_dir_all(&folder).unwrap();
        for (split, n) in [("train", 24), ("val", 6), ("test", 8)] {
            let lines: String = (0..n)
                .map(|i| {
                    let text: Vec<&str> = (0..6).map(|j| words[(i * 3 + j * 5 + split.len()) % words.len()]).collect();
                    serde_json::json!({
                        "id": format!("{language}-{split}-{i}"),
                        "url": format!("https://www.bbc.com/{language}/{i}"),
                        "title": text[..2].join(" "),
                        "summary": text[..3].join(" "),
                        "text": text.join(" "),
                    })
                    .to_string()
                        + "\n"
                })
                .collect();
            std::fs::write(folder.join(format!("{language}_{split}.jsonl")), lines).unwrap();
        }
    }
}

const XLSUM: &str = "name: tiny-xlsum
backbone: mt5
tasks: [xlsum:english, xlsum:hindi]
data_sizes: [all]
seeds: [1]
training:
  epochs: 2
  batch_size: 8
  max_len: 16
generation:
  max_target_len: 6
  max_new_tokens: 6
methods:
  - method: full
    lr: 1.0e-3
  - method: lora
    label: lora-per-language
    lr: 1.0e-2
  - method: lora
    label: lora-shared
    lr: 1.0e-2
    shared: true
";

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn xlsum_strategies_train_per_language_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_mt5(&d.join("mt5"));
    tiny_xlsum(&d.join("xlsum"));
    std::fs::write(d.join("x.yaml"), XLSUM).unwrap();
    let (ok, out) = pelt(&["sweep", "x.yaml", "--xlsum-dir", "xlsum", "--results", "out"], d);
    assert!(ok, "{out}");
    let all = records(&d.join("out/tiny-xlsum/records.jsonl"));
    assert_eq!(all.len(), 6, "3 strategies × 2 languages");
    for r in &all {
        assert_eq!(r["status"], "ok", "{r}");
        for m in ["rouge1", "rouge2", "rougeL"] {
            let v = r["metrics"][m].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{m} = {v}");
        }
        assert_eq!((r["train_examples"].as_u64(), r["test_examples"].as_u64()), (Some(24), Some(8)));
    }
    let of = |method: &str, task: &str| {
        all.iter().find(|r| r["method"] == method && r["task"] == task).unwrap_or_else(|| panic!("{method} {task}"))
    };
    // Per language: each run trains on its own 24 articles (3 steps an epoch); shared: one run over
    // both languages (6 steps an epoch), recorded for each with the same checkpoint.
    assert_eq!(of("lora-per-language", "xlsum:hindi")["steps"], 6);
    let (se, sh) = (of("lora-shared", "xlsum:english"), of("lora-shared", "xlsum:hindi"));
    assert_eq!((se["steps"].as_u64(), sh["steps"].as_u64()), (Some(12), Some(12)));
    assert_eq!(se["best_dev_score"], sh["best_dev_score"]);
    assert_eq!(se["diagnostics"]["shared_tasks"], 2.0);
    // The mT5's untied head and gated FFN are all trained by full fine-tuning; LoRA's count is r·(d_in +
    // d_out) on q and v of 4 self-attentions.
    assert_eq!(of("lora-shared", "xlsum:hindi")["method_params"], 4 * 2 * 8 * (32 + 32));
    assert_eq!(of("full", "xlsum:english")["method_params"], of("full", "xlsum:english")["backbone_params"]);
    // Generated summaries are kept beside the records, Hindi in its own script.
    let samples = std::fs::read_dir(d.join("out/tiny-xlsum/samples")).unwrap().count();
    assert_eq!(samples, 6);
    // Each sample: what the encoder read, what it generated, the reference.
    let file = std::fs::read_dir(d.join("out/tiny-xlsum/samples")).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(&file).unwrap();
    let rows_ok = text.lines().skip(1).all(|l| l.split('\t').count() == 3 && !l.starts_with('\t'));
    assert!(text.starts_with("input\tgenerated\treference\n") && rows_ok, "{text}");
    let (ok, out) = pelt(&["sweep", "x.yaml", "--xlsum-dir", "xlsum", "--results", "out"], d);
    assert!(ok && out.contains("6 in this shard already done, 0 to run"), "{out}");
    let (ok, out) = pelt(&["table", "out/tiny-xlsum"], d);
    assert!(ok && out.contains("lora-shared") && out.contains("xlsum:hindi all"), "{out}");
}

#[test]
fn malformed_summarization_files_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_mt5(&d.join("mt5"));
    tiny_xlsum(&d.join("xlsum"));
    let xl = |from: &str, to: &str| XLSUM.replace(from, to);
    let cases = [
        (xl("[xlsum:english, xlsum:hindi]", "[xlsum:english, sst2]"), "`sst2` is not a summarization task", "tasks"),
        (xl("[all]", "[4-shot]"), "k-shot needs classes", "data_sizes"),
        (xl("  max_new_tokens: 6", "  max_new_tokens: 0"), "generation.max_new_tokens", "x.yaml:12"),
        (xl("[xlsum:english, xlsum:hindi]", "[xlsum:english, xlsum:welsh]"), "xlsum:welsh", "xlsum_dir"),
        (xl("seeds: [1]", "seeds: [1]\nwarm_start: true"), "already an encoder-decoder", "warm_start"),
        (xl("  - method: full", "  - method: bitfit"), "has none", "methods[0]"),
        (
            xl("[xlsum:english, xlsum:hindi]", "[xlsum:english]"),
            "sharing needs at least two tasks",
            "methods[2] field `shared`",
        ),
    ];
    for (text, what, field) in cases {
        std::fs::write(d.join("x.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "x.yaml", "--xlsum-dir", "xlsum", "--results", "out"], d);
        assert!(!ok, "accepted:\n{text}");
        assert!(out.contains("x.yaml") && out.contains(what) && out.contains(field), "for `{what}` got: {out}");
        assert!(!d.join("out/tiny-xlsum/records").exists(), "a refused file must not start a sweep");
    }
    // A BERT encoder needs `warm_start` to summarize, and classification files refuse the setting.
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/minilm");
    let bbc = format!(
        "name: b\nbackbone: {}\ntasks: [bbc_headlines]\ndata_sizes: [all]\nseeds: [1]\nmethods:\n  - method: lora\n    lr: 1.0e-3\n",
        minilm.display()
    );
    std::fs::write(d.join("x.yaml"), &bbc).unwrap();
    let (ok, out) = pelt(&["sweep", "x.yaml", "--results", "out"], d);
    assert!(!ok && out.contains("warm_start: true"), "{out}");
    let cls = bbc.replace("[bbc_headlines]", "[bbc_news]").replace("seeds: [1]", "seeds: [1]\nwarm_start: true");
    std::fs::write(d.join("x.yaml"), cls).unwrap();
    let (ok, out) = pelt(&["sweep", "x.yaml", "--results", "out"], d);
    assert!(!ok && out.contains("field `warm_start`: only for summarization tasks"), "{out}");
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn shipped_experiment_files_validate() {
    // Every file must parse and validate; the only acceptable refusals are a backbone that a recipe or
    // the user provides (the pretrained ViT, a user's mT5; the grounding sets' frame ViT) and GLUE tasks
    // the four-task sample lacks.
    let glue = root().join("../shared/data/glue");
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut args = vec!["sweep".to_owned(), path.display().to_string(), "--dry-run".to_owned()];
        if glue.is_dir() {
            args.extend(["--glue-dir".to_owned(), glue.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = pelt(&args, &root());
        let user_backbone =
            (out.contains("field `backbone`") || out.contains("field `tvg`: vision:")) && out.contains("config.json");
        // glue.yaml names all nine GLUE tasks, for a user's full glue_data; the sample has four.
        let glue_missing = out.contains("field `glue_dir`") && out.contains("no train.tsv");
        assert!(ok || user_backbone || glue_missing, "{}: {out}", path.display());
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} experiment files");
}
