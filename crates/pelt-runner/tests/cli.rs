//! The `pelt` binary end to end: malformed experiment files are refused before any training with file,
//! line and field; a real (tiny) sweep writes one record per run, its table, and a rerun skips them.

mod common;
use common::pelt;
use pelt_backbone::{Bert, BertConfig};
use pelt_core::Backbone;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

fn assets() -> PathBuf {
    std::env::var_os("PELT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"))
}

/// A tiny random BERT with MiniLM's vocabulary, written as an HF folder with the real tokenizer.
fn tiny_model(dir: &Path) {
    write_tiny_model(dir, false);
}

/// As [`tiny_model`]; `poisoned` puts a NaN into one FFN weight, so every run's loss is NaN.
fn write_tiny_model(dir: &Path, poisoned: bool) {
    let config = BertConfig { vocab_size: 30522, ..BertConfig::tiny() };
    let model = Bert::random(&config, 1, Device::Cpu);
    if poisoned {
        let w = &model.var_store().variables()["encoder.layer.1.output.dense.weight"];
        tch::no_grad(|| {
            let _ = w.get(0).get(0).fill_(f64::NAN);
        });
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(model.config()).unwrap()).unwrap();
    let tensors: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    let tokenizer = assets().join("minilm/tokenizer.json");
    assert!(tokenizer.is_file(), "{} is missing: run scripts/setup.sh", tokenizer.display());
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
}

fn tiny_glue(dir: &Path) {
    let sst = dir.join("SST-2");
    std::fs::create_dir_all(&sst).unwrap();
    let words = ["good", "great", "fine", "bad", "awful", "poor"];
    let rows = |n: usize| {
        (0..n).map(|i| format!("a {} movie number {i}\t{}\n", words[i % 6], usize::from(i % 6 < 3))).collect::<String>()
    };
    std::fs::write(sst.join("train.tsv"), format!("sentence\tlabel\n{}", rows(60))).unwrap();
    std::fs::write(sst.join("dev.tsv"), format!("sentence\tlabel\n{}", rows(24))).unwrap();
}

const GOOD: &str = "name: tiny
backbone: model
tasks: [sst2]
glue_dir: glue
data_sizes: [24]
seeds: [1]
training:
  epochs: 2
  batch_size: 8
  max_len: 16
methods:
  - method: lora
    lr: 1.0e-3
    config:
      r: 2
  - method: head_only
    lr: 1.0e-2
";

/// A temporary folder holding the tiny model (`model/`) and the tiny SST-2 (`glue/`).
fn tiny_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(&dir.path().join("model"));
    tiny_glue(&dir.path().join("glue"));
    dir
}

/// A temporary folder with the tiny model, the tiny SST-2 and `GOOD` swept once into `out/tiny`.
fn swept_tiny() -> tempfile::TempDir {
    let dir = tiny_workspace();
    let d = dir.path();
    std::fs::write(d.join("e.yaml"), GOOD).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    dir
}

