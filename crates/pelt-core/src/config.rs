//! Method configurations: serde structs with a validation step before anything runs.

use crate::backbone::BackboneDims;
use serde::{de::DeserializeOwned, Serialize};

/// A configuration value that is malformed or out of range, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
pub struct ConfigError {
    /// Dotted path of the offending field (`targets`, `adapter.bottleneck`); empty when serde could
    /// not tell.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { field: field.into(), message: message.into() }
    }
}

/// A method's configuration: deserialised with `deny_unknown_fields`, then validated against the
/// backbone before any variable is created.
pub trait MethodConfig: Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug {
    /// Checks every field's range; the error names the field.
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError>;
}

/// Refuses a site list that names a site twice (`what` says what the list holds, for the message).
pub fn check_unique_sites(field: &str, sites: &[crate::Site], what: &str) -> Result<(), ConfigError> {
    let mut unique = sites.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() != sites.len() {
        return Err(ConfigError::new(field, format!("lists a {what} twice")));
    }
    Ok(())
}

/// Refuses anything but a finite positive number (scales, α, init stds).
pub fn check_positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if !(v > 0.0 && v.is_finite()) {
        return Err(ConfigError::new(field, format!("must be a positive number, got {v}")));
    }
    Ok(())
}

/// Refuses a dropout probability outside [0, 1).
pub fn check_dropout(field: &str, p: f64) -> Result<(), ConfigError> {
    if !(0.0..1.0).contains(&p) {
        return Err(ConfigError::new(field, format!("must be in [0, 1), got {p}")));
    }
    Ok(())
}

/// A bottleneck width: an absolute size, or the backbone's width d over a reduction factor, as the
/// papers give it (UniPELT's adapter: 16, i.e. 48 at d = 768; Compacter: 32). Written in YAML as an
/// integer (`bottleneck: 48`) or as `d/r` (`bottleneck: d/16`); a fixed size serialises as the plain
/// integer it always was, so configs written before reduction factors existed keep their hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// m itself.
    Fixed(i64),
    /// ⌊d / r⌋ for reduction factor r.
    Reduction(i64),
}

impl Width {
    /// The width on a backbone of hidden size `d`.
    pub fn resolve(self, d: i64) -> i64 {
        match self {
            Width::Fixed(m) => m,
            Width::Reduction(r) if r > 0 => d / r,
            Width::Reduction(_) => 0,
        }
    }
}

impl From<i64> for Width {
    fn from(m: i64) -> Width {
        Width::Fixed(m)
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Width::Fixed(m) => write!(f, "{m}"),
            Width::Reduction(r) => write!(f, "d/{r}"),
        }
    }
}

