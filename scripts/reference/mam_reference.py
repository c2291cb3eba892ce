"""He et al.'s own MAM parts (jxhe/unify-parameter-efficient-tuning, `petl/petl_factory.py`: `Prefix` and
`Adapter_Layer`) on fixed weights, for pelt's `mam_glue` to be checked against.

The official modules are imported from a checkout of that repository, given as the only argument; only the
two classes are used, built as the repository's RoBERTa GLUE path builds them (`exps/run_glue.sh`: prefix of
`attn_bn` positions through an MLP `--mid_dim` wide, a parallel adapter of `ffn_bn` at scalar 2 with the
"lora" init and no LayerNorm, dropout `hidden_dropout_prob`). Their weights are then drawn off their init with
a fixed seed, so that the check covers the forward pass and not only the zero at init. Writes
crates/pelt-mixtures/tests/data/mam/reference.safetensors: the weights under pelt's variable names, an input,
the prefix keys and values the official `Prefix` hands layer 0 and the last layer, and the official adapter's
output in evaluation (no dropout: the masks of two frameworks cannot be compared). The Rust test
(tests/mam_reference.rs) loads them and never runs Python. Needs the side-by-side benchmark's venv:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/mam_reference.py CHECKOUT
"""
import json
import pathlib
import sys
import types

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-mixtures/tests/data/mam"

# A tiny RoBERTa-shaped encoder: d = 16, 2 layers, 2 heads; MAM's GLUE sizes scaled down.
HIDDEN, LAYERS, HEADS = 16, 2, 2
PREFIX, MID, BOTTLENECK, SCALAR, DROPOUT = 4, 8, 4, 2.0, 0.1


def main(checkout: pathlib.Path) -> None:
    sys.path.insert(0, str(checkout))
    from petl.petl_factory import Adapter_Layer, Prefix  # noqa: E402  (the official code)
    from transformers import RobertaConfig

    torch.manual_seed(0)
    config = RobertaConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                           intermediate_size=32, hidden_dropout_prob=DROPOUT)
    args = types.SimpleNamespace(mid_dim=MID, attn_bn=PREFIX, prefix_dropout=0.0)
    prefix = Prefix(args, config).eval()
    adapter = Adapter_Layer(d_model=HIDDEN, dropout=config.hidden_dropout_prob, bottleneck=BOTTLENECK,
                            init_option="lora", adapter_scalar=str(SCALAR), adapter_layernorm_option="none").eval()
    # Off the init: the "lora" init zeroes the up-projection, which would make the adapter check vacuous.
    with torch.no_grad():
        for p in list(prefix.parameters()) + list(adapter.parameters()):
            p.copy_(torch.randn_like(p) * 0.3)

    x = torch.randn(2, 3, HIDDEN)
    with torch.no_grad():
        # The RoBERTa encoder's self-attention reads the `self` entry (its cache_key).
        states = prefix(bsz=2, nsamples=1, device="cpu")
        adapted = adapter(x, add_residual=False)
    head_dim = HIDDEN // HEADS
    out = {
        # pelt's PrefixModule names (under MAM's `prefix.`) and ParallelModule names (`adapter.layer.{l}.ffn_output.`).
        "prefix.embedding": prefix.wte.weight,
        "prefix.mlp_in_weight": prefix.control_trans[0].weight,
        "prefix.mlp_in_bias": prefix.control_trans[0].bias,
        "prefix.mlp_out_weight": prefix.control_trans[2].weight,
        "prefix.mlp_out_bias": prefix.control_trans[2].bias,
        "adapter.down_weight": adapter.down_proj.weight,
        "adapter.down_bias": adapter.down_proj.bias,
        "adapter.up_weight": adapter.up_proj.weight,
        "adapter.up_bias": adapter.up_proj.bias,
        "input": x,
        "adapter_output": adapted,
    }
    for layer in (0, LAYERS - 1):
        entry = states[layer]["self"]
        # (bsz·heads, P, head_dim) → (bsz, heads, P, head_dim), as pelt's prefix hands attention.
        out[f"keys.{layer}"] = entry["prev_key"].view(2, HEADS, PREFIX, head_dim)
        out[f"values.{layer}"] = entry["prev_value"].view(2, HEADS, PREFIX, head_dim)
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in out.items()}, str(OUT / "reference.safetensors"))
    commit = (checkout / ".git").exists() and _head(checkout)
    (OUT / "reference.json").write_text(json.dumps({
        "source": "jxhe/unify-parameter-efficient-tuning petl/petl_factory.py (Prefix, Adapter_Layer)",
        "commit": commit or "unknown",
        "torch": torch.__version__,
        "sizes": {"hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "prefix": PREFIX, "mid_dim": MID,
                  "bottleneck": BOTTLENECK, "scalar": SCALAR, "dropout": DROPOUT},
    }, indent=2) + "\n")


def _head(checkout: pathlib.Path) -> str:
    import subprocess
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mam_reference.py CHECKOUT (a checkout of jxhe/unify-parameter-efficient-tuning)")
    main(pathlib.Path(sys.argv[1]))
