//! pelt's entity-level scores against Python seqeval 1.2.2 (default mode) on real NER tags with seeded
//! corruptions (scripts/reference/seqeval_check.py wrote tests/data/seqeval_reference.json): micro and
//! per-type precision, recall and F1 must agree to 1e-12, and the supports exactly.

use pelt_data::conll::score;
use std::path::Path;

#[test]
fn entity_scores_match_seqeval_on_real_tags() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seqeval_reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let tags: Vec<&str> = case["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let decode = |key: &str| -> Vec<Vec<&str>> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_array().unwrap().iter().map(|i| tags[i.as_u64().unwrap() as usize]).collect())
                .collect()
        };
        let (micro, per_type) = score(&decode("gold"), &decode("pred"));
        let close = |a: f64, b: &serde_json::Value| (a - b.as_f64().unwrap()).abs() < 1e-12;
        assert!(close(micro.precision, &case["precision"]), "{name}: precision {}", micro.precision);
        assert!(close(micro.recall, &case["recall"]), "{name}: recall {}", micro.recall);
        assert!(close(micro.f1, &case["f1"]), "{name}: f1 {} against {}", micro.f1, case["f1"]);
        let theirs = case["per_type"].as_object().unwrap();
        assert_eq!(per_type.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{name}: types");
        for (ty, prf) in &per_type {
            let t = &theirs[ty];
            assert!(close(prf.precision, &t["precision"]) && close(prf.recall, &t["recall"]), "{name} {ty}");
            assert!(close(prf.f1, &t["f1"]), "{name} {ty}: f1 {} against {}", prf.f1, t["f1"]);
            assert_eq!(prf.support as u64, t["support"].as_u64().unwrap(), "{name} {ty}: support");
        }
    }
}

/// The shipped NER files all read: sentence counts as their README gives them.
#[test]
fn the_shipped_ner_files_read() {
    let ner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ner");
    if !ner.is_dir() {
        eprintln!("{}: not here; skipped", ner.display());
        return;
    }
    let count = |p: &str| pelt_data::conll::read(&ner.join(p)).unwrap().len();
    assert_eq!(count("wnut17/wnut17train.conll"), 3394);
    assert_eq!(count("wnut17/emerging.dev.conll"), 1009);
    assert_eq!(count("wnut17/emerging.test.annotated"), 1287);
    assert_eq!(count("mit-restaurant/test.txt"), 1521);
    assert_eq!(count("mit-movie/test.txt"), 2443);
    assert_eq!(count("mit-restaurant/10-shot-train.txt"), 40);
    assert_eq!(count("mit-movie/500-shot-train.txt"), 2280);
    let types = pelt_data::conll::entity_types(&pelt_data::conll::read(&ner.join("mit-restaurant/test.txt")).unwrap());
    assert_eq!(types.len(), 8, "{types:?}");
}
