//! What a federated suite's methods sent: each row's mean test score beside the megabytes its runs
//! communicated (up and down, float32), and the ratio to full fine-tuning's where the suite has that
//! row (under a partitions axis, `full@<tag>` for the rows `<method>@<tag>`) — FedPETuning's comparison.
//! Centralised reference rows (no communication) show their score only.

use pelt_records::{Record, Status};
use std::collections::BTreeMap;

/// The Markdown table, or `None` when no record of the suite ran federated.
pub fn table(records: &[Record], order: &[String]) -> Option<String> {
    let mb = |r: &Record| Some(r.diagnostics.get("fed_mb_up")? + r.diagnostics.get("fed_mb_down")?);
    if !records.iter().any(|r| mb(r).is_some()) {
        return None;
    }
    // Per row: scores and megabytes of its finished runs.
    let mut rows: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        let e = rows.entry(r.method.as_str()).or_default();
        e.0.extend(r.score);
        e.1.extend(mb(r));
    }
    let mean = |x: &[f64]| (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64);
    // Full fine-tuning's row of the same partition: `full` for `lora`, `full@a0.1` for `lora@a0.1`.
    let full_of = |label: &str| {
        let full = label.split_once('@').map_or("full".to_owned(), |(_, tag)| format!("full@{tag}"));
        rows.get(full.as_str()).and_then(|(_, m)| mean(m))
    };
    let mut labels: Vec<&str> = order.iter().map(String::as_str).filter(|l| rows.contains_key(l)).collect();
    let rest: Vec<&str> = rows.keys().copied().filter(|k| !labels.contains(k)).collect();
    labels.extend(rest);
    let mut out = String::from(
        "| method | test score (mean over runs) | MB communicated per run (up + down) | vs full fine-tuning |\n|---|---:|---:|---:|\n",
    );
    for label in labels {
        let (scores, mbs) = &rows[label];
        let score = mean(scores).map_or("–".into(), |s| format!("{s:.1}"));
        let (sent, ratio) = match mean(mbs) {
            Some(m) => (format!("{m:.3}"), full_of(label).map_or("–".into(), |f| format!("{:.1e}", m / f))),
            None => ("centralised".into(), "–".into()),
        };
        out.push_str(&format!("| {label} | {score} | {sent} | {ratio} |\n"));
    }
    out.push_str(
        "\nCommunication: every sampled client receives the global values of what trains (method and head; full \
         fine-tuning: every weight) and sends its own back each round, 4 bytes a value.\n",
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_records::test_record;

    #[test]
    fn rows_show_score_megabytes_and_the_ratio_to_full_fine_tuning() {
        let fed = |method: &str, score: f64, mb: f64| {
            let mut r = test_record("sst2", method, 1);
            r.score = Some(score);
            r.diagnostics = [("fed_mb_up".to_owned(), mb / 2.0), ("fed_mb_down".to_owned(), mb / 2.0)].into();
            r
        };
        let central = test_record("sst2", "lora_centralised", 1);
        let records = vec![
            fed("full", 80.0, 1000.0),
            fed("lora", 78.0, 2.0),
            central,
            fed("full@a0.1", 60.0, 500.0),
            fed("lora@a0.1", 70.0, 5.0),
        ];
        let text = table(&records, &["full".into(), "lora".into()]).unwrap();
        assert!(text.contains("| full | 80.0 | 1000.000 | 1.0e0 |"), "{text}");
        assert!(text.contains("| lora | 78.0 | 2.000 | 2.0e-3 |"), "{text}");
        assert!(text.contains("| lora_centralised | 50.0 | centralised | – |"), "{text}");
        assert!(
            text.contains("| lora@a0.1 | 70.0 | 5.000 | 1.0e-2 |"),
            "a partition's rows against its own full row: {text}"
        );
        assert!(table(&[test_record("sst2", "lora", 1)], &[]).is_none());
    }
}
