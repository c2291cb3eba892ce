//! Evaluation metrics: accuracy, binary F1, Matthews correlation, Pearson and Spearman correlation.

use serde::{Deserialize, Serialize};

/// A metric a task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction of exact label matches.
    Accuracy,
    /// F1 of the positive class (label 1), as GLUE reports for MRPC and QQP.
    F1,
    /// Matthews correlation coefficient (CoLA), multi-class form (Gorodkin 2004).
    Matthews,
    /// Unweighted mean of the per-class F1 over the classes in gold or predictions (scikit-learn's
    /// `f1_score(average="macro")`).
    MacroF1,
    /// Pearson correlation (STS-B).
    Pearson,
    /// Spearman rank correlation, ties given their average rank (STS-B).
    Spearman,
}

impl Metric {
    /// Name used in records and tables.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::Matthews => "matthews",
            Metric::MacroF1 => "macro_f1",
            Metric::Pearson => "pearson",
            Metric::Spearman => "spearman",
        }
    }

    /// Computes the metric from predictions and gold values (class indices as f64, or scores).
    pub fn compute(self, pred: &[f64], gold: &[f64]) -> f64 {
        match self {
            Metric::Accuracy => accuracy(pred, gold),
            Metric::F1 => f1(pred, gold),
            Metric::Matthews => matthews(pred, gold),
            Metric::MacroF1 => macro_f1(pred, gold),
            Metric::Pearson => pearson(pred, gold),
            Metric::Spearman => spearman(pred, gold),
        }
    }
}

/// Fraction of positions where `pred == gold`.
pub fn accuracy(pred: &[f64], gold: &[f64]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

/// F1 of class 1; 0 when there are no true positives.
pub fn f1(pred: &[f64], gold: &[f64]) -> f64 {
    let tp = pred.iter().zip(gold).filter(|(p, g)| **p == 1.0 && **g == 1.0).count() as f64;
    let fp = pred.iter().zip(gold).filter(|(p, g)| **p == 1.0 && **g != 1.0).count() as f64;
    let fne = pred.iter().zip(gold).filter(|(p, g)| **p != 1.0 && **g == 1.0).count() as f64;
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fne)
    }
}

/// Macro-averaged F1 over the classes that occur in `gold` or `pred` (a class with no true positive
/// scores 0), as scikit-learn computes it.
pub fn macro_f1(pred: &[f64], gold: &[f64]) -> f64 {
    let mut classes: Vec<i64> = pred.iter().chain(gold).map(|&v| v as i64).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return 0.0;
    }
    let per_class = classes.iter().map(|&c| {
        let c = c as f64;
        let tp = pred.iter().zip(gold).filter(|(p, g)| **p == c && **g == c).count() as f64;
        let fp = pred.iter().zip(gold).filter(|(p, g)| **p == c && **g != c).count() as f64;
        let fne = pred.iter().zip(gold).filter(|(p, g)| **p != c && **g == c).count() as f64;
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fne)
        }
    });
    per_class.sum::<f64>() / classes.len() as f64
}

/// Matthews correlation over any number of classes; 0 when undefined (one class predicted or present).
pub fn matthews(pred: &[f64], gold: &[f64]) -> f64 {
    let classes = pred.iter().chain(gold).fold(0usize, |m, &v| m.max(v as usize + 1));
    let mut conf = vec![vec![0f64; classes]; classes];
    for (&p, &g) in pred.iter().zip(gold) {
        conf[g as usize][p as usize] += 1.0;
    }
    let n: f64 = gold.len() as f64;
    let correct: f64 = (0..classes).map(|k| conf[k][k]).sum();
    let t: Vec<f64> = (0..classes).map(|k| conf[k].iter().sum()).collect();
    let p: Vec<f64> = (0..classes).map(|k| (0..classes).map(|g| conf[g][k]).sum()).collect();
    let tp: f64 = t.iter().zip(&p).map(|(a, b)| a * b).sum();
    let denom =
        ((n * n - p.iter().map(|x| x * x).sum::<f64>()) * (n * n - t.iter().map(|x| x * x).sum::<f64>())).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        (correct * n - tp) / denom
    }
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    if vx == 0.0 || vy == 0.0 {
        0.0
    } else {
        cov / (vx * vy).sqrt()
    }
}

/// Ranks starting at 1, ties sharing their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman correlation: Pearson on average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {

    #[test]
    fn macro_f1_averages_per_class_f1_over_the_classes_seen() {
        // Class 0: F1 1; class 1: no true positive, 0; class 2: 2·1/(2·1 + 1 + 1) = 0.5 (scikit-learn:
        // f1_score([0, 2, 2, 1], [0, 1, 2, 2], average="macro") = 0.5).
        let m = macro_f1(&[0.0, 1.0, 2.0, 2.0], &[0.0, 2.0, 2.0, 1.0]);
        assert!((m - 0.5).abs() < 1e-12, "{m}");
        assert_eq!(Metric::MacroF1.name(), "macro_f1");
    }

    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn accuracy_and_f1_by_hand() {
        // tp = 2 (pos 0, 3), fp = 1 (pos 1), fn = 1 (pos 4), tn = 1 (pos 2)
        let pred = [1.0, 1.0, 0.0, 1.0, 0.0];
        let gold = [1.0, 0.0, 0.0, 1.0, 1.0];
        close(accuracy(&pred, &gold), 3.0 / 5.0);
        close(f1(&pred, &gold), 2.0 * 2.0 / (2.0 * 2.0 + 1.0 + 1.0));
        close(f1(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn matthews_by_hand() {
        // Binary: tp 2, tn 1, fp 1, fn 1 → (2·1 − 1·1) / sqrt(3·3·2·2) = 1/6.
        let pred = [1.0, 1.0, 0.0, 1.0, 0.0];
        let gold = [1.0, 0.0, 0.0, 1.0, 1.0];
        close(matthews(&pred, &gold), 1.0 / 6.0);
        close(matthews(&gold, &gold), 1.0);
        close(matthews(&[1.0, 1.0, 1.0], &[0.0, 1.0, 0.0]), 0.0);
        let inverted: Vec<f64> = gold.iter().map(|g| 1.0 - g).collect();
        close(matthews(&inverted, &gold), -1.0);
    }

    #[test]
    fn correlations_by_hand() {
        // x = 1,2,3 ; y = 2,4,7 → means 2, 13/3; cov = 5; vx = 2; vy = 38/3 → 5 / sqrt(76/3).
        close(pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]), 5.0 / (76.0f64 / 3.0).sqrt());
        close(spearman(&[1.0, 2.0, 3.0], &[2.0, 4.0, 70.0]), 1.0);
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        // With ties: ranks x = 1.5,1.5,3 ; y = 1,2,3 → pearson of ranks = sqrt(3)/2.
        close(spearman(&[5.0, 5.0, 9.0], &[1.0, 2.0, 3.0]), 3f64.sqrt() / 2.0);
        close(pearson(&[1.0, 1.0], &[0.0, 2.0]), 0.0);
    }
}
