"""Loads adapters that `pelt export` wrote with the Python libraries and compares their logits with pelt's.

Each export folder holds the adapter in the library's own layout, pelt's task head
(`pelt_head.safetensors` + `pelt_head.json`) and a check batch (`pelt_check.safetensors`: 32 test
inputs with the logits pelt computed for them at the run's best dev step). This script

1. loads the backbone with transformers' AutoModel and the adapter with the library
   (`PeftModel.from_pretrained`, or `adapters.init` + `load_adapter`);
2. runs the check batch through it (eval mode), pools the final hidden states as pelt's head says
   (mean over every attended position, prompt positions included), applies the head;
3. reports the largest difference from pelt's logits, whether the predicted classes agree, and, as a
   control, how far the backbone *without* the adapter lands from them.

It runs in a venv with the library (never in the tests): peft in bench/compare/.venv (torch 2.13.0,
transformers 5.24.0, peft 0.21.2); AdapterHub's `adapters` 1.3.0 pins transformers 4.57.x, so it has its
own venv (scripts/reference/setup_adapters.sh). `just export-check` runs both and writes
results/export/check.json and check.md.

    python export_check.py {peft|adapterhub} BACKBONE OUT.json EXPORT_DIR...
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModel


def pooled_logits(hidden, mask, head, pooling):
    """pelt's head: mean over attended positions (or the first position), then a linear layer."""
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        m = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    return pooled @ head["weight"].T + head["bias"]


def run(model, check):
    with torch.no_grad():
        out = model(
            input_ids=check["input_ids"],
            attention_mask=check["attention_mask"],
            token_type_ids=check["token_type_ids"],
        ).last_hidden_state
    # peft's prompt tuning returns the virtual positions in front: extend the mask over them.
    extra = out.shape[1] - check["input_ids"].shape[1]
    mask = check["attention_mask"]
    if extra > 0:
        mask = torch.cat([torch.ones(mask.shape[0], extra, dtype=mask.dtype), mask], dim=1)
    return out, mask


def main():
    library, backbone, out_path, *dirs = sys.argv[1:]
    torch.manual_seed(0)
    results = []
    for d in map(Path, dirs):
        check = load_file(str(d / "pelt_check.safetensors"))
        head = load_file(str(d / "pelt_head.safetensors"))
        pooling = json.loads((d / "pelt_head.json").read_text())["pooling"]
        want = check["logits"]

        bare = AutoModel.from_pretrained(backbone).eval()
        hidden, mask = run(bare, check)
        control = (pooled_logits(hidden, mask, head, pooling) - want).abs().max().item()

        base = AutoModel.from_pretrained(backbone)
        if library == "peft":
            import peft

            model = peft.PeftModel.from_pretrained(base, str(d)).eval()
            config = json.loads((d / "adapter_config.json").read_text())
            kind, version = config["peft_type"], f"peft {peft.__version__}"
        else:
            import adapters

            adapters.init(base)
            name = base.load_adapter(str(d), use_safetensors=True)
            base.set_active_adapters(name)
            model = base.eval()
            config = json.loads((d / "adapter_config.json").read_text())["config"]
            kind = "par_bn" if config.get("is_parallel") else (
                "seq_bn" if config.get("original_ln_before") else "double_seq_bn")
            version = f"adapters {adapters.__version__}"
        hidden, mask = run(model, check)
        got = pooled_logits(hidden, mask, head, pooling)
        diff = (got - want).abs().max().item()
        agree = (got.argmax(-1) == want.argmax(-1)).float().mean().item()
        import transformers

        results.append({
            "export": d.name,
            "library": version,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "kind": kind,
            "examples": int(want.shape[0]),
            "max_abs_diff": diff,
            "class_agreement": agree,
            "control_without_adapter": control,
        })
        print(f"{d.name}: {version} {kind}: max |Δ logits| {diff:.2e} over {want.shape[0]} examples, "
              f"classes agree {agree:.0%}; without the adapter {control:.2e}")
    path = Path(out_path)
    previous = json.loads(path.read_text()) if path.exists() else []
    keep = [r for r in previous if r["export"] not in {r2["export"] for r2 in results}]
    path.write_text(json.dumps(keep + results, indent=2) + "\n")


if __name__ == "__main__":
    main()
