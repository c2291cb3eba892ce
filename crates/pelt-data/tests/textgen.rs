//! pelt's corpus BLEU and chrF++ against sacreBLEU 2.4.3 (scripts/reference/sacrebleu_check.py wrote
//! tests/data/sacrebleu_reference.json) on real E2E and WebNLG references, several per hypothesis.

use pelt_data::textgen::{bleu, chrf_pp};
use std::path::Path;

#[test]
fn bleu_and_chrf_pp_match_sacrebleu_on_real_references() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sacrebleu_reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
        };
        let hyps = strings(&case["hypotheses"]);
        let refs: Vec<Vec<String>> = case["references"].as_array().unwrap().iter().map(strings).collect();
        assert!(hyps.len() > 100, "{name}");
        let (b, c) = (bleu(&hyps, &refs), chrf_pp(&hyps, &refs));
        let (want_b, want_c) = (case["bleu"].as_f64().unwrap(), case["chrf_pp"].as_f64().unwrap());
        assert!((b - want_b).abs() < 1e-9, "{name}: BLEU {b} against sacreBLEU's {want_b}");
        assert!((c - want_c).abs() < 1e-9, "{name}: chrF++ {c} against sacreBLEU's {want_c}");
    }
}