impl Serialize for Width {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Width::Fixed(m) => s.serialize_i64(*m),
            Width::Reduction(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Width {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Width, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Width;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bottleneck size (an integer) or a reduction factor written `d/r` (e.g. `d/16`)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Width, E> {
                Ok(Width::Fixed(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Width, E> {
                i64::try_from(v).map(Width::Fixed).map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Width, E> {
                v.trim()
                    .strip_prefix("d/")
                    .and_then(|r| r.trim().parse::<i64>().ok())
                    .map(Width::Reduction)
                    .ok_or_else(|| E::custom(format!("`{v}` is neither an integer nor `d/r` with an integer r")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Refuses a width whose reduction factor is not positive or leaves less than 1, then checks the
/// resolved size as [`check_bottleneck`] does; returns the resolved size.
pub fn check_width(field: &str, w: Width, dims: &BackboneDims) -> Result<i64, ConfigError> {
    if let Width::Reduction(r) = w {
        if r < 1 || dims.hidden / r < 1 {
            return Err(ConfigError::new(
                field,
                format!("reduction factor d/{r} must be in 1..={} (d = {})", dims.hidden, dims.hidden),
            ));
        }
    }
    let m = w.resolve(dims.hidden);
    check_bottleneck(field, m, dims)?;
    Ok(m)
}

/// Refuses a bottleneck size outside 1..=4d.
pub fn check_bottleneck(field: &str, m: i64, dims: &BackboneDims) -> Result<(), ConfigError> {
    if m < 1 || m > 4 * dims.hidden {
        return Err(ConfigError::new(field, format!("must be in 1..={}, got {m}", 4 * dims.hidden)));
    }
    Ok(())
}

/// Refuses a list of sublayer sites that is empty, names anything but `attention_output`,
/// `ffn_output` and (on encoder-decoders) `cross_output`, or names one twice.
pub fn check_sublayers(field: &str, sites: &[crate::Site], dims: &BackboneDims) -> Result<(), ConfigError> {
    use crate::Site;
    if sites.is_empty() {
        return Err(ConfigError::new(field, "must name at least one of attention_output, ffn_output"));
    }
    if let Some(s) = sites.iter().find(|s| !matches!(s, Site::AttentionOutput | Site::FfnOutput | Site::CrossOutput)) {
        return Err(ConfigError::new(
            field,
            format!("`{s}` is not a sublayer output (attention_output, ffn_output, cross_output)"),
        ));
    }
    check_unique_sites(field, sites, "site")?;
    check_present(field, sites, dims)
}

/// Refuses cross-attention sites on a backbone without a decoder.
pub fn check_present(field: &str, sites: &[crate::Site], dims: &BackboneDims) -> Result<(), ConfigError> {
    match sites.iter().find(|s| s.is_cross()) {
        Some(s) if dims.decoder_layers == 0 => Err(ConfigError::new(
            field,
            format!("`{s}` is a cross-attention site, and this {} backbone has no decoder", dims.arch),
        )),
        _ => Ok(()),
    }
}

/// Deserialises and validates a config from a YAML value (`null` means all defaults).
pub fn parse_config<C: MethodConfig>(value: &serde_yaml::Value, dims: &BackboneDims) -> Result<C, ConfigError> {
    parse_config_over(value, &C::default(), dims)
}

/// Like [`parse_config`], with the fields the YAML leaves out taken from `base` rather than from
/// `C::default()`: one config type serves several registry entries with different defaults (Houlsby and
/// Pfeiffer share the bottleneck adapter's config).
pub fn parse_config_over<C: MethodConfig>(
    value: &serde_yaml::Value,
    base: &C,
    dims: &BackboneDims,
) -> Result<C, ConfigError> {
    let config: C = if value.is_null() {
        base.clone()
    } else {
        let serde_yaml::Value::Mapping(given) = value else {
            return Err(ConfigError::new("", "expected a mapping of settings (`field: value` lines)"));
        };
        let base_map = match serde_yaml::to_value(base) {
            Ok(serde_yaml::Value::Mapping(m)) => m,
            _ => serde_yaml::Mapping::new(),
        };
        let over = |pairs: &mut dyn Iterator<Item = (&serde_yaml::Value, &serde_yaml::Value)>| {
            let mut merged = base_map.clone();
            for (k, v) in pairs {
                merged.insert(k.clone(), v.clone());
            }
            serde_yaml::from_value::<C>(serde_yaml::Value::Mapping(merged))
        };
        over(&mut given.iter()).map_err(|e| {
            let message = e.to_string();
            // Serde names the field for unknown or missing ones only; otherwise the first given field
            // that fails alone over the defaults is the culprit (e.g. an unknown enum variant).
            let field = field_of(&message).or_else(|| {
                given
                    .iter()
                    .find(|(k, v)| over(&mut std::iter::once((*k, *v))).is_err())
                    .and_then(|(k, _)| k.as_str().map(str::to_owned))
            });
            ConfigError::new(field.unwrap_or_default(), message)
        })?
    };
    config.validate(dims)?;
    Ok(config)
}

/// Pulls the field name out of serde's "unknown field `x`" / "missing field `x`" / "x: invalid type"
/// messages so the error can name it.
fn field_of(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    let (head, _) = message.split_once(": ")?;
    (!head.contains(' ')).then(|| head.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        r: i64,
    }
    impl Default for Cfg {
        fn default() -> Self {
            Cfg { r: 8 }
        }
    }
    impl MethodConfig for Cfg {
        fn validate(&self, _: &BackboneDims) -> Result<(), ConfigError> {
            if self.r < 1 {
                return Err(ConfigError::new("r", format!("must be at least 1, got {}", self.r)));
            }
            Ok(())
        }
    }

    fn dims() -> BackboneDims {
        BackboneDims {
            arch: "bert".into(),
            hidden: 16,
            layers: 2,
            heads: 2,
            intermediate: 32,
            vocab: 50,
            positions: 64,
            type_vocab: 2,
            ..BackboneDims::default()
        }
    }

    #[test]
    fn unknown_and_out_of_range_fields_are_named() {
        let v: serde_yaml::Value = serde_yaml::from_str("rank: 4").unwrap();
        let e = parse_config::<Cfg>(&v, &dims()).unwrap_err();
        assert_eq!(e.field, "rank");
        let v: serde_yaml::Value = serde_yaml::from_str("r: 0").unwrap();
        let e = parse_config::<Cfg>(&v, &dims()).unwrap_err();
        assert_eq!(e.field, "r");
        assert!(e.message.contains("at least 1"));
        let v: serde_yaml::Value = serde_yaml::from_str("r: many").unwrap();
        let e = parse_config::<Cfg>(&v, &dims()).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        assert_eq!(parse_config::<Cfg>(&serde_yaml::Value::Null, &dims()).unwrap().r, 8);
    }

    #[test]
    fn fields_left_out_come_from_the_base() {
        let base = Cfg { r: 2 };
        assert_eq!(parse_config_over::<Cfg>(&serde_yaml::Value::Null, &base, &dims()).unwrap().r, 2);
        let v: serde_yaml::Value = serde_yaml::from_str("{}").unwrap();
        assert_eq!(parse_config_over::<Cfg>(&v, &base, &dims()).unwrap().r, 2);
        let v: serde_yaml::Value = serde_yaml::from_str("r: 5").unwrap();
        assert_eq!(parse_config_over::<Cfg>(&v, &base, &dims()).unwrap().r, 5);
        let v: serde_yaml::Value = serde_yaml::from_str("[1, 2]").unwrap();
        assert!(parse_config_over::<Cfg>(&v, &base, &dims()).unwrap_err().message.contains("mapping"));
        let v: serde_yaml::Value = serde_yaml::from_str("q: 1").unwrap();
        assert_eq!(parse_config_over::<Cfg>(&v, &base, &dims()).unwrap_err().field, "q");
    }

    #[test]
    fn widths_read_as_sizes_or_reduction_factors() {
        let dims = BackboneDims { hidden: 384, ..Default::default() };
        let read = |t: &str| serde_yaml::from_str::<Width>(t);
        assert_eq!(read("48").unwrap(), Width::Fixed(48));
        assert_eq!(read("d/16").unwrap(), Width::Reduction(16));
        assert_eq!(read("d/ 32").unwrap().resolve(384), 12);
        for bad in ["d/", "d/x", "16/d", "half", "1.5"] {
            let err = read(bad).expect_err(bad).to_string();
            assert!(err.contains("d/r") || err.contains("integer"), "{bad}: {err}");
        }
        // A fixed size writes the plain integer it always was (old hashes hold); a factor writes `d/r`.
        assert_eq!(serde_yaml::to_string(&Width::Fixed(64)).unwrap().trim(), "64");
        assert_eq!(serde_yaml::to_string(&Width::Reduction(16)).unwrap().trim(), "d/16");
        assert_eq!(check_width("m", Width::Reduction(16), &dims), Ok(24));
        assert_eq!(check_width("m", Width::Reduction(0), &dims).unwrap_err().field, "m");
        assert_eq!(check_width("m", Width::Reduction(400), &dims).unwrap_err().field, "m");
        assert_eq!(check_width("m", Width::Fixed(0), &dims).unwrap_err().field, "m");
    }
}
