//! The GLUE experiment files that say they run unipelt-lowres.yaml's methods (with the learning rates of
//! experiments/rates/lowres.yaml, which they all name): CI's short sweep
//! (ci-glue.yaml), the step-budget check (lowres-budget.yaml) and UniPELT's table (unipelt-table.yaml,
//! whose K columns `--reuse` takes over from unipelt-lowres's records only when method, config,
//! learning rate and training settings all match). A rate retuned in one file and not the others would
//! make CI test other runs than the tables show, or make `--reuse` silently retrain; these tests catch
//! that.

use serde_yaml::Value;
use std::path::Path;

/// An experiment file of the repository, parsed.
fn experiment(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file's methods as (method name, (lr, config)); a missing config is the empty one (the defaults),
/// a missing `lr` the one the file's `rates` file gives the entry's label (or its method name). Labels
/// are left out: `--reuse` matches runs by method name, config hash and the rest, not by row label
/// (unipelt-table shows Pfeiffer's adapter as `adapter`).
fn methods(exp: &Value) -> Vec<(String, (f64, Value))> {
    let rates: Value = exp["rates"].as_str().map_or(Value::Null, |f| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments").join(f);
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    });
    exp["methods"]
        .as_sequence()
        .expect("a methods list")
        .iter()
        .map(|m| {
            let name = m["method"].as_str().expect("a method name").to_owned();
            let config = m.get("config").cloned().unwrap_or_else(|| Value::Mapping(Default::default()));
            let label = m.get("label").and_then(Value::as_str).unwrap_or(&name);
            let lr = m["lr"].as_f64().or_else(|| rates[label].as_f64()).or_else(|| rates[name.as_str()].as_f64());
            (name.clone(), (lr.unwrap_or_else(|| panic!("`{name}`: no learning rate")), config))
        })
        .collect()
}

/// The four files read one rates file, so a rate retuned there moves them together.
#[test]
fn the_lowres_files_share_one_rates_file() {
    for file in ["unipelt-lowres.yaml", "ci-glue.yaml", "lowres-budget.yaml", "unipelt-table.yaml"] {
        assert_eq!(experiment(file)["rates"].as_str(), Some("rates/lowres.yaml"), "{file}");
    }
}

/// Asserts that every method of `file` runs as the same method does in unipelt-lowres.yaml; returns the
/// file's method names.
fn runs_lowres_methods(file: &str) -> Vec<String> {
    let lowres: std::collections::BTreeMap<_, _> = methods(&experiment("unipelt-lowres.yaml")).into_iter().collect();
    let mut names = Vec::new();
    for (name, spec) in methods(&experiment(file)) {
        let Some(theirs) = lowres.get(&name) else { panic!("{file}: `{name}` is not in unipelt-lowres.yaml") };
        assert_eq!(&spec, theirs, "{file}: `{name}` differs from unipelt-lowres.yaml (lr, config)");
        names.push(name);
    }
    names
}

#[test]
fn ci_glue_trains_every_lowres_method_as_lowres_does_then_the_newer_ones() {
    let lowres = methods(&experiment("unipelt-lowres.yaml"));
    let ci = methods(&experiment("ci-glue.yaml"));
    let (first, newer) = ci.split_at(lowres.len().min(ci.len()));
    assert_eq!(first, &lowres[..], "ci-glue.yaml must train every unipelt-lowres method first, in the same order");
    // The rest: methods-2024.yaml's entries that unipelt-lowres lacks, each at one of its searched rates.
    let recent = experiment("methods-2024.yaml");
    let searched: Vec<(String, Value, Vec<f64>)> = recent["methods"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            let config = m.get("config").cloned().unwrap_or_else(|| Value::Mapping(Default::default()));
            let rates = m["lr"]["search"].as_sequence().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            (m["method"].as_str().unwrap().to_owned(), config, rates)
        })
        .collect();
    let missing: Vec<&(String, Value, Vec<f64>)> =
        searched.iter().filter(|(m, c, _)| !lowres.iter().any(|(n, (_, cc))| n == m && cc == c)).collect();
    assert_eq!(newer.len(), missing.len(), "ci-glue.yaml must also run each newer method of methods-2024.yaml once");
    for ((name, (lr, config)), (m, c, rates)) in newer.iter().zip(missing) {
        assert_eq!((name, config), (m, c), "ci-glue.yaml's newer methods follow methods-2024.yaml's order");
        assert!(rates.contains(lr), "{name}: CI's rate {lr} is not among methods-2024's {rates:?}");
    }
}

#[test]
fn the_budget_check_trains_as_lowres_does() {
    let names = runs_lowres_methods("lowres-budget.yaml");
    assert_eq!(names, ["bitfit", "houlsby", "lora"]);
    let (budget, lowres) = (experiment("lowres-budget.yaml"), experiment("unipelt-lowres.yaml"));
    // Only the epochs differ: the point of the file.
    let mut training = budget["training"].clone();
    training["epochs"] = lowres["training"]["epochs"].clone();
    assert_eq!(training, lowres["training"]);
    assert_eq!(budget["backbone"], lowres["backbone"]);
}

#[test]
fn unipelt_table_can_reuse_the_lowres_runs() {
    let names = runs_lowres_methods("unipelt-table.yaml");
    assert!(names.contains(&"unipelt".to_owned()) && names.len() >= 6, "{names:?}");
    let (table, lowres) = (experiment("unipelt-table.yaml"), experiment("unipelt-lowres.yaml"));
    assert_eq!(table["training"], lowres["training"], "training settings enter the run hash: they must match");
    assert_eq!(table["backbone"], lowres["backbone"], "the backbone enters the run hash: it must match");
    for seed in table["seeds"].as_sequence().unwrap() {
        assert!(lowres["seeds"].as_sequence().unwrap().contains(seed), "seed {seed:?} is not in unipelt-lowres");
    }
}
