"""Python peft's outputs for the methods pelt implements after peft: DoRA, VeRA, LoHa, LoKr, (IA)³ and OFT
on a tiny random BERT, each adapter's values drawn off its init, so the Rust test checks the forward pass, not
only the identity at init.

Run once to produce crates/pelt-lowrank/tests/data/peft/ (the tiny BERT as an HF folder in bert/, and per
method <method>.safetensors holding the adapter under pelt's tensor names, the inputs and peft's last
hidden state; reference.json gives the versions and configs). The Rust test (tests/peft_reference.rs)
loads these with pelt and compares; the tests never run Python. Needs the side-by-side benchmark's venv:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/peft_methods.py
"""
import json
import pathlib
import re

import peft
import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-lowrank/tests/data/peft"

# peft module path -> pelt site.
SITES = [
    (r"attention\.self\.query$", "query"),
    (r"attention\.self\.key$", "key"),
    (r"attention\.self\.value$", "value"),
    (r"attention\.output\.dense$", "attention_output"),
    (r"intermediate\.dense$", "ffn_intermediate"),
    (r"(?<!attention\.)output\.dense$", "ffn_output"),
]

# peft parameter name (after the module path, adapter name dropped) -> pelt variable name.
NAMES = {
    "lora_A.weight": "lora_a",
    "lora_B.weight": "lora_b",
    "lora_magnitude_vector.weight": "magnitude",
    "vera_lambda_b": "lambda_b",
    "vera_lambda_d": "lambda_d",
    "hada_w1_a": "hada_w1_a",
    "hada_w1_b": "hada_w1_b",
    "hada_w2_a": "hada_w2_a",
    "hada_w2_b": "hada_w2_b",
    "lokr_w1": "lokr_w1",
    "lokr_w1_a": "lokr_w1_a",
    "lokr_w1_b": "lokr_w1_b",
    "lokr_w2": "lokr_w2",
    "lokr_w2_a": "lokr_w2_a",
    "lokr_w2_b": "lokr_w2_b",
    "ia3_l": "ia3_l",
    "oft_R.weight": "oft_r",
}

# pelt's config (the Rust test builds the method with it) beside peft's.
METHODS = {
    "dora": (
        {"r": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["query", "value"]},
        lambda: peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"], use_dora=True),
    ),
    "vera": (
        {"r": 8, "d_initial": 0.1, "targets": ["query", "value", "ffn_intermediate"]},
        lambda: peft.VeraConfig(r=8, d_initial=0.1, target_modules=["query", "value", "intermediate.dense"]),
    ),
    "loha": (
        {"r": 2, "alpha": 4.0, "targets": ["query", "value", "ffn_intermediate"]},
        lambda: peft.LoHaConfig(r=2, alpha=4, target_modules=["query", "value", "intermediate.dense"]),
    ),
    "lokr": (
        {"r": 1, "alpha": 2.0, "targets": ["query", "value", "ffn_intermediate"]},
        lambda: peft.LoKrConfig(r=1, alpha=2, target_modules=["query", "value", "intermediate.dense"]),
    ),
    "lokr_both": (
        {"r": 1, "alpha": 2.0, "decompose_both": True, "targets": ["ffn_intermediate", "ffn_output"]},
        lambda: peft.LoKrConfig(
            # A string is a full-match regex in peft (a list matches name suffixes): the FFN output is
            # `encoder.layer.<l>.output.dense`, not `attention.output.dense`.
            r=1, alpha=2, decompose_both=True, target_modules=r".*layer\.\d+\.(intermediate|output)\.dense"
        ),
    ),
    # The paper's sites: keys, values and the FFN activations (peft: the FFN output projection's input).
    "ia3": (
        {"sites": ["key", "value", "ffn_intermediate"]},
        lambda: peft.IA3Config(
            target_modules=r".*(key|value|layer\.\d+\.output\.dense)$",
            feedforward_modules=r".*layer\.\d+\.output\.dense$",
        ),
    ),
    "oft": (
        {"block_size": 4, "cayley": "neumann", "neumann_terms": 5, "targets": ["query", "value"]},
        lambda: peft.OFTConfig(r=0, oft_block_size=4, target_modules=["query", "value"], use_cayley_neumann=True),
    ),
    # peft's exact Cayley is (I − Q)(I + Q)⁻¹, the paper's (and pelt's) (I + Q)(I − Q)⁻¹: the Rust test
    # loads −Q.
    "oft_exact": (
        {"block_size": 4, "cayley": "exact", "targets": ["query", "value", "ffn_intermediate"]},
        lambda: peft.OFTConfig(
            r=0, oft_block_size=4, target_modules=["query", "value", "intermediate.dense"], use_cayley_neumann=False
        ),
    ),
}


def pelt_name(name):
    """`base_model.model.encoder.layer.1.attention.self.query.lora_A.default.weight` -> `layer.1.query.lora_a`."""
    m = re.search(r"encoder\.layer\.(\d+)\.(.+)$", name)
    layer, rest = m.group(1), m.group(2)
    rest = rest.replace(".default", "")
    for suffix, pelt in NAMES.items():
        if rest.endswith("." + suffix):
            module = rest[: -len(suffix) - 1]
            site = next(s for pattern, s in SITES if re.search(pattern, module))
            if pelt == "ia3_l" and site == "ffn_output":
                # (IA)³ on the FFN output projection's input rescales the FFN activations.
                site = "ffn_intermediate"
            return f"layer.{layer}.{site}.{pelt}"
    raise KeyError(name)


def main():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    base = BertModel(config, add_pooling_layer=False).eval()
    OUT.mkdir(parents=True, exist_ok=True)
    base.save_pretrained(OUT / "bert", safe_serialization=True)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    ids = torch.tensor([[5, 9, 13, 2, 7, 11, 3], [4, 8, 6, 12, 14, 0, 0]])
    mask = (ids != 0).long()
    configs = {}
    for method, (pelt_config, make) in METHODS.items():
        model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict(state)
        model = peft.get_peft_model(model, make())
        gen = torch.Generator().manual_seed(sum(map(ord, method)))
        tensors = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.requires_grad:
                    # Off the init (zeros included) but near it: DoRA's magnitudes stay positive.
                    p.add_(0.3 * torch.randn(p.shape, generator=gen))
                    # (IA)³ keeps (out, 1) or (1, in) vectors; pelt keeps them flat.
                    value = p.detach().clone()
                    tensors[pelt_name(name)] = (value.flatten() if "ia3_l" in name else value).contiguous()
            if method == "vera":
                tensors["shared.a"] = model.base_model.vera_A["default"].clone().contiguous()
                tensors["shared.b"] = model.base_model.vera_B["default"].clone().contiguous()
            model.eval()
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        tensors["input_ids"] = ids.clone()
        tensors["attention_mask"] = mask.clone()
        tensors["output"] = hidden.contiguous()
        save_file(tensors, OUT / f"{method}.safetensors")
        configs[method] = {"pelt": pelt_config, "peft": make().to_dict()}
    ref = {
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch": torch.__version__,
        "methods": configs,
    }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
