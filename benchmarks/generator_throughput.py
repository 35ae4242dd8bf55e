"""Generator throughput on the SynthSAEBench-16k shape: hsae vs SAELens vs a naive per-sample walk.

Shape: 16,384 features, d_model 768, 128 roots, branching 4, depth 3, all mutually
exclusive, Zipf exponent 0.5 from 0.4 to 5e-4 with SAELens's probability compensation
(true L0 about 34.5); binary magnitudes, no feature correlation, no orthogonalization.

* hsae: ``SyntheticWorld.sample`` (vectorized, level by level, sparse; returns ``x`` and the
  sparse true activations);
* SAELens: ``SyntheticModel.sample`` on the same configuration (skipped when ``sae_lens``
  is not importable);
* naive: the seed's generator, which walks the tree root to leaf separately for every
  sample in Python, then multiplies the dense activations by the directions.

Each contender runs in its own subprocess so its peak RSS is its own. Run::

    PYTHONPATH=.:plugins /work/benchvenv/bin/python benchmarks/generator_throughput.py
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

import numpy as np
import torch

BATCH = 4096


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, min_seconds: float, min_calls: int) -> tuple[float, int]:
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    return time.perf_counter() - start, calls


def _hsae_world():
    from hsae_synthetic import HierarchyConfig, SyntheticWorld, Tree, generate_hierarchy

    tree = Tree(generate_hierarchy(HierarchyConfig()))
    return SyntheticWorld(tree, d_model=768, orthogonal_features=False, feature_correlation=0.0,
                          feature_scale_variation=0.0, noise_level=0.0, seed=42)


def run_hsae(batch: int, seconds: float) -> dict:
    t0 = time.perf_counter()
    world = _hsae_world()
    build = time.perf_counter() - t0
    gen = np.random.default_rng(0)
    out = {}

    def step():
        out["b"] = world.sample(batch, gen)

    elapsed, calls = _timed(step, seconds, 5)
    acts_elapsed, acts_calls = _timed(lambda: world.sampler.sample(batch, gen), seconds / 2, 5)
    l0 = out["b"].activations.l0().mean().item()
    return {"name": "hsae", "samples_per_s": batch * calls / elapsed, "build_s": build, "batches": calls,
            "activations_only_samples_per_s": batch * acts_calls / acts_elapsed, "l0_last_batch": l0,
            "analytic_l0": world.tree.expected_l0(), "peak_rss_mb": _peak_rss_mb()}


def run_saelens(batch: int, seconds: float) -> dict:
    try:
        from sae_lens.synthetic import (HierarchyConfig, SyntheticModel, SyntheticModelConfig,
                                        ZipfianFiringProbabilityConfig)
    except ImportError as exc:
        return {"name": "saelens", "skipped": f"sae_lens not importable ({exc})"}
    cfg = SyntheticModelConfig(
        num_features=16384, hidden_dim=768,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=0.5, max_prob=0.4, min_prob=5e-4),
        hierarchy=HierarchyConfig(total_root_nodes=128, branching_factor=4, max_depth=3,
                                  mutually_exclusive_portion=1.0, compensate_probabilities=True),
        seed=42,
    )
    t0 = time.perf_counter()
    model = SyntheticModel(cfg)
    build = time.perf_counter() - t0
    torch.manual_seed(0)
    elapsed, calls = _timed(lambda: model.sample(batch), seconds, 2)
    _, feats = model.sample_with_features(batch)
    return {"name": "saelens", "samples_per_s": batch * calls / elapsed, "build_s": build, "batches": calls,
            "l0_last_batch": (feats > 0).sum(1).float().mean().item(), "peak_rss_mb": _peak_rss_mb()}


def run_naive(n_samples: int) -> dict:
    """The seed's approach: a Python walk from the root for every sample, then a dense matmul."""
    world = _hsae_world()
    tree = world.tree
    children = [list(range(s, s + c)) for s, c in zip(tree.child_start.tolist(), tree.child_count.tolist())]
    prob, exclusive, feature = tree.prob.tolist(), tree.exclusive.tolist(), tree.feature.tolist()
    directions = world.directions.numpy()
    rng = random.Random(0)

    def walk(node: int, acts: np.ndarray) -> None:
        if feature[node] >= 0:
            acts[feature[node]] = 1.0
        kids = children[node]
        if exclusive[node]:
            u, cum = rng.random(), 0.0
            for child in kids:
                cum += prob[child]
                if u < cum:
                    walk(child, acts)
                    break
        else:
            for child in kids:
                if rng.random() < prob[child]:
                    walk(child, acts)

    def generate(n: int) -> np.ndarray:
        acts = np.zeros((n, tree.n_features), dtype=np.float32)
        for i in range(n):
            if rng.random() < prob[0]:
                walk(0, acts[i])
        return acts @ directions

    generate(10)
    start = time.perf_counter()
    generate(n_samples)
    elapsed = time.perf_counter() - start
    return {"name": "naive", "samples_per_s": n_samples / elapsed, "samples_timed": n_samples,
            "peak_rss_mb": _peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--seconds", type=float, default=10.0, help="minimum timed seconds per contender")
    parser.add_argument("--naive-samples", type=int, default=300)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    parser.add_argument("--only", choices=["hsae", "saelens", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        result = {"hsae": lambda: run_hsae(args.batch_size, args.seconds),
                  "saelens": lambda: run_saelens(args.batch_size, args.seconds),
                  "naive": lambda: run_naive(args.naive_samples)}[args.only]()
        result["torch_threads"] = torch.get_num_threads()
        print(json.dumps(result))
        return

    results = {}
    for name in ("hsae", "saelens", "naive"):
        cmd = [sys.executable, __file__, "--only", name, "--batch-size", str(args.batch_size),
               "--seconds", str(args.seconds), "--naive-samples", str(args.naive_samples)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results[name] = {"name": name, "skipped": f"failed: {proc.stderr.strip().splitlines()[-1:]}"}
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"SynthSAEBench-16k shape (16384 features, d=768, 128 roots x branching 4 x depth 3, all exclusive, "
          f"Zipf 0.5 from 0.4 to 5e-4, compensated), batch {args.batch_size}, "
          f"torch threads {next((r['torch_threads'] for r in results.values() if 'torch_threads' in r), '?')}")
    print(f"{'generator':<10} {'samples/s':>12} {'peak RSS MB':>12}  notes")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<10} {'skipped':>12} {'':>12}  {r['skipped']}")
            continue
        notes = []
        if "l0_last_batch" in r:
            notes.append(f"L0 of last batch {r['l0_last_batch']:.2f}")
        if "analytic_l0" in r:
            notes.append(f"analytic L0 {r['analytic_l0']:.2f}")
        if "activations_only_samples_per_s" in r:
            notes.append(f"activations alone {r['activations_only_samples_per_s']:,.0f}/s")
        if "build_s" in r:
            notes.append(f"build {r['build_s']:.1f} s, {r['batches']} batches timed")
        if "samples_timed" in r:
            notes.append(f"{r['samples_timed']} samples timed")
        print(f"{name:<10} {r['samples_per_s']:>12,.0f} {r['peak_rss_mb']:>12,.0f}  {'; '.join(notes)}")
    hsae = results["hsae"].get("samples_per_s")
    for other in ("saelens", "naive"):
        if hsae and "samples_per_s" in results[other]:
            print(f"hsae / {other}: {hsae / results[other]['samples_per_s']:,.1f}x")


if __name__ == "__main__":
    main()
