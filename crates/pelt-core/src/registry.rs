//! The method registry: one entry per method, keyed by name, filled by each method crate.

use crate::{
    backbone::BackboneDims,
    method::Method,
    site::{Form, ScaleKind, Site},
    PeltError, Result,
};
use std::collections::BTreeMap;
use tch::Device;

/// What `pelt list` shows about a method.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// Registry name used in experiment files.
    pub name: &'static str,
    /// Family (crate): selective, adapters, low-rank, prompts, mixtures.
    pub family: &'static str,
    /// The paper it implements.
    pub paper: &'static str,
    /// Where it attaches.
    pub sites: &'static [Site],
    /// How its Δ is formed.
    pub form: Form,
    /// How its Δ is scaled.
    pub scale: ScaleKind,
    /// Its trainable-parameter formula (d hidden, L layers, ...), as text.
    pub formula: &'static str,
}

/// Builds a method from its YAML config for a backbone; errors name the offending field.
pub type BuildFn = fn(&serde_yaml::Value, &BackboneDims, Device) -> Result<Box<dyn Method>>;

/// A registered method: description, builder and default config.
#[derive(Debug, Clone)]
pub struct MethodEntry {
    /// Description for listings.
    pub info: MethodInfo,
    /// Constructor.
    pub build: BuildFn,
    /// The default configuration, resolved (so results record every field).
    pub default_config: fn() -> serde_yaml::Value,
}

/// Every method pelt knows, by name.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    entries: BTreeMap<&'static str, MethodEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds entries; a name registered twice is a programming error and panics at start-up.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = MethodEntry>) {
        for e in entries {
            let name = e.info.name;
            assert!(self.entries.insert(name, e).is_none(), "method `{name}` registered twice");
        }
    }

    /// Looks a method up by name.
    pub fn get(&self, name: &str) -> Result<&MethodEntry> {
        self.entries.get(name).ok_or_else(|| PeltError::UnknownMethod {
            name: name.to_owned(),
            known: self.entries.keys().copied().collect::<Vec<_>>().join(", "),
        })
    }

    /// All entries, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &MethodEntry> {
        self.entries.values()
    }
}

/// Declares a [`MethodEntry`] for a method type with a config type, wiring parse → validate → build.
///
/// `defaults = expr` gives the entry its own defaults when several entries share one config type
/// (fields a YAML file leaves out are taken from it).
#[macro_export]
macro_rules! method_entry {
    ($info:expr, $config:ty, $ctor:expr) => {
        $crate::method_entry!($info, $config, $ctor, defaults = <$config as Default>::default())
    };
    ($info:expr, $config:ty, $ctor:expr, defaults = $defaults:expr) => {
        $crate::MethodEntry {
            info: $info,
            build: |value, dims, device| {
                let base: $config = $defaults;
                let config: $config = $crate::config::parse_config_over(value, &base, dims)?;
                let method = ($ctor)(config, dims, device)?;
                Ok(Box::new(method) as Box<dyn $crate::Method>)
            },
            default_config: || {
                let base: $config = $defaults;
                $crate::serde_yaml::to_value(base).unwrap_or($crate::serde_yaml::Value::Null)
            },
        }
    };
}
