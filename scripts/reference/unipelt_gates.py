"""UniPELT's own gated parts (morningmoni/UniPELT: `lora_layers.py`'s `LoRA_Linear` with `add_gate`, and
`transformers/adapters/modeling.py`'s `Adapter` with `add_gate`) on fixed weights, for pelt's UniPELT gates
to be checked against.

Both files are loaded by path from a checkout of that repository, given as the only argument; they import
nothing but torch. Their weights are drawn off their init with a fixed seed. Each runs on an input of 7
positions and on its first 5: the reference averages a gate over every position it is given (it pads every
batch to 128 and averages the padding in), so the 7-position output is what pelt's `gate_pooling:
all_positions` must give when the last 2 positions are padding, and the 5-position output what its default
`real_tokens` must give. Writes crates/pelt-mixtures/tests/data/unipelt/reference.safetensors; the Rust
test (tests/unipelt_reference.rs) never runs Python. The prefix gate is inline in the repository's
`modeling_bert.py` (one `torch.mean(torch.sigmoid(...), dim=1)` on the attention input, as the two checked
here) and cannot be imported without its transformers fork; pelt's own tests cover it. Needs the
side-by-side benchmark's venv:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/unipelt_gates.py CHECKOUT
"""
import importlib.util
import json
import pathlib
import subprocess
import sys

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-mixtures/tests/data/unipelt"
HIDDEN, RANK, BOTTLENECK, REAL, PADDED = 16, 2, 4, 5, 7


def load(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(checkout: pathlib.Path) -> None:
    lora_layers = load(checkout / "lora_layers.py", "unipelt_lora_layers")
    adapters = load(checkout / "transformers/adapters/modeling.py", "unipelt_adapter_modeling")
    torch.manual_seed(0)
    # UniPELT's LoRA on a projection: r = 2, no dropout, unmerged (a merged LoRA_Linear drops the gate).
    lora = lora_layers.LoRA_Linear(HIDDEN, HIDDEN, r=RANK, lora_alpha=RANK, lora_dropout=0.0, merge_weights=False,
                                   add_gate=True)
    # UniPELT's adapter: Pfeiffer's (ReLU, no adapter LayerNorm, residual before the LayerNorm), gated.
    adapter = adapters.Adapter(HIDDEN, down_sample=BOTTLENECK, non_linearity="relu", init_bert_weights=True,
                               add_layer_norm_before=False, add_layer_norm_after=False, residual_before_ln=True,
                               add_gate=True)
    with torch.no_grad():
        for p in list(lora.parameters()) + list(adapter.parameters()):
            p.copy_(torch.randn_like(p) * 0.3)
    # Training mode: the unmerged path (dropout is 0 for LoRA; the adapter has none).
    lora.train()
    adapter.train()
    x = torch.randn(2, PADDED, HIDDEN)
    out = {
        "input": x,
        "lora_a": lora.lora_A, "lora_b": lora.lora_B,
        "lora_gate_weight": lora.lora_gate.weight, "lora_gate_bias": lora.lora_gate.bias,
        "adapter_down_weight": adapter.adapter_down[0].weight, "adapter_down_bias": adapter.adapter_down[0].bias,
        "adapter_up_weight": adapter.adapter_up.weight, "adapter_up_bias": adapter.adapter_up.bias,
        "adapter_gate_weight": adapter.gate.weight, "adapter_gate_bias": adapter.gate.bias,
    }
    with torch.no_grad():
        for name, length in (("all", PADDED), ("real", REAL)):
            part = x[:, :length]
            base = torch.nn.functional.linear(part, lora.weight, lora.bias)
            # The gated LoRA delta: the layer's output less the frozen projection.
            out[f"lora_delta_{name}"] = lora(part) - base
            gated, _, _, gate = adapter(part, torch.zeros_like(part), return_gate_output=True)
            out[f"adapter_delta_{name}"] = gated
            out[f"adapter_gate_{name}"] = gate
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in out.items()}, str(OUT / "reference.safetensors"))
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    (OUT / "reference.json").write_text(json.dumps({
        "source": "morningmoni/UniPELT lora_layers.py (LoRA_Linear, add_gate) and "
                  "transformers/adapters/modeling.py (Adapter, add_gate)",
        "commit": commit or "unknown",
        "torch": torch.__version__,
        "sizes": {"hidden": HIDDEN, "rank": RANK, "bottleneck": BOTTLENECK, "real": REAL, "padded": PADDED},
    }, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: unipelt_gates.py CHECKOUT (a checkout of morningmoni/UniPELT)")
    main(pathlib.Path(sys.argv[1]))
