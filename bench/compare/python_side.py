"""The Python side of pelt's side-by-side step benchmark: Hugging Face transformers + peft on the same
weights (all-MiniLM-L6-v2, or all-mpnet-base-v2), the same batches and the same thread count as `pelt bench`. Prints one JSON
report (the fields of pelt's), or the fp32 matmul rate with --matmul.

Run by bench/compare/run.py in its own venv (bench/compare/setup.sh); never part of the tests.
"""

import argparse
import csv
import json
import random
import resource
import sys
import time

import torch
from torch import nn


def fixed_token(row: int, pos: int) -> int:
    """The token at (row, position) of the fixed batches: the same formula as pelt's `fixed_token`."""
    return 101 if pos == 0 else 1000 + (row * 7919 + pos * 104729) % 20000


class Classifier(nn.Module):
    """Encoder, mean pooling over real tokens, dropout 0.1, linear: pelt's ClassificationHead."""

    def __init__(self, encoder: nn.Module, hidden: int):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.linear = nn.Linear(hidden, 2)

    def forward(self, ids, mask, types):
        # MPNet has no segment embeddings (and its forward takes no token types).
        segments = {} if self.encoder.config.model_type == "mpnet" else {"token_type_ids": types}
        h = self.encoder(input_ids=ids, attention_mask=mask, **segments).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.linear(self.dropout(pooled))


class Bottleneck(nn.Module):
    """Houlsby's adapter as pelt builds it: m = 64, GELU, ±2σ truncated normal init with σ = 1e-3."""

    def __init__(self, d: int, m: int = 64, std: float = 1e-3):
        super().__init__()
        self.down = nn.Linear(d, m)
        self.up = nn.Linear(m, d)
        for lin in (self.down, self.up):
            nn.init.trunc_normal_(lin.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(lin.bias)

    def forward(self, h):
        return self.up(nn.functional.gelu(self.down(h)))


def add_houlsby(encoder: nn.Module, d: int) -> nn.ModuleList:
    """Adapters after each layer's attention-output and FFN-output projections (Δ added to the
    sublayer output before its residual and LayerNorm, as in pelt); the layers' LayerNorms train."""
    adapters = nn.ModuleList()
    for layer in encoder.encoder.layer:
        # BERT's attention output projection is `attention.output.dense`, MPNet's `attention.attn.o`.
        out = layer.attention.attn.o if hasattr(layer.attention, "attn") else layer.attention.output.dense
        for dense in (out, layer.output.dense):
            a = Bottleneck(d)
            adapters.append(a)
            dense.register_forward_hook(lambda _m, _i, out, a=a: out + a(out))
    for p in encoder.parameters():
        p.requires_grad_(False)
    for name, p in encoder.named_parameters():
        if name.startswith("encoder.layer.") and "LayerNorm" in name:
            p.requires_grad_(True)
    return adapters


def build(method: str, model_dir: str):
    from transformers import AutoModel

    try:
        encoder = AutoModel.from_pretrained(model_dir, attn_implementation="sdpa", add_pooling_layer=False)
    except (ValueError, ImportError):
        # A model class without a scaled-dot-product attention path (MPNet in some transformers
        # versions) runs its own attention.
        encoder = AutoModel.from_pretrained(model_dir, add_pooling_layer=False)
    d = encoder.config.hidden_size
    mpnet = encoder.config.model_type == "mpnet"
    extra = None
    if method == "full":
        pass
    elif method == "lora":
        from peft import LoraConfig, get_peft_model

        encoder = get_peft_model(
            encoder,
            LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["q", "v"] if mpnet else ["query", "value"]),
        )
    elif method == "houlsby":
        extra = add_houlsby(encoder, d)
    elif method == "prefix_tuning":
        from peft import PrefixTuningConfig, TaskType, get_peft_model

        if mpnet:
            # peft hands the prefix to the model as past_key_values, which MPNetModel takes and ignores:
            # the step would run without the prefix and no gradient would reach it (checked with peft
            # 0.21.2, transformers 5.24.0), so there is no Python prefix row to compare against.
            sys.exit("python side: peft's prefix tuning does not reach MPNet's attention (MPNetModel ignores "
                     "past_key_values, so no gradient reaches the prefix)")

        # pelt's defaults: 10 positions, reparameterised by an MLP of width 512.
        encoder = get_peft_model(
            encoder,
            PrefixTuningConfig(
                task_type=TaskType.FEATURE_EXTRACTION,
                num_virtual_tokens=10,
                prefix_projection=True,
                encoder_hidden_size=512,
            ),
        )
    else:
        sys.exit(f"python side: unknown method {method}")
    model = Classifier(encoder, d)
    if extra is not None:
        model.adapters = extra
    model.train()
    return model


def fixed_batches(batch: int, length: int, count: int):
    ids = torch.tensor([[fixed_token(r, p) for p in range(length)] for r in range(batch)])
    labels = torch.tensor([r % 2 for r in range(batch)])
    return [(ids, torch.ones_like(ids), torch.zeros_like(ids), labels) for _ in range(count)]


