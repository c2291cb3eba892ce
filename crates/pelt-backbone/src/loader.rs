//! Loading Hugging Face safetensors checkpoints into a [`VarStore`] by name.

use pelt_core::{PeltError, Result};
use std::{collections::HashMap, path::Path};
use tch::{nn::VarStore, Kind, Tensor};

/// DistilBERT's layer names and BERT's, in the order they are tried.
const DISTILBERT_NAMES: [(&str, &str); 8] = [
    (".attention.q_lin.", ".attention.self.query."),
    (".attention.k_lin.", ".attention.self.key."),
    (".attention.v_lin.", ".attention.self.value."),
    (".attention.out_lin.", ".attention.output.dense."),
    (".sa_layer_norm.", ".attention.output.LayerNorm."),
    (".ffn.lin1.", ".intermediate.dense."),
    (".ffn.lin2.", ".output.dense."),
    (".output_layer_norm.", ".output.LayerNorm."),
];

/// MPNet's attention names and BERT's (its FFN and embeddings are named as BERT's already).
const MPNET_NAMES: [(&str, &str); 5] = [
    (".attention.attn.q.", ".attention.self.query."),
    (".attention.attn.k.", ".attention.self.key."),
    (".attention.attn.v.", ".attention.self.value."),
    (".attention.attn.o.", ".attention.output.dense."),
    (".attention.LayerNorm.", ".attention.output.LayerNorm."),
];

/// Maps a checkpoint tensor name onto pelt's: drops the model-class prefix that task checkpoints add
/// (`bert.`, `roberta.`, `electra.`, `distilbert.`, `mpnet.`), renames DistilBERT's layers
/// (`transformer.layer.N.q_lin` …) and MPNet's attention (`attention.attn.q` …) to BERT's, and old TF-era
/// LayerNorm names (`gamma`, `beta`).
fn canonical(name: &str) -> String {
    let prefixes = ["bert.", "roberta.", "electra.", "distilbert.", "mpnet.", "vit.", "model."];
    let name = prefixes.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name);
    let mpnet;
    let name = match MPNET_NAMES.iter().find(|(from, _)| name.contains(from)) {
        Some((from, to)) => {
            mpnet = name.replacen(from, to, 1);
            mpnet.as_str()
        }
        None => name,
    };
    let renamed;
    let name = match name.strip_prefix("transformer.layer.") {
        Some(rest) => {
            let mut layer = format!("encoder.layer.{rest}");
            if let Some((from, to)) = DISTILBERT_NAMES.iter().find(|(from, _)| layer.contains(from)) {
                layer = layer.replacen(from, to, 1);
            }
            renamed = layer;
            renamed.as_str()
        }
        None => name,
    };
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_owned()
    }
}

/// Copies every variable of `vs` from the safetensors file at `path`; a missing tensor or a shape
/// mismatch is an error naming the tensor. Tensors the model does not use (pooler, MLM head,
/// `position_ids` buffers) are ignored. Half-precision checkpoints are converted to the store's kind.
pub fn load_safetensors(vs: &VarStore, path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(PeltError::Weights { path: shown, message: "file not found (expected model.safetensors)".into() });
    }
    let err = |message: String| PeltError::Weights { path: shown.clone(), message };
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| err(format!("not a readable safetensors file: {e}")))?
        .into_iter()
        .map(|(n, t)| (canonical(&n), t))
        .collect();
    let mut names: Vec<_> = vs.variables().into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut var) in names {
            let src = tensors.get(&name).ok_or_else(|| err(format!("tensor `{name}` is missing")))?;
            if src.size() != var.size() {
                return Err(err(format!(
                    "tensor `{name}` has shape {:?}, the config implies {:?}",
                    src.size(),
                    var.size()
                )));
            }
            var.copy_(&src.to_kind(Kind::Float).to_device(var.device()));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn checkpoint_names_map_onto_model_names() {
        assert_eq!(
            canonical("bert.encoder.layer.0.attention.self.query.weight"),
            "encoder.layer.0.attention.self.query.weight"
        );
        assert_eq!(canonical("embeddings.LayerNorm.gamma"), "embeddings.LayerNorm.weight");
        assert_eq!(canonical("roberta.embeddings.LayerNorm.beta"), "embeddings.LayerNorm.bias");
        assert_eq!(canonical("pooler.dense.weight"), "pooler.dense.weight");
        assert_eq!(
            canonical("distilbert.transformer.layer.3.attention.q_lin.weight"),
            "encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(canonical("transformer.layer.0.ffn.lin2.bias"), "encoder.layer.0.output.dense.bias");
        assert_eq!(
            canonical("distilbert.transformer.layer.5.sa_layer_norm.weight"),
            "encoder.layer.5.attention.output.LayerNorm.weight"
        );
        assert_eq!(canonical("electra.embeddings_project.weight"), "embeddings_project.weight");
        assert_eq!(
            canonical("mpnet.encoder.layer.2.attention.attn.q.weight"),
            "encoder.layer.2.attention.self.query.weight"
        );
        assert_eq!(canonical("encoder.layer.0.attention.attn.o.bias"), "encoder.layer.0.attention.output.dense.bias");
        assert_eq!(
            canonical("encoder.layer.11.attention.LayerNorm.weight"),
            "encoder.layer.11.attention.output.LayerNorm.weight"
        );
        assert_eq!(canonical("encoder.relative_attention_bias.weight"), "encoder.relative_attention_bias.weight");
        // BERT's own attention names are left alone.
        assert_eq!(
            canonical("encoder.layer.0.attention.output.LayerNorm.bias"),
            "encoder.layer.0.attention.output.LayerNorm.bias"
        );
    }
}