/// The records of `out/<suite>`, from its records.jsonl.
fn records(d: &Path, suite: &str) -> Vec<serde_json::Value> {
    let jsonl = std::fs::read_to_string(d.join("out").join(suite).join("records.jsonl")).unwrap();
    jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn malformed_experiments_are_refused_before_training() {
    let dir = tiny_workspace();
    let d = dir.path();
    let cases = [
        (GOOD.replace("seeds: [1]", "seeds: [1]\nsneed: 3"), "unknown field `sneed`", "line 7"),
        (GOOD.replace("batch_size: 8", "batch_sise: 8"), "unknown field `batch_sise`", "line 9"),
        (GOOD.replace("      r: 2", "      r: 0"), "field `r`", "e.yaml:15"),
        (GOOD.replace("    lr: 1.0e-2", "    lr: 5"), "field `lr`", "e.yaml:17"),
        (GOOD.replace("method: head_only", "method: prefix_tunin"), "unknown method `prefix_tunin`", "e.yaml:16"),
        (GOOD.replace("tasks: [sst2]", "tasks: [sst2, mnli]"), "no train.tsv for `mnli`", "e.yaml:4"),
        (GOOD.replace("data_sizes: [24]", "data_sizes: [0]"), "data size", "line 5"),
        (GOOD.replace("  epochs: 2", "  epochs: 0"), "training.epochs", "e.yaml:8"),
    ];
    for (text, what, line) in cases {
        std::fs::write(d.join("e.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
        assert!(!ok, "accepted:\n{text}");
        assert!(out.contains("e.yaml") && out.contains(what) && out.contains(line), "for `{what}` got: {out}");
        assert!(!d.join("out/tiny/records").exists(), "a refused file must not start a sweep");
    }
}

#[test]
fn a_sweep_records_every_run_and_a_rerun_skips_them() {
    let dir = swept_tiny();
    let d = dir.path();
    let records = records(d, "tiny");
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["train_examples"], 24);
        assert_eq!(r["test_examples"], 24);
        assert!(r["metrics"]["accuracy"].as_f64().is_some());
        assert!(r["libtorch_version"].as_str().unwrap().starts_with("2.13.0"), "{r}");
        // The dev curve: one point per epoch (2 epochs of 3 batches), each with the mean training loss
        // of its epoch, and the selected checkpoint is the curve's first best point.
        let curve = r["curve"].as_array().unwrap_or_else(|| panic!("no curve: {r}"));
        let steps: Vec<u64> = curve.iter().map(|p| p["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [3, 6], "{r}");
        assert!(curve.iter().all(|p| p["train_loss"].as_f64().is_some_and(|l| l.is_finite() && l > 0.0)), "{r}");
        let devs: Vec<f64> = curve.iter().map(|p| p["dev"].as_f64().unwrap()).collect();
        let best = devs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(r["best_dev_score"].as_f64(), Some(best), "{r}");
        assert_eq!(r["best_step"].as_u64(), Some(steps[devs.iter().position(|&d| d == best).unwrap()]), "{r}");
    }
    for r in &records {
        // Every new record says which numerics made it, and how fast it evaluated.
        assert_eq!(r["numerics"], pelt_records::NUMERICS, "{r}");
        assert!(r["eval_examples_per_second"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    }
    let lora = records.iter().find(|r| r["method"] == "lora").unwrap();
    assert_eq!(lora["method_params"], 2 * 2 * 2 * (16 + 16), "r 2 on query and value of 2 layers, d 16");
    assert_eq!(lora["method_config"]["alpha"], 16.0, "defaults are resolved into the record");
    let table = std::fs::read_to_string(d.join("out/tiny/table.md")).unwrap();
    assert!(table.contains("| lora | 256 |") && table.contains("sst2 24"), "{table}");

    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    assert!(out.contains("2 in this shard already done, 0 to run"), "{out}");
    let (ok, out) = pelt(&["table", "out/tiny", "--format", "csv"], d);
    assert!(ok && out.starts_with("method,params,percent,sst2 24 mean"), "{out}");
}

#[test]
fn the_same_seed_gives_the_same_results_on_one_machine_and_thread_count() {
    let dir = swept_tiny();
    let d = dir.path();
    let again = d.join("again");
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", again.to_str().unwrap()], d);
    assert!(ok, "{out}");
    let first = records(d, "tiny");
    let jsonl = std::fs::read_to_string(again.join("tiny/records.jsonl")).unwrap();
    let second: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(first.len(), second.len());
    for a in &first {
        let b = second.iter().find(|b| b["key"] == a["key"]).unwrap_or_else(|| panic!("{} missing", a["key"]));
        // Bit for bit: every dev score and training loss of the curve, the test metrics, the selection.
        for field in ["metrics", "curve", "best_dev_score", "best_step", "score", "steps"] {
            assert_eq!(a[field], b[field], "{}: {field} differs between two runs of the same seed", a["key"]);
        }
    }
}

#[test]
fn shards_run_side_by_side_into_one_suite() {
    let dir = tiny_workspace();
    let d = dir.path();
    std::fs::write(d.join("e.yaml"), GOOD.replace("seeds: [1]", "seeds: [1, 2]")).unwrap();
    // Two processes at once, one core each, as `--shard` is meant to run.
    let shard = |i: usize| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pelt"))
            .args(["sweep", "e.yaml", "--results", "out", "--threads", "1", "--shard", &format!("{i}/2")])
            .current_dir(d)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| shard(0));
        let b = s.spawn(|| shard(1));
        (a.join().unwrap(), b.join().unwrap())
    });
    for out in [&a, &b] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Each run wrote only its own record; the table (here, or a Slurm array's table job) lists them all.
    assert_eq!(std::fs::read_dir(d.join("out/tiny/records")).unwrap().count(), 4);
    assert!(!d.join("out/tiny/.records.lock").exists(), "no lock file: writers share nothing but the folder");
    let (ok, out) = pelt(&["table", "out/tiny"], d);
    assert!(ok, "{out}");
    let jsonl = std::fs::read_to_string(d.join("out/tiny/records.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 4, "records.jsonl holds both shards' runs: {jsonl}");
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok && out.contains("4 in this shard already done, 0 to run"), "{out}");
}

#[test]
fn shards_deal_out_the_runs_the_filters_admit() {
    let dir = tiny_workspace();
    let d = dir.path();
    std::fs::write(d.join("e.yaml"), GOOD.replace("seeds: [1]", "seeds: [1, 2]")).unwrap();
    // LoRA is every second cell of the grid (head_only, lora per seed): dealing the whole grid would give
    // shard 1 both LoRA runs and shard 0 none.
    for (i, seed) in [(0, 1), (1, 2)] {
        let shard = format!("{i}/2");
        let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out", "--methods", "lora", "--shard", &shard], d);
        assert!(ok && out.contains("0 in this shard already done, 1 to run"), "shard {shard}: {out}");
        let mine: Vec<_> = records(d, "tiny").into_iter().filter(|r| r["seed"] == seed).collect();
        assert_eq!(mine.len(), 1, "shard {shard} trains LoRA at seed {seed}");
        assert_eq!(mine[0]["method"], "lora");
    }
}

#[test]
fn reuse_takes_over_the_same_runs_from_another_suite_and_trains_the_rest() {
    let dir = swept_tiny();
    let d = dir.path();
    // The same LoRA run under another label, head_only with another learning rate (another run), and
    // a new method.
    let other = GOOD
        .replace("name: tiny", "name: other")
        .replace("  - method: lora\n", "  - method: lora\n    label: low-rank\n")
        .replace("    lr: 1.0e-2", "    lr: 2.0e-2")
        + "  - method: bitfit\n    lr: 1.0e-3\n";
    std::fs::write(d.join("o.yaml"), &other).unwrap();
    let (ok, out) = pelt(&["sweep", "o.yaml", "--results", "out", "--reuse", "out/tiny"], d);
    assert!(ok, "{out}");
    assert!(out.contains("1 in this shard already done (1 of them taken from --reuse suites), 2 to run"), "{out}");
    let (tiny, other) = (records(d, "tiny"), records(d, "other"));
    assert_eq!(other.len(), 3);
    let original = tiny.iter().find(|r| r["method"] == "lora").unwrap();
    let reused = other.iter().find(|r| r["method"] == "low-rank").unwrap();
    assert_eq!(reused["reused_from"], "tiny");
    assert_eq!(reused["suite"], "other");
    assert_eq!(reused["metrics"], original["metrics"]);
    assert_eq!(reused["config_hash"], original["config_hash"]);
    assert!(reused["key"].as_str().unwrap().contains("low-rank"));
    for r in other.iter().filter(|r| r["method"] != "low-rank") {
        assert!(r.get("reused_from").is_none(), "{r}");
    }
    // The same data in another folder is the same run; other data never is.
    for (folder, extra, reused) in [("glue2", "", 2), ("glue3", "a fine movie number 60\t1\n", 0)] {
        std::fs::create_dir_all(d.join(folder).join("SST-2")).unwrap();
        for f in ["train.tsv", "dev.tsv"] {
            let text = std::fs::read_to_string(d.join("glue/SST-2").join(f)).unwrap();
            let text = if f == "train.tsv" { text + extra } else { text };
            std::fs::write(d.join(folder).join("SST-2").join(f), text).unwrap();
        }
        let suite = format!("in-{folder}");
        let yaml = GOOD
            .replace("name: tiny", &format!("name: {suite}"))
            .replace("glue_dir: glue", &format!("glue_dir: {folder}"));
        std::fs::write(d.join("t.yaml"), yaml).unwrap();
        let (ok, out) = pelt(&["sweep", "t.yaml", "--results", "out", "--reuse", "out/tiny"], d);
        assert!(ok, "{out}");
        let taken = if reused > 0 { format!(" ({reused} of them taken from --reuse suites)") } else { String::new() };
        assert!(out.contains(&format!("{reused} in this shard already done{taken}")), "{folder}: {out}");
        assert_eq!(records(d, &suite).iter().filter(|r| r.get("reused_from").is_some()).count(), reused);
    }
    let (ok, out) = pelt(&["sweep", "t.yaml", "--results", "out", "--reuse", "out/nowhere"], d);
    assert!(!ok && out.contains("--reuse out/nowhere: not a suite folder"), "{out}");
}

#[test]
fn diverged_runs_are_recorded_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiny_model(&d.join("model"), true);
    tiny_glue(&d.join("glue"));
    std::fs::write(d.join("e.yaml"), GOOD).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "a diverged run must not fail the sweep: {out}");
    let jsonl = std::fs::read_to_string(d.join("out/tiny/records.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Both runs happened: the first one's divergence did not stop the second.
    assert_eq!(records.len(), 2, "{jsonl}");
    for r in &records {
        assert_eq!(r["status"], "diverged", "{r}");
        assert!(r["message"].as_str().unwrap().contains("NaN"), "{r}");
        assert!(r["score"].is_null(), "a diverged run has no score: {r}");
        assert!(r["curve"].is_null(), "the loss was NaN from the first step, before any evaluation: {r}");
    }
    // A rerun treats diverged runs as finished.
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok && out.contains("2 in this shard already done, 0 to run"), "{out}");
}

#[test]
fn readme_method_table_is_what_list_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (ok, out) = pelt(&["list", "--markdown"], &root);
    assert!(ok, "{out}");
    for m in ["full", "head_only", "bitfit", "ln_tuning", "raft", "houlsby", "pfeiffer", "lora", "compacter"] {
        assert!(out.contains(&format!("| `{m}` |")), "{m} missing from\n{out}");
    }
    // The README's table is generated, never edited: it must be exactly the listing.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("Generated by `pelt list --markdown`:").expect("README marks the generated table");
    let table: String = readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(table, out, "README's method table is stale: paste `pelt list --markdown` into it");
}

/// A tiny CoLA (no header; source, label, original label, sentence) beside [`tiny_glue`]'s SST-2.
fn tiny_cola(dir: &Path) {
    let cola = dir.join("CoLA");
    std::fs::create_dir_all(&cola).unwrap();
    let words = ["the cat sat", "cat the sat", "we left early", "left we early"];
    let rows = |n: usize| {
        (0..n).map(|i| format!("src\t{}\t\t{} {i}\n", usize::from(i % 2 == 0), words[i % 4])).collect::<String>()
    };
    std::fs::write(cola.join("train.tsv"), rows(40)).unwrap();
    std::fs::write(cola.join("dev.tsv"), rows(12)).unwrap();
}

const TRANSFER: &str = "name: tr
backbone: model
tasks: [sst2]
glue_dir: glue
data_sizes: [24, 36]
seeds: [1]
training:
  epochs: 2
  batch_size: 8
  max_len: 16
transfer:
  sources: [cola]
  steps: 6
methods:
  - method: polytropon
    lr: 1.0e-3
    config: {r: 2, skills: 2}
  - method: attempt
    lr: 1.0e-2
    config: {length: 2, attention_dim: 4}
  - method: lora
    label: lora-target-only
    lr: 1.0e-3
    transfer: false
    config: {r: 2}
";

fn scores(d: &Path) -> std::collections::BTreeMap<String, (f64, serde_json::Value)> {
    let jsonl = std::fs::read_to_string(d.join("out/tr/records.jsonl")).unwrap();
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| (r["key"].as_str().unwrap().to_owned(), (r["score"].as_f64().unwrap(), r)))
        .collect()
}

#[test]
fn transfer_trains_sources_once_per_method_and_reuses_them_exactly() {
    let dir = tiny_workspace();
    let d = dir.path();
    tiny_cola(&d.join("glue"));
    std::fs::write(d.join("e.yaml"), TRANSFER).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    let first = scores(d);
    assert_eq!(first.len(), 6, "3 methods × 2 sizes");
    for (key, (_, r)) in &first {
        assert_eq!(r["status"], "ok", "{r}");
        let target_only = r["method"] == "lora-target-only";
        assert_eq!(r["diagnostics"]["source_steps"].as_f64(), (!target_only).then_some(6.0), "{key}");
        if r["method"] == "attempt" {
            // One source and the target share the attention.
            let (a, t) = (r["diagnostics"]["attn_cola"].as_f64(), r["diagnostics"]["attn_target"].as_f64());
            assert!((a.unwrap() + t.unwrap() - 1.0).abs() < 1e-4, "{r}");
            assert_eq!(r["method_params"], 2 * 16 + 2 * 16 * 4 + 2 * 16, "target prompt + attention");
        }
        if r["method"] == "polytropon" {
            // Inventory 2·2·32 per projection + the target's routing row of 2; sources' rows are frozen.
            assert_eq!(r["method_params"], 2 * 2 * (2 * 2 * 32 + 2), "{r}");
        }
    }
    // Source training ran once per transfer method (not per size), and not for the target-only row.
    let cached: Vec<String> = std::fs::read_dir(d.join("out/tr/sources"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert_eq!(out.matches("source stage trained").count(), 2, "{out}");
    let diag = std::fs::read_to_string(d.join("out/tr/diagnostics.md")).unwrap();
    assert!(diag.contains("| attempt | sst2 | 24 | attn_cola |") && diag.contains("source_loss_cola"), "{diag}");
    assert_eq!(out.matches("source stage loaded").count(), 2, "the second size reuses it: {out}");

    // Rerun the target stage from the kept source checkpoints: the same results, bit for bit.
    std::fs::remove_dir_all(d.join("out/tr/records")).unwrap();
    std::fs::remove_file(d.join("out/tr/records.jsonl")).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    assert_eq!(out.matches("source stage loaded").count(), 4, "{out}");
    let again = scores(d);
    for (key, (score, _)) in &first {
        assert_eq!(again[key].0, *score, "{key}: a loaded source stage must give the same target result");
    }
}

#[test]
fn malformed_transfer_sections_are_refused() {
    let dir = tiny_workspace();
    let d = dir.path();
    tiny_cola(&d.join("glue"));
    let cases = [
        (TRANSFER.replace("sources: [cola]", "sources: [sst2]"), "must be held out", "e.yaml:12"),
        (TRANSFER.replace("steps: 6", "steps: 0"), "transfer.steps", "e.yaml:13"),
        (TRANSFER.replace("sources: [cola]", "sources: [qnli]"), "no train.tsv for `qnli`", "e.yaml"),
        (GOOD.replace("    lr: 1.0e-2", "    lr: 1.0e-2\n    transfer: false"), "`transfer` section", "e.yaml:18"),
    ];
    for (text, what, line) in cases {
        std::fs::write(d.join("e.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
        assert!(!ok, "accepted:\n{text}");
        assert!(out.contains(what) && out.contains(line), "for `{what}` got: {out}");
    }
}

/// A tiny random ViT (8 × 8 RGB in 4 × 4 patches) written as an HF folder.
fn tiny_vit(dir: &Path) {
    let config = pelt_backbone::VitConfig { num_channels: 3, ..pelt_backbone::VitConfig::tiny() };
    let model = pelt_backbone::Vit::random(&config, 1, Device::Cpu);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    let tensors: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
}

/// Two classes of flat-coloured 12 × 10 PNGs, 10 images each.
fn tiny_images(dir: &Path) {
    for (class, colour) in [("red", [220u8, 30, 30]), ("blue", [30, 30, 220])] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..10u8 {
            let px = image::Rgb([colour[0], colour[1] + i, colour[2]]);
            image::RgbImage::from_pixel(12, 10, px).save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
}

const IMAGES: &str = "name: img
backbone: vit
tasks: [colours]
image_dirs:
  colours: pictures
data_sizes: [2-shot]
seeds: [1]
training:
  epochs: 3
  batch_size: 4
methods:
  - method: vpt_deep
    lr: 1.0e-2
    config: {length: 2}
  - method: lora
    lr: 1.0e-3
    config: {r: 2}
";

#[test]
fn image_folders_train_on_a_vit_and_modality_mismatches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_vit(&d.join("vit"));
    tiny_model(&d.join("model"));
    tiny_images(&d.join("pictures"));
    std::fs::write(d.join("e.yaml"), IMAGES).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    let jsonl = std::fs::read_to_string(d.join("out/img/records.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        // 2 per class for train and again for dev; the held-out quarter (3 per class, rounded) as test.
        assert_eq!((r["train_examples"].as_i64(), r["dev_examples"].as_i64()), (Some(4), Some(4)), "{r}");
        assert_eq!(r["test_examples"], 6, "{r}");
    }
    let cases = [
        (IMAGES.replace("backbone: vit", "backbone: model"), "is an image task"),
        (IMAGES.replace("colours: pictures", "colours: nowhere"), "no such folder"),
        (GOOD.replace("backbone: model", "backbone: vit"), "is a text task"),
    ];
    for (text, what) in cases {
        std::fs::write(d.join("e.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out2"], d);
        assert!(!ok && out.contains(what) && out.contains("e.yaml"), "for `{what}` got: {out}");
    }
}

#[test]
fn the_default_backbone_lives_under_the_assets_folder() {
    // No `backbone:` in the file: the model is `minilm/` under --assets, wherever that is.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(&d.join("elsewhere/minilm"));
    tiny_glue(&d.join("glue"));
    std::fs::write(d.join("e.yaml"), GOOD.replace("backbone: model\n", "")).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out", "--assets", "elsewhere"], d);
    assert!(ok, "{out}");
    let saved = std::fs::read_to_string(d.join("out/tiny/experiment.yaml")).unwrap();
    assert!(saved.contains("elsewhere/minilm"), "{saved}");
    // The same through PELT_ASSETS; without either, `assets/minilm` of the current folder, absent here.
    let run = |env: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pelt"));
        c.args(["sweep", "e.yaml", "--results", "out2"]).current_dir(d).env_remove("PELT_ASSETS");
        if let Some(v) = env {
            c.env("PELT_ASSETS", v);
        }
        let o = c.output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = run(Some("elsewhere"));
    assert!(ok, "{err}");
    let (ok, err) = run(None);
    assert!(!ok && err.contains("assets/minilm"), "{err}");
}

#[test]
fn flipped_weight_bytes_are_refused_with_both_digests_and_every_record_names_its_weights() {
    let dir = tiny_workspace();
    let d = dir.path();
    let weights = d.join("model/model.safetensors");
    let sha = |bytes: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut bytes = std::fs::read(&weights).unwrap();
    let pinned = sha(&bytes);
    // The set-up pins the weights it installed; the sweep checks them and records the digest.
    std::fs::write(d.join("model/.pelt-weights.sha256"), format!("{pinned}\n")).unwrap();
    std::fs::write(d.join("e.yaml"), GOOD).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    assert!(records(d, "tiny").iter().all(|r| r["weights_digest"] == pinned.as_str()));
    // A byte flipped inside a tensor (the header stays readable): refused, nothing trained.
    let at = bytes.len() - 7;
    bytes[at] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let flipped = sha(&bytes);
    std::fs::write(d.join("e2.yaml"), GOOD.replace("name: tiny", "name: other")).unwrap();
    let (ok, out) = pelt(&["sweep", "e2.yaml", "--results", "out"], d);
    assert!(!ok, "{out}");
    assert!(out.contains(&pinned) && out.contains(&flipped) && out.contains("Rerun the set-up"), "{out}");
    assert!(!d.join("out/other/records.jsonl").exists(), "{out}");
    // A user's own folder has no pin: it trains, but never into a suite made from other weights.
    std::fs::remove_file(d.join("model/.pelt-weights.sha256")).unwrap();
    std::fs::write(d.join("e3.yaml"), GOOD.replace("seeds: [1]", "seeds: [1, 2]")).unwrap();
    let (ok, out) = pelt(&["sweep", "e3.yaml", "--results", "out"], d);
    assert!(!ok && out.contains("never mixes") && out.contains(&pinned) && out.contains(&flipped), "{out}");
    let (ok, out) = pelt(&["sweep", "e2.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    assert!(records(d, "other").iter().all(|r| r["weights_digest"] == flipped.as_str()));
    // --reuse takes no run of other weights: every run of `third` is trained here.
    std::fs::write(d.join("e4.yaml"), GOOD.replace("name: tiny", "name: third")).unwrap();
    let (ok, out) = pelt(&["sweep", "e4.yaml", "--results", "out", "--reuse", "out/tiny"], d);
    assert!(ok && out.contains("0 in this shard already done"), "{out}");
}

#[test]
fn a_corrupt_record_is_named_left_out_and_counted() {
    let dir = swept_tiny();
    let d = dir.path();
    std::fs::write(d.join("out/tiny/records/broken.json"), "{\"key\": \"cut sh").unwrap();
    let (ok, out) = pelt(&["table", "out/tiny"], d);
    assert!(ok, "{out}");
    assert!(out.contains("| lora |") && out.contains("| head_only |"), "the other runs still make the table: {out}");
    assert!(out.contains("broken.json: left out: not a pelt record"), "{out}");
    assert!(out.contains("1 record file left out of the reports; the table covers the other 2"), "{out}");
    let (ok, out) = pelt(&["table", "out/tiny", "--strict"], d);
    assert!(!ok && out.contains("--strict"), "{out}");
    // The suite's page is generated beside the table; its hand-written reading survives.
    let page = d.join("out/tiny/README.md");
    let text = std::fs::read_to_string(&page).unwrap();
    std::fs::write(&page, text.replace("No reading written yet.", "LoRA and the probe tie here.")).unwrap();
    let (ok, out) = pelt(&["table", "out/tiny"], d);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(text.contains("| lora |") && text.contains("LoRA and the probe tie here."), "{text}");
}

/// 40 labelled sentences for the file-task tests: (text, label).
fn file_rows() -> Vec<(String, &'static str)> {
    let words = ["good", "bad", "film", "plot", "great", "awful", "fine", "dull"];
    (0..40)
        .map(|i| {
            (
                format!("{} {} {}", words[i % 8], words[(i * 3) % 8], words[(i * 5 + 1) % 8]),
                if i % 2 == 0 { "pos" } else { "neg" },
            )
        })
        .collect()
}

#[test]
fn file_tasks_in_every_format_run_through_a_two_step_sweep_and_bad_files_are_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(&d.join("model"));
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rows = file_rows();
    // The CSV file, each text followed by `suffix` (to edit the data later).
    let csv = |suffix: &str| -> String {
        std::iter::once("text,label\n".to_owned())
            .chain(rows.iter().map(|(t, l)| format!("{t}{suffix},{l}\n")))
            .collect()
    };
    std::fs::write(data.join("t.csv"), csv("")).unwrap();
    let tsv: String = rows.iter().map(|(t, l)| format!("{l}\t{t}\n")).collect();
    std::fs::write(data.join("t.tsv"), tsv).unwrap();
    let jsonl: String =
        rows.iter().map(|(t, l)| format!("{}\n", serde_json::json!({"review": t, "label": l}))).collect();
    std::fs::write(data.join("t.jsonl"), jsonl).unwrap();
    use polars::prelude::*;
    let mut frame = df!(
        "text" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        "label" => rows.iter().map(|r| r.1).collect::<Vec<_>>()
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(data.join("t.parquet")).unwrap()).finish(&mut frame).unwrap();
    let experiment = "name: mine
backbone: model
tasks: [from_csv, from_tsv, from_jsonl, from_parquet]
file_tasks:
  from_csv: {train: data/t.csv, holdout: {test: 0.25}, text: text, label: label}
  from_tsv: {train: data/t.tsv, holdout: {test: 0.25}, header: false, text: 1, label: 0}
  from_jsonl: {train: data/t.jsonl, holdout: {test: 0.25}, text: review, label: label, metrics: [accuracy, macro_f1]}
  from_parquet: {train: data/t.parquet, holdout: {test: 0.25}, text: text, label: label}
data_sizes: [8]
seeds: [1]
training:
  epochs: 1
  min_steps: 2
  max_steps: 2
  batch_size: 4
  max_len: 16
methods:
  - method: lora
    lr: 1.0e-3
";
    std::fs::write(d.join("e.yaml"), experiment).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    let records = records(d, "mine");
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(
            (r["steps"].as_u64(), r["train_examples"].as_u64(), r["test_examples"].as_u64()),
            (Some(2), Some(8), Some(10)),
            "{r}"
        );
    }
    let jsonl = records.iter().find(|r| r["task"] == "from_jsonl").unwrap();
    assert!(jsonl["metrics"]["macro_f1"].as_f64().is_some(), "{jsonl}");
    // The four formats hold the same examples: the same data digest.
    let digests: std::collections::HashSet<&str> =
        records.iter().filter(|r| r["task"] != "from_jsonl").map(|r| r["data_digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 1, "{records:?}");

    // The data edited after the sweep, and a new seed to run: the suite would mix data, so the
    // sweep refuses, naming the record and both digests.
    std::fs::write(data.join("t.csv"), csv(" again")).unwrap();
    std::fs::write(d.join("more.yaml"), experiment.replace("seeds: [1]", "seeds: [1, 2]")).unwrap();
    let (ok, out) = pelt(&["sweep", "more.yaml", "--results", "out", "--tasks", "from_csv"], d);
    assert!(!ok && out.contains("a suite never mixes runs of different data") && out.contains("from_csv"), "{out}");
    std::fs::write(data.join("t.csv"), csv("")).unwrap();

    // A test file with a label the training file never had: refused before training, with file,
    // line and column.
    std::fs::write(data.join("test.csv"), "text,label\ngood film,pos\nbad plot,meh\n").unwrap();
    let bad = experiment
        .replace(
            "from_csv: {train: data/t.csv, holdout: {test: 0.25},",
            "from_csv: {train: data/t.csv, test: data/test.csv,",
        )
        .replace("name: mine", "name: refused");
    std::fs::write(d.join("bad.yaml"), bad).unwrap();
    let (ok, out) = pelt(&["sweep", "bad.yaml", "--results", "out"], d);
    assert!(!ok, "{out}");
    assert!(
        out.contains("bad.yaml")
            && out.contains("file_tasks")
            && out.contains("test.csv: line 3, column `label`: label `meh`"),
        "{out}"
    );
    assert!(!d.join("out/refused/records").exists(), "nothing may train");
}

/// `--save-adapters` keeps each run's best-dev adapter beside its record; `pelt export` writes a peft
/// folder from it (by path or by run key), `pelt import` reads that back and shows pelt's logits from
/// the imported adapter equal the run's own on its check batch; what peft cannot hold is refused.
#[test]
fn saved_adapters_export_to_peft_and_import_back_with_the_same_logits() {
    let dir = tiny_workspace();
    let d = dir.path();
    let text = GOOD.replace(
        "  - method: head_only\n    lr: 1.0e-2\n",
        "  - method: prompt_tuning\n    lr: 1.0e-2\n    config: {length: 2, placement: input_embeddings}\n  - method: houlsby\n    lr: 1.0e-3\n    config: {bottleneck: 4}\n",
    );
    std::fs::write(d.join("e.yaml"), text).unwrap();
    let (ok, out) = pelt(&["sweep", "e.yaml", "--results", "out", "--save-adapters"], d);
    assert!(ok, "{out}");
    let adapters: Vec<PathBuf> =
        std::fs::read_dir(d.join("out/tiny/adapters")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(adapters.len(), 3, "one adapter per run: {adapters:?}");
    for a in &adapters {
        let key = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(d.join("out/tiny/records").join(format!("{key}.json")).is_file(), "{key}: an adapter without a record");
    }
    for method in ["lora", "prompt_tuning"] {
        let adapter = adapters.iter().find(|a| a.to_string_lossy().contains(&format!("__{method}__"))).unwrap();
        let key = adapter.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, out) = pelt(&["export", &key, "--results", "out", "--format", "peft", "--out", "peft"], d);
        assert!(ok, "{out}");
        assert!(d.join("peft/adapter_model.safetensors").is_file() && d.join("peft/pelt_check.safetensors").is_file());
        let (ok, out) = pelt(&["import", "peft", "--backbone", "model", "--out", "back"], d);
        assert!(ok, "{out}");
        let diff: f64 = out
            .split("differ from the exported ones by at most ")
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("{method}: no check line in {out}"));
        assert!(diff < 1e-5, "{method}: {out}");
        std::fs::remove_dir_all(d.join("peft")).unwrap();
    }
    // Houlsby trained its LayerNorms: neither peft nor an AdapterHub folder can hold it.
    let houlsby = adapters.iter().find(|a| a.to_string_lossy().contains("__houlsby__")).unwrap();
    let (ok, out) = pelt(&["export", &houlsby.to_string_lossy(), "--format", "adapterhub", "--out", "hub"], d);
    assert!(!ok && out.contains("train_layer_norm: false"), "{out}");
    let (ok, out) = pelt(&["export", "no_such_run", "--results", "out", "--format", "peft", "--out", "x"], d);
    assert!(!ok && out.contains("no_such_run") && out.contains("--save-adapters"), "{out}");
}

/// `training.precision` trains under autocast (bf16 here on the CPU; fp16 with loss scaling), is in
/// every record and in the hash of every non-fp32 run, and leaves fp32 runs' hashes as they were.
#[test]
fn mixed_precision_runs_are_recorded_and_hashed_apart_and_fp32_hashes_stay() {
    let dir = swept_tiny();
    let d = dir.path();
    let fp32: Vec<serde_json::Value> = records(d, "tiny");
    assert!(fp32.iter().all(|r| r["precision"] == "fp32"), "every record says its precision");
    for precision in ["bf16", "fp16"] {
        let suite = format!("tiny-{precision}");
        let text = GOOD
            .replace("name: tiny", &format!("name: {suite}"))
            .replace("  max_len: 16\n", &format!("  max_len: 16\n  precision: {precision}\n"));
        std::fs::write(d.join("p.yaml"), text).unwrap();
        let (ok, out) = pelt(&["sweep", "p.yaml", "--results", "out"], d);
        assert!(ok, "{out}");
        let rs = records(d, &suite);
        assert_eq!(rs.len(), 2);
        for r in &rs {
            assert_eq!((r["status"].as_str(), r["precision"].as_str()), (Some("ok"), Some(precision)), "{r}");
            assert!(r["score"].as_f64().is_some_and(f64::is_finite), "{r}");
            let same = fp32.iter().find(|f| f["method"] == r["method"]).unwrap();
            assert_ne!(same["config_hash"], r["config_hash"], "{precision} runs hash apart from fp32 ones");
        }
    }
    // The fp32 file's keys are what they were before the setting existed: `precision` is not written.
    let saved = std::fs::read_to_string(d.join("out/tiny/experiment.yaml")).unwrap();
    assert!(!saved.contains("precision"), "{saved}");
}

/// A federated sweep trains every run over simulated clients, records the bytes it sent, and hashes
/// apart from the centralised runs; bad `federated:` settings are refused before training with file,
/// line and field.
#[test]
fn federated_sweeps_record_their_communication_and_bad_settings_are_refused_first() {
    let dir = tiny_workspace();
    let d = dir.path();
    let block = "federated:\n  clients: 4\n  clients_per_round: 2\n  rounds: 3\n  local_steps: 2\n  partition: dirichlet\n  alpha: 1.0\n";
    let fed = GOOD.replace("methods:\n", &format!("{block}methods:\n"));
    std::fs::write(d.join("f.yaml"), &fed).unwrap();
    let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    for r in records(d, "tiny") {
        assert_eq!(r["status"], "ok", "{r}");
        let diag = &r["diagnostics"];
        assert_eq!(diag["fed_rounds"], 3.0, "{r}");
        let values = diag["fed_values_sent"].as_f64().unwrap();
        // 3 rounds × 2 clients × every trained value × 4 bytes, each way.
        assert!((diag["fed_mb_up"].as_f64().unwrap() - 3.0 * 2.0 * values * 4.0 / 1e6).abs() < 1e-9, "{r}");
        let steps: Vec<u64> = r["curve"].as_array().unwrap().iter().map(|p| p["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [1, 2, 3], "one dev evaluation per round");
    }
    let cases = [
        (fed.replace("clients: 4\n", "clients: 40\n"), "federated.clients", "clients:"),
        (
            fed.replace("clients_per_round: 2", "clients_per_round: 5"),
            "federated.clients_per_round",
            "clients_per_round:",
        ),
        (fed.replace("alpha: 1.0", "alpha: 0"), "federated.alpha", "alpha:"),
        (fed.replace("  alpha: 1.0\n", "  alpha: 1.0\n  aggregator: fedsgd\n"), "fedsgd", "aggregator:"),
    ];
    for (text, what, key) in cases {
        std::fs::write(d.join("f.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "bad"], d);
        assert!(!ok && out.contains("f.yaml") && out.contains(what), "{what}: {out}");
        let line = text.lines().position(|l| l.trim_start().starts_with(key)).unwrap() + 1;
        assert!(
            out.contains(&format!("f.yaml:{line}")) || out.contains(&format!("line {line}")),
            "{what}: no line {line} in {out}"
        );
        assert!(!d.join("bad/tiny/records").exists(), "a refused file must not start a sweep");
    }
    // A method that cannot federate (SNIP calibrates on training examples) is refused by its entry; as
    // a centralised row it is accepted.
    let sparse =
        "methods:\n  - method: sparse_adapter\n    lr: 1.0e-3\n    config:\n      adapter:\n        bottleneck: 4\n";
    let text = fed.replace("methods:\n", sparse);
    std::fs::write(d.join("f.yaml"), &text).unwrap();
    let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "bad", "--dry-run"], d);
    let line = text.lines().position(|l| l.contains("sparse_adapter")).unwrap() + 1;
    assert!(!ok && out.contains(&format!("f.yaml:{line}")) && out.contains("cannot train federated"), "{out}");
    let centralised = text.replace(
        "    lr: 1.0e-3\n    config:\n      adapter:",
        "    lr: 1.0e-3\n    federated: false\n    config:\n      adapter:",
    );
    std::fs::write(d.join("f.yaml"), &centralised).unwrap();
    let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "bad", "--dry-run"], d);
    assert!(ok, "{out}");
    // int8 updates: a byte a value and a scale a tensor go up (the tiny model's many small tensors put the
    // scales at a few % of it), float32 comes down (4 bytes a value); the setting hashes.
    let int8 = fed.replace("  alpha: 1.0\n", "  alpha: 1.0\n  compression: int8\n");
    std::fs::write(d.join("f.yaml"), &int8).unwrap();
    let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "int8/out"], d);
    assert!(ok, "{out}");
    let plain: Vec<String> = records(d, "tiny").iter().map(|r| r["config_hash"].as_str().unwrap().to_owned()).collect();
    for r in records(&d.join("int8"), "tiny") {
        assert_eq!(r["status"], "ok", "{r}");
        let (up, down) =
            (r["diagnostics"]["fed_mb_up"].as_f64().unwrap(), r["diagnostics"]["fed_mb_down"].as_f64().unwrap());
        assert!(up / down > 0.25 && up / down < 0.5, "int8 up {up} against float32 down {down}");
        assert!(!plain.contains(&r["config_hash"].as_str().unwrap().to_owned()), "compression must hash: {r}");
    }
    // A partitions axis: each federated entry once per partition, labelled by it; the runs of the
    // partition already trained (Dirichlet 1.0 above) keep their hashes, so `--reuse` can take them over.
    let axis = fed.replace("  alpha: 1.0\n", "  alpha: 1.0\n  partitions: [iid, 'dirichlet:1.0']\n");
    std::fs::write(d.join("f.yaml"), &axis).unwrap();
    let before: Vec<String> =
        records(d, "tiny").iter().map(|r| r["config_hash"].as_str().unwrap().to_owned()).collect();
    let (ok, out) = pelt(&["sweep", "f.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    let after = records(d, "tiny");
    let mut labels: Vec<&str> = after.iter().map(|r| r["method"].as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["head_only", "head_only@a1.0", "head_only@iid", "lora", "lora@a1.0", "lora@iid"]);
    for r in after.iter().filter(|r| r["method"].as_str().unwrap().ends_with("@a1.0")) {
        assert!(before.contains(&r["config_hash"].as_str().unwrap().to_owned()), "same partition, same hash: {r}");
    }
    let iid: Vec<&serde_json::Value> =
        after.iter().filter(|r| r["method"].as_str().unwrap().ends_with("@iid")).collect();
    assert!(iid
        .iter()
        .all(|r| r["status"] == "ok" && !before.contains(&r["config_hash"].as_str().unwrap().to_owned())));
}

/// A learning-rate search: each rate of `lr: {search: [...]}` (or the experiment's `tuning.lr`) is a
/// trial run of its own, hashed as a plain run at that rate (so `--reuse` can take one over); the table
/// shows the entry's row with each cell's trial of best mean dev, and `budget.md` / `pelt table --budget`
/// list every trial. Rates shared by several files come from a `rates` file; bad searches are refused.
#[test]
fn learning_rate_searches_run_one_trial_per_rate_and_the_table_keeps_the_best_by_dev() {
    let dir = tiny_workspace();
    let d = dir.path();
    let search =
        GOOD.replace("  - method: lora\n    lr: 1.0e-3\n", "  - method: lora\n    lr: {search: [1.0e-3, 3.0e-3]}\n");
    std::fs::write(d.join("s.yaml"), &search).unwrap();
    let (ok, out) = pelt(&["sweep", "s.yaml", "--results", "out"], d);
    assert!(ok, "{out}");
    let recs = records(d, "tiny");
    let mut labels: Vec<&str> = recs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["head_only", "lora[lr=1e-3]", "lora[lr=3e-3]"]);
    let table = std::fs::read_to_string(d.join("out/tiny/table.md")).unwrap();
    assert!(table.contains("| lora |") && !table.contains("[lr="), "one row per entry:\n{table}");
    assert!(table.contains("lora 2"), "the caption gives the budget:\n{table}");
    let budget = std::fs::read_to_string(d.join("out/tiny/budget.md")).unwrap();
    assert_eq!(budget.matches("| lora | sst2 |").count(), 2, "{budget}");
    assert_eq!(budget.matches("chosen").count(), 2, "one chosen trial (and the header's word):\n{budget}");
    let (ok, out) = pelt(&["table", "out/tiny", "--budget"], d);
    assert!(ok && out.contains("Learning-rate search"), "{out}");
    // The trial at 1e-3 is the plain run at 1e-3: same hash.
    std::fs::write(d.join("p.yaml"), GOOD.replace("name: tiny", "name: plain")).unwrap();
    let (ok, out) = pelt(&["sweep", "p.yaml", "--results", "out", "--dry-run"], d);
    assert!(ok, "{out}");
    let trial = recs.iter().find(|r| r["method"] == "lora[lr=1e-3]").unwrap();
    let plain_hash = {
        let (ok, out) = pelt(&["sweep", "p.yaml", "--results", "out2", "--methods", "lora"], d);
        assert!(ok, "{out}");
        let jsonl = std::fs::read_to_string(d.join("out2/plain/records.jsonl")).unwrap();
        let r: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        r["config_hash"].as_str().unwrap().to_owned()
    };
    assert_eq!(trial["config_hash"].as_str().unwrap(), plain_hash);
    // `tuning.lr` searches every entry without its own rate; a `rates` file fills the rest.
    std::fs::write(d.join("rates.yaml"), "head_only: 1.0e-2\n").unwrap();
    let tuned = GOOD
        .replace("  - method: lora\n    lr: 1.0e-3\n", "  - method: lora\n")
        .replace("  - method: head_only\n    lr: 1.0e-2\n", "  - method: head_only\n")
        .replace("methods:\n", "tuning:\n  lr: [1.0e-3, 2.0e-3, 3.0e-3]\nmethods:\n");
    std::fs::write(d.join("t.yaml"), &tuned).unwrap();
    let (ok, out) = pelt(&["sweep", "t.yaml", "--dry-run"], d);
    assert!(ok && out.contains("6 runs"), "two entries × three rates: {out}");
    let from_rates = tuned.replace("tuning:\n  lr: [1.0e-3, 2.0e-3, 3.0e-3]\n", "rates: rates.yaml\n");
    std::fs::write(d.join("t.yaml"), &from_rates).unwrap();
    let (ok, out) = pelt(&["sweep", "t.yaml", "--dry-run"], d);
    assert!(!ok && out.contains("field `lr`: missing") && out.contains("lora"), "lora has no rate anywhere: {out}");
    std::fs::write(d.join("rates.yaml"), "head_only: 1.0e-2\nlora: 1.0e-3\n").unwrap();
    let (ok, out) = pelt(&["sweep", "t.yaml", "--dry-run"], d);
    assert!(ok, "{out}");
    for (bad, what) in
        [("{search: [1.0e-3, 2.0]}", "(0, 1)"), ("{search: []}", "no rate"), ("{search: [1.0e-3, 1.0e-3]}", "twice")]
    {
        let text = GOOD.replace("  - method: lora\n    lr: 1.0e-3\n", &format!("  - method: lora\n    lr: {bad}\n"));
        std::fs::write(d.join("b.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "b.yaml", "--dry-run"], d);
        let line = text.lines().position(|l| l.contains("search")).unwrap() + 1;
        // The parser names the entry's line for a search it cannot read at all.
        let at = [format!("b.yaml:{line}"), format!("line {}", line - 1)];
        assert!(!ok && out.contains(what) && at.iter().any(|a| out.contains(a)), "{bad}: {out}");
    }
}

/// NER experiments are refused before training when the folder is missing, a size does not fit the
/// task (K-shot files for the MIT sets, sentences for WNUT-17) or tasks of another family are mixed in.
#[test]
fn ner_experiments_are_checked_before_training() {
    let dir = tiny_workspace();
    let d = dir.path();
    let ner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ner");
    if !ner.is_dir() {
        eprintln!("{}: not here; skipped", ner.display());
        return;
    }
    let good = GOOD
        .replace("tasks: [sst2]", "tasks: [mit_restaurant]")
        .replace("glue_dir: glue", &format!("ner_dir: {}", ner.display()))
        .replace("data_sizes: [24]", "data_sizes: [10-shot]");
    std::fs::write(d.join("n.yaml"), &good).unwrap();
    let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
    assert!(ok, "{out}");
    let cases = [
        (good.replace("data_sizes: [10-shot]", "data_sizes: [30-shot]"), "data_sizes", "30-shot"),
        (good.replace("data_sizes: [10-shot]", "data_sizes: [100]"), "data_sizes", "<K>-shot"),
        (good.replace("tasks: [mit_restaurant]", "tasks: [mit_restaurant, sst2]"), "tasks", "not a NER task"),
        (good.replace(&format!("ner_dir: {}", ner.display()), "ner_dir: nowhere"), "ner_dir", "missing"),
        (
            good.replace("methods:\n", "priming:\n  source: mit_restaurant\n  steps: 5\nmethods:\n"),
            "priming",
            "training file",
        ),
        (good.replace("methods:\n", "priming:\n  source: wnut17\n  steps: 0\nmethods:\n"), "priming", "steps"),
    ];
    for (text, field, what) in cases {
        std::fs::write(d.join("n.yaml"), &text).unwrap();
        let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
        let line = text.lines().position(|l| l.starts_with(&format!("{field}:"))).unwrap() + 1;
        assert!(!ok && out.contains(what) && out.contains(&format!("n.yaml:{line}")), "{field}: {out}");
    }
    // An entry that primes needs the section; with it, the file is valid.
    let primed = good.replace(
        "    lr: 1.0e-3\n    config:\n      r: 2\n",
        "    lr: 1.0e-3\n    prime: method\n    config:\n      r: 2\n",
    );
    std::fs::write(d.join("n.yaml"), &primed).unwrap();
    let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
    assert!(!ok && out.contains("field `prime`") && out.contains("priming"), "{out}");
    let with = primed.replace("methods:\n", "priming:\n  source: wnut17\n  steps: 5\nmethods:\n");
    std::fs::write(d.join("n.yaml"), &with).unwrap();
    let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
    assert!(ok, "{out}");
    // A source-stage rate of its own: with `prime: method` only, and a rate.
    let own = with.replace("    prime: method\n", "    prime: method\n    prime_lr: 1.0e-4\n");
    std::fs::write(d.join("n.yaml"), &own).unwrap();
    let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
    assert!(ok, "{out}");
    for (bad, what) in [
        (own.replace("prime: method", "prime: plm"), "only with `prime: method`"),
        (own.replace("prime_lr: 1.0e-4", "prime_lr: 2.0"), "must be in (0, 1)"),
    ] {
        std::fs::write(d.join("n.yaml"), &bad).unwrap();
        let (ok, out) = pelt(&["sweep", "n.yaml", "--dry-run"], d);
        let line = bad.lines().position(|l| l.contains("prime_lr")).unwrap() + 1;
        assert!(!ok && out.contains(what) && out.contains(&format!("n.yaml:{line}")), "{out}");
    }
    // Priming belongs to NER.
    std::fs::write(d.join("g.yaml"), GOOD.replace("methods:\n", "priming:\n  source: wnut17\n  steps: 5\nmethods:\n"))
        .unwrap();
    let (ok, out) = pelt(&["sweep", "g.yaml", "--dry-run"], d);
    assert!(!ok && out.contains("field `priming`") && out.contains("only for NER"), "{out}");
}

/// Data-to-text tasks need their folder, named before training.
#[test]
fn data_to_text_tasks_need_their_folder() {
    let dir = tiny_workspace();
    let d = dir.path();
    let text = GOOD.replace("tasks: [sst2]", "tasks: [e2e]").replace("glue_dir: glue", "warm_start: true");
    std::fs::write(d.join("t.yaml"), &text).unwrap();
    let (ok, out) = pelt(&["sweep", "t.yaml", "--dry-run"], d);
    assert!(!ok && out.contains("d2t_dir") && out.contains("e2e"), "{out}");
    std::fs::write(d.join("t.yaml"), text.replace("warm_start: true", "warm_start: true\nd2t_dir: nowhere")).unwrap();
    let (ok, out) = pelt(&["sweep", "t.yaml", "--dry-run"], d);
    assert!(!ok && out.contains("nowhere/e2e/devset.csv") && out.contains("no such file"), "{out}");
}