def sst2_batches(glue_dir: str, model_dir: str, batch: int, count: int):
    """The first batch × count SST-2 training sentences in a seeded random order, padded to the longest
    of each batch: what a DataLoader with DataCollatorWithPadding gives."""
    from tokenizers import Tokenizer

    with open(f"{glue_dir}/SST-2/train.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : 1 + batch * count]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(128)
    enc = tok.encode_batch([r[0] for r in rows])
    labels = [int(r[1]) for r in rows]
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    out = []
    for b in range(count):
        idx = order[b * batch : (b + 1) * batch]
        length = max(len(enc[i].ids) for i in idx)
        ids = torch.zeros(len(idx), length, dtype=torch.long)
        mask = torch.zeros(len(idx), length, dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(enc[i].ids)
            ids[row, :n] = torch.tensor(enc[i].ids)
            mask[row, :n] = 1
        out.append((ids, mask, torch.zeros_like(ids), torch.tensor([labels[i] for i in idx])))
    return out


def eval_batches(lengths, rows: int = 64, tokens: int = 2048):
    """pelt's evaluation batches (pelt_train::batch::eval_batches): positions sorted by length (stable),
    each batch at most `rows` examples and `tokens` padded tokens."""
    out, current = [], []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        cap = rows if lengths[i] == 0 else min(rows, max(1, tokens // lengths[i]))
        if len(current) + 1 > cap:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def sst2_dev(glue_dir: str, model_dir: str, batching: str):
    """The SST-2 dev set as padded batches: `trainer` = 8 at a time in file order (Trainer's
    per_device_eval_batch_size and sequential sampler, DataCollatorWithPadding), `pelt` = pelt's."""
    from tokenizers import Tokenizer

    with open(f"{glue_dir}/SST-2/dev.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(128)
    enc = tok.encode_batch([r[0] for r in rows])
    lengths = [len(e.ids) for e in enc]
    if batching == "trainer":
        groups = [list(range(i, min(i + 8, len(enc)))) for i in range(0, len(enc), 8)]
    else:
        groups = eval_batches(lengths)
    out = []
    for idx in groups:
        length = max(lengths[i] for i in idx)
        ids = torch.zeros(len(idx), length, dtype=torch.long)
        mask = torch.zeros(len(idx), length, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : lengths[i]] = torch.tensor(enc[i].ids)
            mask[row, : lengths[i]] = 1
        out.append((ids, mask, torch.zeros_like(ids)))
    return out, len(enc)


def run_eval(args):
    """Median seconds of a forward pass over the SST-2 dev set in eval mode under inference_mode, the
    predictions read back: what Trainer.evaluate computes, without its metric code."""
    torch.manual_seed(0)
    model = build(args.method, args.model)
    model.eval()
    batches, n = sst2_dev(args.eval, args.model, args.eval_batches)
    times = []
    for p in range(args.warmup + args.steps):
        t = time.perf_counter()
        with torch.inference_mode():
            for ids, mask, types in batches:
                model(ids, mask, types).argmax(-1).tolist()
        if p >= args.warmup:
            times.append(time.perf_counter() - t)
    median = sorted(times)[len(times) // 2]
    print(
        json.dumps(
            {
                "side": "python",
                "method": args.method,
                "batches": args.eval_batches,
                "median_pass_s": median,
                "examples_per_s": n / median,
                "examples": n,
                "padded_tokens": sum(int(ids.numel()) for ids, _, _ in batches),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "threads": torch.get_num_threads(),
            }
        )
    )


def matmul_gflops(n: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    with torch.no_grad():
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n**3 / times[reps // 2] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method")
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--len", type=int, default=128)
    ap.add_argument("--sst2")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--matmul", action="store_true")
    ap.add_argument("--eval", help="time evaluation passes over this GLUE folder's SST-2 dev set instead")
    ap.add_argument("--eval-batches", default="trainer", choices=["trainer", "pelt"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N) for the training steps")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="autocast dtype of the training steps (fp16 with torch.amp.GradScaler), as pelt's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.matmul:
        print(json.dumps({"side": "python", "matmul_gflops": matmul_gflops(), "threads": torch.get_num_threads()}))
        return
    if args.eval:
        run_eval(args)
        return
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.method, args.model).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler(device.type) if args.precision == "fp16" else None
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    total = args.warmup + args.steps
    if args.sst2:
        batches = sst2_batches(args.sst2, args.model, args.batch, total)
    else:
        batches = fixed_batches(args.batch, args.len, total)
    loss_fn = nn.CrossEntropyLoss()
    times, shapes = [], []
    for i, (ids, mask, types, labels) in enumerate(batches):
        ids, mask, types, labels = (x.to(device) for x in (ids, mask, types, labels))
        sync()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(ids, mask, types), labels)
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        loss.item()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            shapes.append(list(ids.shape))
    total_s = sum(times)
    examples = sum(s[0] for s in shapes)
    print(
        json.dumps(
            {
                "side": "python",
                "method": args.method,
                "batches": "sst2" if args.sst2 else "fixed",
                "median_step_s": sorted(times)[len(times) // 2],
                "examples_per_s": examples / total_s,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "trainable": sum(p.numel() for p in params),
                "shapes": shapes,
                "threads": torch.get_num_threads(),
                "device": str(device),
                "precision": args.precision,
            }
        )
    )


if __name__ == "__main__":
    main()
