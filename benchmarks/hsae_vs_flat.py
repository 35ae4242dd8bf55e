"""Training cost per sample of an H-SAE vs a flat TopK SAE with the same number of latents.

Three models train on the same in-memory batches, one step of each in turn (so a change
of machine load hits all three alike):

* ``hsae``: the registry's ``hsae`` model (``m`` parents, ``a`` children each, subspace
  ``s``, top-``k`` parents) with its full objective: ``mse`` + ``hsae-top-mse`` +
  ``hsae-l1`` + ``hsae-ortho``. Children are computed for the ``k`` routed experts only.
* ``hsae-dense``: the same model through ``forward_dense``, the reference path that
  computes children for all ``m`` experts and then masks them: what gathering saves.
* ``flat``: the registry's ``sae`` model with the ``topk`` router and ``d_sae = m + m*a``
  latents, loss ``mse``, hsae's sparse TopK encoder/decoder path.

Matched: the total number of latents (``m + m*a``), and the L0 bound: an H-SAE sample
activates at most ``k`` parents and ``k`` children, so the flat SAE keeps ``2k`` latents
by default (``--flat-k``). The measured mean L0 of each model is printed.

One step is what the trainer does: forward, weighted losses, backward, removal of the
decoder-parallel gradient, global-norm clipping (0.75, the H-SAE paper's), Adam, decoder
renormalization. Inputs are L2-normalized (the H-SAE's convention): each is a
nonnegative combination of ``--active`` of ``--features`` random unit directions plus a
little noise.

``--equal-mcc``: cost at equal ground-truth quality. The models train (one step of each
in turn) on hsae's ``hierarchical-synthetic`` source (default: the CPU-scale SynthSAEBench
shape, 4096 features, d=256, 64 roots x 4 x depth 2; inputs L2-normalized for all, the
H-SAE's convention) and are scored every ``--eval-every`` steps by MCC (Hungarian mean
|cos| between decoder directions and the true features, hsae_synthetic's metric). Models:
the H-SAE, a flat TopK SAE with the same latent count, and flat TopK SAEs of the widths in
``--flat-widths`` (each at L0 ``--flat-k``). The target MCC is the lowest final MCC of all
models (so every model reaches it); for each model the report gives the samples and the
training CPU seconds (its own steps only: contention hits all alike) at which it first
reaches the target, and its CPU-time ratio to the H-SAE. The H-SAE paper claims ~1/4 of
the compute of a flat SAE of equal quality. Optional ``--flops`` counts are not used:
measured CPU time is the cost.

Run: ``python benchmarks/hsae_vs_flat.py`` (see ``--help``);
``python benchmarks/hsae_vs_flat.py --equal-mcc --threads 2`` (~8 min on 2 quiet cores;
``--steps``, ``--eval-every``, ``--flat-widths`` size it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from hsae.config.spec import LossSpec, RouterSpec
from hsae.data import Batch
from hsae.engine.gradients import remove_parallel_gradient, renormalize
from hsae.loss import StepContext
from hsae.plugins import get_registry


def make_pool(n: int, d_in: int, n_features: int, active: int, seed: int) -> torch.Tensor:
    """``(n, d_in)`` unit-norm rows, each a nonnegative mix of ``active`` random directions plus noise."""
    g = torch.Generator().manual_seed(seed)
    directions = F.normalize(torch.randn(n_features, d_in, generator=g), dim=1)
    idx = torch.randint(n_features, (n, active), generator=g)
    mags = 0.5 + torch.rand(n, active, generator=g)
    x = F.embedding_bag(idx, directions, per_sample_weights=mags, mode="sum")
    return F.normalize(x + 0.01 * torch.randn(n, d_in, generator=g), dim=1).contiguous()


class Runner:
    """One model, its losses and its optimizer: times one training step at a time."""

    def __init__(self, name: str, model, losses: list[str], forward, device: torch.device, clip: float,  # noqa: ANN001
                 lr: float = 5e-4) -> None:
        self.name, self.model, self.forward, self.device, self.clip = name, model.to(device), forward, device, clip
        self.losses = [LossSpec(n).build().to(device) for n in losses]
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
        self.unit_norm = model.unit_norm_parameters()
        self.times: list[float] = []
        self.l0: list[float] = []
        self.since_fired = torch.zeros(model.d_sae, dtype=torch.long, device=device)

    def dead(self) -> torch.Tensor | None:
        """Latents silent for 1000 steps (what the aux-k loss revives), as the trainer tracks them."""
        return self.since_fired >= 1000

    def step(self, x: torch.Tensor, step: int, record: bool) -> None:
        ctx = StepContext(step, 10**9, self.dead())
        batch = Batch(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = self.forward(x)
        total = sum(loss.weight(step) * loss(batch, out, self.model, ctx) for loss in self.losses)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        remove_parallel_gradient(self.unit_norm)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        renormalize(self.unit_norm)
        with torch.no_grad():
            self.since_fired.add_(1).masked_fill_(out.codes.fire_counts() > 0, 0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if record:
            self.times.append(time.perf_counter() - start)
            self.l0.append(float(out.codes.l0().mean()))


def ground_truth_source(seed: int):  # noqa: ANN201
    """The CPU-scale SynthSAEBench-shaped ``hierarchical-synthetic`` source (its ground truth included)."""
    from hsae.config.converter import make_converter

    Source = get_registry().get("data", "hierarchical-synthetic")
    cfg = make_converter().structure({
        "d_model": 256, "orthogonal_features": False, "feature_correlation": 0.0, "feature_scale_variation": 0.0,
        "hierarchy": {"n_features": 4096, "n_roots": 64, "branching_factor": 4, "depth": 2, "zipf_exponent": 0.5,
                      "max_prob": 0.4, "min_prob": 5e-4},
    }, Source.Config)
    return Source(cfg, seed=seed)


def mcc(model, truth: torch.Tensor) -> float:  # noqa: ANN001
    from hsae_synthetic.metrics import match

    return float(match(model.decoder_directions().detach(), truth).cosine.mean())


def equal_mcc(args: argparse.Namespace) -> None:
    m, a, s, k = args.parents, args.children, args.subspace, args.k
    flat_k = args.flat_k or 2 * k
    registry = get_registry()
    HSAE, ParentTopK = registry.get("model", "hsae"), registry.get("router", "parent-topk")
    FlatSAE, TopK = registry.get("model", "sae"), registry.get("router", "topk")
    device = torch.device(args.device)
    source = ground_truth_source(args.seed)
    truth = source.ground_truth().directions
    d = source.d_in
    torch.manual_seed(args.seed)
    runners = [Runner("hsae", hsae := HSAE(HSAE.Config(n_parents=m, subspace=s, n_children=a,
                      parent_router=RouterSpec("parent-topk", ParentTopK.Config(k=k))), d_in=d),
                      ["mse", "hsae-top-mse", "hsae-l1", "hsae-ortho"], None, device, 0.75, args.lr)]
    runners[0].forward = hsae
    for width in sorted({m + m * a, *args.flat_widths}):
        flat = FlatSAE(FlatSAE.Config(d_sae=width, router=RouterSpec("topk", TopK.Config(k=flat_k))), d_in=d)
        runners.append(Runner(f"flat-{width}", flat, ["mse", "auxk"], flat, device, 0.75, args.lr))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; data: {source.describe()}")
    print(f"hsae m={m} a={a} s={s} k={k} ({m + m * a} latents); flat TopK k={flat_k}; batch {args.batch}, lr {args.lr}, "
          f"{args.steps} steps, MCC every {args.eval_every}")
    stream = source.batches(args.batch)
    curves: dict[str, list[tuple[int, float, float]]] = {r.name: [] for r in runners}
    cpu = dict.fromkeys(curves, 0.0)
    for step in range(args.steps):
        x = F.normalize(next(stream).x, dim=1).to(device)
        for r in runners:
            t0 = time.process_time()
            r.step(x, step, record=False)
            cpu[r.name] += time.process_time() - t0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            for r in runners:
                curves[r.name].append(((step + 1) * args.batch, cpu[r.name], mcc(r.model, truth)))
            print(f"step {step + 1:>6}: " + "  ".join(f"{n} MCC {c[-1][2]:.3f} ({c[-1][1]:.0f} cpu s)"
                                                     for n, c in curves.items()), flush=True)
    target = min(c[-1][2] for c in curves.values())
    print(f"\ntarget MCC {target:.3f} (the lowest final MCC)")
    print(f"{'model':<12} {'final MCC':>9} {'samples to target':>18} {'CPU s to target':>16} {'CPU vs hsae':>12}")
    reach = {n: next((smp, c) for smp, c, q in curve if q >= target) for n, curve in curves.items()}
    for n, curve in curves.items():
        smp, c = reach[n]
        print(f"{n:<12} {curve[-1][2]:>9.3f} {smp:>18,} {c:>16.1f} {c / max(reach['hsae'][1], 1e-9):>11.2f}x")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-in", type=int, default=256)
    p.add_argument("--parents", type=int, default=256, help="m")
    p.add_argument("--children", type=int, default=16, help="a, child atoms per parent")
    p.add_argument("--subspace", type=int, default=4, help="s")
    p.add_argument("--k", type=int, default=8, help="parents kept per sample")
    p.add_argument("--flat-k", type=int, default=None, help="flat TopK k (default 2k: the H-SAE's L0 bound)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    p.add_argument("--skip-dense", action="store_true", help="do not time the dense reference path")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--equal-mcc", action="store_true", help="train on ground-truth data and compare cost at equal MCC")
    p.add_argument("--eval-every", type=int, default=100, help="--equal-mcc: steps between MCC scores")
    p.add_argument("--flat-widths", default="1024", type=lambda t: tuple(int(v) for v in t.split(",") if v),
                   help="--equal-mcc: flat TopK widths besides the H-SAE's latent count")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam lr of every model (--equal-mcc; timing mode uses 5e-4)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.equal_mcc:
        if args.steps == 20:  # timing mode's default is far too short to train
            args.steps = 1000
        equal_mcc(args)
        return
    device = torch.device(args.device)
    m, a, s, k, d = args.parents, args.children, args.subspace, args.k, args.d_in
    flat_k = args.flat_k or 2 * k

    registry = get_registry()
    HSAE, ParentTopK = registry.get("model", "hsae"), registry.get("router", "parent-topk")
    FlatSAE, TopK = registry.get("model", "sae"), registry.get("router", "topk")
    torch.manual_seed(args.seed)
    hsae = HSAE(HSAE.Config(n_parents=m, subspace=s, n_children=a,
                            parent_router=RouterSpec("parent-topk", ParentTopK.Config(k=k))), d_in=d)
    dense = HSAE(hsae.config, d_in=d)
    dense.load_state_dict(hsae.state_dict())
    flat = FlatSAE(FlatSAE.Config(d_sae=m + m * a, router=RouterSpec("topk", TopK.Config(k=flat_k))), d_in=d)
    hsae_losses = ["mse", "hsae-top-mse", "hsae-l1", "hsae-ortho"]
    runners = [Runner("hsae", hsae, hsae_losses, hsae, device, 0.75)]
    if not args.skip_dense:
        runners.append(Runner("hsae-dense", dense, hsae_losses, dense.forward_dense, device, 0.75))
    runners.append(Runner("flat", flat, ["mse"], flat, device, 0.75))

    n_pool = 8
    pool = make_pool(n_pool * args.batch, d, n_features=4 * (m + m * a), active=8, seed=args.seed).to(device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads")
    print(f"d_in={d} batch={args.batch}; hsae m={m} a={a} s={s} k={k} (d_sae={m + m * a}); "
          f"flat d_sae={m + m * a} k={flat_k}; {args.warmup} warmup + {args.steps} timed steps each, interleaved")
    for step in range(args.warmup + args.steps):
        x = pool[(step % n_pool) * args.batch : (step % n_pool + 1) * args.batch]
        for runner in runners:
            runner.step(x, step, record=step >= args.warmup)

    per_sample = {r.name: statistics.median(r.times) / args.batch * 1e6 for r in runners}
    print(f"{'model':<12} {'us/sample':>10} {'samples/s':>10} {'step ms':>8} {'IQR ms':>14} {'mean L0':>8}")
    for r in runners:
        q = statistics.quantiles(r.times, n=4) if len(r.times) > 1 else [r.times[0]] * 3
        print(f"{r.name:<12} {per_sample[r.name]:>10.2f} {1e6 / per_sample[r.name]:>10.0f} "
              f"{statistics.median(r.times) * 1e3:>8.1f} {q[0] * 1e3:>6.1f}-{q[2] * 1e3:<7.1f} {statistics.mean(r.l0):>8.2f}")
    print(f"ratio hsae / flat (time per sample): {per_sample['hsae'] / per_sample['flat']:.3f}")
    if "hsae-dense" in per_sample:
        print(f"ratio hsae-dense / hsae (what gathering saves): {per_sample['hsae-dense'] / per_sample['hsae']:.2f}")


if __name__ == "__main__":
    main()
