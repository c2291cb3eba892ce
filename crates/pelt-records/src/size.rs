//! Training-set sizes as sweeps, records and tables name them.

use serde::{Deserialize, Serialize};

/// A training-set size: a number of examples, k per class, or all of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataSize {
    /// K examples drawn from the training pool (UniPELT low-resource protocol).
    Examples(usize),
    /// k examples per class for train and again for dev (LM-BFF few-shot).
    Shot(usize),
    /// The whole training pool (minus the held-out dev set where the task has none).
    All,
}

impl DataSize {
    /// The label used in records and tables: `100`, `16-shot`, `all`.
    pub fn label(self) -> String {
        match self {
            DataSize::Examples(k) => k.to_string(),
            DataSize::Shot(k) => format!("{k}-shot"),
            DataSize::All => "all".into(),
        }
    }

    /// Parses a label written by [`DataSize::label`].
    pub fn parse(s: &str) -> Option<DataSize> {
        if s == "all" {
            return Some(DataSize::All);
        }
        if let Some(k) = s.strip_suffix("-shot") {
            return k.parse().ok().filter(|k| *k > 0).map(DataSize::Shot);
        }
        s.parse().ok().filter(|k| *k > 0).map(DataSize::Examples)
    }

    /// Sort key: sizes in increasing order, `all` last.
    pub fn order(self) -> (u8, usize) {
        match self {
            DataSize::Shot(k) => (0, k),
            DataSize::Examples(k) => (1, k),
            DataSize::All => (2, 0),
        }
    }
}

impl Serialize for DataSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for DataSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DataSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let bad = || serde::de::Error::custom("a data size is a positive number, `N-shot` or `all`");
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(DataSize::Examples(n as usize)),
            Raw::N(_) => Err(bad()),
            Raw::S(s) => DataSize::parse(&s).ok_or_else(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes_parse_and_order() {
        let v: Vec<DataSize> = serde_yaml::from_str("[100, all, 16-shot]").unwrap();
        assert_eq!(v, vec![DataSize::Examples(100), DataSize::All, DataSize::Shot(16)]);
        assert!(serde_yaml::from_str::<Vec<DataSize>>("[0]").is_err());
        assert!(serde_yaml::from_str::<Vec<DataSize>>("[lots]").is_err());
        assert!(DataSize::Shot(16).order() < DataSize::Examples(10).order());
        assert_eq!(DataSize::parse(&DataSize::All.label()), Some(DataSize::All));
    }
}
