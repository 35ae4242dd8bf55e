"""The verdicts of ``benchmarks/quality_per_minute.py``: the goal check and the seed combination.

Both read records such as the benchmark writes; they must be able to say "not met" and must
not let one seed decide an order.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def qpm():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("quality_per_minute", ROOT / "benchmarks" / "quality_per_minute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(lib: str, arch: str, mark: float, mcc: float, samples_per_s: float = 10_000.0, **extra) -> dict:  # noqa: ANN003
    return {"view": "memory", "lib": lib, "arch": arch, "lr": 3e-3, "mark": mark, "samples": int(mark * samples_per_s),
            "samples_per_s": samples_per_s, "mcc": mcc, "f1": extra.get("f1", mcc / 2), "explained_variance": 0.7,
            "l0": 25.0, **extra}


def _args(qpm):  # noqa: ANN001, ANN202
    return argparse.Namespace(axis="wall", views=("memory",))


def test_goal_reads_hsae_only_within_saelens_time_for_2m_samples(qpm):
    # SAELens BatchTopK at 20k samples/s needs 100 s for 2M samples.
    records = [_record("saelens", "batchtopk", m, 0.4, samples_per_s=20_000) for m in (30, 60, 120)]
    records += [_record("hsae", "topk", 60, 0.55), _record("hsae", "topk", 120, 0.9)]  # 120 s is past the budget
    lines = "\n".join(qpm.goal_lines(records, _args(qpm)))
    assert "| memory | 100 | topk at 60s" in lines and "| 0.550 |" in lines and "not met" in lines
    next(r for r in records if r["lib"] == "hsae" and r["mark"] == 60)["mcc"] = 0.61
    assert "| met |" in "\n".join(qpm.goal_lines(records, _args(qpm)))


def test_goal_says_so_when_no_hsae_mark_fits(qpm):
    records = [_record("saelens", "batchtopk", 1, 0.4, samples_per_s=10_000_000), _record("hsae", "topk", 1, 0.9)]
    assert "no hsae mark within it" in "\n".join(qpm.goal_lines(records, _args(qpm)))


def test_combine_orders_by_median_so_one_seed_cannot_decide(qpm, tmp_path):
    seeds = [(0.80, 0.70), (0.81, 0.71), (0.10, 0.99)]  # (matryoshka, batchtopk) MCC; the third seed is an outlier
    runs = []
    for i, (a, b) in enumerate(seeds):
        run = tmp_path / f"seed{i}"
        run.mkdir()
        lines = [json.dumps(_record("hsae", "matryoshka", 1e6, a)), json.dumps(_record("hsae", "batchtopk", 1e6, b))]
        (run / "results.jsonl").write_text("\n".join(lines) + "\n")
        runs.append(run)
    text = qpm.combine(runs, tmp_path / "out")
    assert "0.800 [0.100, 0.810]" in text  # median and range of matryoshka's MCC
    assert "| memory | hsae | 1e+06 | matryoshka > batchtopk | matryoshka > batchtopk |" in text
    assert (tmp_path / "out" / "combined.md").read_text().startswith("# 3 seeds")


def test_combine_names_a_folder_without_results(qpm, tmp_path):
    with pytest.raises(SystemExit, match="no such file: .*nowhere/results.jsonl"):
        qpm.combine([tmp_path / "nowhere"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
