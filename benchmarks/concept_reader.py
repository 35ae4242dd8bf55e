"""s4's streaming reader against seed 004's naive loader, on realistic sentence files.

The seed's ``load_all_sentences`` did ``np.load`` of every file and kept every array whole,
the [n_layers, n_tokens, d_sae] activations included, then took the final token;
``hsae_concepts.reader`` reads only the final-token slices. Both build the same
hidden-to-feature dataset (X: hidden states of one layer, y: one SAE latent of it), each in
its own subprocess so that peak RSS (``ru_maxrss``) is that loader's alone, on N files and
on 2N files (the 2N directory holds the N files plus N more, hard-linked, so disk use is 2N
files). The files are read once before timing, so both loaders run on a warm page cache.

    python benchmarks/concept_reader.py                 # 2,000 and 4,000 files, about 1.3 + 1.3 GB
    python benchmarks/concept_reader.py --files 500     # quicker

Default file shape: SmolLM2-135M's width (d = 576), 6 layers, 8-16 tokens a sentence, 1,536
SAE latents, dense float32 activations at ~1% density: about 0.65 MB a file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_loader(directory: Path, layer: int, feature: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed 004's loader: every file loaded whole and kept, then the final tokens picked out."""
    sentences = []
    for path in sorted(directory.glob("sentence_*.npz")):
        with np.load(path) as data:
            sentences.append({key: data[key] for key in data.files})
    x, y = [], []
    for s in sentences:
        final = np.flatnonzero(s["is_final_token"])[-1]
        position = list(s["layers"]).index(layer)
        x.append(s["hidden_states"][position, final])
        y.append(s["activations"][position, final, feature])
    return np.stack(x), np.asarray(y)


def streaming_reader(directory: Path, layer: int, feature: int) -> tuple[np.ndarray, np.ndarray]:
    from hsae_concepts.datasets import DatasetSpec, build_dataset  # imported before the clock starts

    dataset = build_dataset(directory, DatasetSpec("hidden-to-feature", target_layer=layer, target_feature=feature,
                                                   normalize="none"))
    return dataset.X, dataset.y


def measure(kind: str, directory: Path, layer: int, feature: int, check: Path | None) -> dict:
    """Run one loader in this process; time, peak RSS, and (optionally) save X and y for comparison."""
    if kind == "naive":
        loader = naive_loader
    else:
        import hsae_concepts.datasets  # noqa: F401 - its import is not the reader's work

        loader = streaming_reader
    start = time.perf_counter()
    x, y = loader(directory, layer, feature)
    seconds = time.perf_counter() - start
    if check is not None:
        np.savez(check, X=x, y=y)
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rows": int(len(x))}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's, kept across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_files(folder: Path, n: int, first: int, args: argparse.Namespace) -> None:
    from hsae_concepts.testing import write_sentence_dir

    write_sentence_dir(folder, n_sentences=n, first_index=first, layers=tuple(range(args.layers)), d=args.d,
                       d_sae=args.d_sae, fragments=(8, 16), seed=first, density=0.01)


def run_child(kind: str, directory: Path, check: Path) -> dict:
    command = [sys.executable, __file__, "--measure", kind, "--dir", str(directory), "--check", str(check)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm(directory: Path) -> None:
    for path in directory.iterdir():
        path.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="N: the smaller directory's files (default 2000)")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--d-sae", type=int, default=1536)
    parser.add_argument("--workdir", type=Path, help="where to write the files (default: a temporary folder, removed)")
    parser.add_argument("--measure", choices=("naive", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.dir, layer=3, feature=100, check=args.check)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="concept-reader-", dir=args.workdir))
    try:
        small, large = work / "n", work / "2n"
        start = time.perf_counter()
        write_files(large, 2 * args.files, 0, args)
        small.mkdir()
        for i in range(args.files):
            name = f"sentence_{i:06d}.npz"
            os.link(large / name, small / name)
        size = sum(p.stat().st_size for p in small.iterdir()) / 2**20
        print(f"wrote {2 * args.files} files ({size / args.files:.2f} MB each) in {time.perf_counter() - start:.0f} s")
        results = {}
        for label, directory in ((f"{args.files} files", small), (f"{2 * args.files} files", large)):
            warm(directory)
            row = {kind: run_child(kind, directory, work / f"{kind}.npz") for kind in ("stream", "naive")}
            a, b = np.load(work / "stream.npz"), np.load(work / "naive.npz")
            assert np.array_equal(a["X"], b["X"]) and np.array_equal(a["y"], b["y"]), "the loaders disagree"
            results[label] = row
            print(f"{label}: streaming {row['stream']['seconds']:.2f} s, {row['stream']['peak_rss_mb']:.0f} MB peak RSS; "
                  f"naive {row['naive']['seconds']:.2f} s, {row['naive']['peak_rss_mb']:.0f} MB "
                  f"-> {row['naive']['seconds'] / row['stream']['seconds']:.1f}x faster, "
                  f"{row['naive']['peak_rss_mb'] / row['stream']['peak_rss_mb']:.1f}x less memory")
        (n_row, n2_row) = results.values()
        for kind in ("stream", "naive"):
            growth = n2_row[kind]["peak_rss_mb"] / n_row[kind]["peak_rss_mb"]
            print(f"peak RSS growth when the files double, {kind}: {growth:.2f}x")
        print(json.dumps(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
