//! What a federated suite's methods sent: each row's mean test score beside the megabytes its runs
//! communicated (up and down, float32), and the ratio to full fine-tuning's where the suite has that
//! row (under a partitions axis, `full@<tag>` for the rows `<method>@<tag>`) — FedPETuning's comparison.
//! Centralised reference rows (no communication) show their score only; each federated row also shows
//! what it lost against its centralised reference (the row of the same method, configuration and rate
//! trained without clients), paired by task, size and seed.

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
    // Centralised runs by (method, configuration, rate), then by (task, size, seed); each federated row's
    // paired differences against them.
    type Same = (String, String, u64);
    let same = |r: &Record| (r.method_name.clone(), r.method_config.to_string(), r.lr.to_bits());
    let mut central: BTreeMap<Same, BTreeMap<(&str, &str, u64), f64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok && mb(r).is_none()) {
        if let Some(s) = r.score {
            central.entry(same(r)).or_default().insert((&r.task, &r.data_size, r.seed), s);
        }
    }
    let mut gaps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok && mb(r).is_some()) {
        let paired = central.get(&same(r)).and_then(|c| c.get(&(r.task.as_str(), r.data_size.as_str(), r.seed)));
        if let (Some(s), Some(c)) = (r.score, paired) {
            gaps.entry(r.method.as_str()).or_default().push(s - c);
        }
    }
    let gap = |label: &str| match gaps.get(label).map(Vec::as_slice) {
        Some(d) if d.len() > 1 => {
            let (m, s) = crate::pairs::mean_std(d);
            format!("{m:+.1} ± {:.1} ({})", s / (d.len() as f64).sqrt(), d.len())
        }
        Some([d]) => format!("{d:+.1} (1)"),
        _ => "–".into(),
    };
    let mut labels: Vec<&str> = order.iter().map(String::as_str).filter(|l| rows.contains_key(l)).collect();
    let rest: Vec<&str> = rows.keys().copied().filter(|k| !labels.contains(k)).collect();
    labels.extend(rest);
    let mut out = String::from(
        "| method | test score (mean over runs) | vs centralised (paired Δ ± s.e., pairs) | MB communicated per run (up + \
         down) | vs full fine-tuning |\n|---|---:|---:|---:|---:|\n",
    );
    for label in labels {
        let (scores, mbs) = &rows[label];
        let score = mean(scores).map_or("–".into(), |s| format!("{s:.1}"));
        let (sent, ratio) = match mean(mbs) {
            Some(m) => (format!("{m:.3}"), full_of(label).map_or("–".into(), |f| format!("{:.1e}", m / f))),
            None => ("centralised".into(), "–".into()),
        };
        out.push_str(&format!("| {label} | {score} | {} | {sent} | {ratio} |\n", gap(label)));
    }
    out.push_str(
        "\nCommunication: every sampled client receives the global values of what trains (method and head; full \
         fine-tuning: every weight) and sends its own back each round, 4 bytes a value. vs centralised: the mean \
         over (task, size, seed) of the federated run's test score minus that of the same method, configuration \
         and learning rate trained centrally on the same examples, with its standard error.\n",
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
        let central = |seed: u64, score: f64| {
            let mut r = test_record("sst2", "lora_centralised", seed);
            (r.method_name, r.score) = ("lora".into(), Some(score));
            r
        };
        let lora = |label: &str, seed: u64, score: f64, mb: f64| {
            let mut r = fed(label, score, mb);
            (r.method_name, r.seed) = ("lora".into(), seed);
            r
        };
        let records = vec![
            fed("full", 80.0, 1000.0),
            lora("lora", 1, 78.0, 2.0),
            central(1, 80.0),
            central(2, 84.0),
            fed("full@a0.1", 60.0, 500.0),
            lora("lora@a0.1", 1, 70.0, 5.0),
            lora("lora@a0.1", 2, 72.0, 5.0),
        ];
        let text = table(&records, &["full".into(), "lora".into()]).unwrap();
        assert!(text.contains("| full | 80.0 | – | 1000.000 | 1.0e0 |"), "{text}");
        assert!(text.contains("| lora | 78.0 | -2.0 (1) | 2.000 | 2.0e-3 |"), "{text}");
        assert!(text.contains("| lora_centralised | 82.0 | – | centralised | – |"), "{text}");
        // Seeds 1 and 2: 70 − 80 and 72 − 84, mean −11, s.e. 1.
        assert!(
            text.contains("| lora@a0.1 | 71.0 | -11.0 ± 1.0 (2) | 5.000 | 1.0e-2 |"),
            "a partition's rows against its own full row and their centralised reference: {text}"
        );
        assert!(table(&[test_record("sst2", "lora", 1)], &[]).is_none());
    }
}
