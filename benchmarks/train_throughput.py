"""Training throughput of a TopK SAE: hsae vs SAELens, side by side, in one process.

Both libraries train the same shape (default 768 -> 4096, k = 25, batch 1024) on the same
in-memory data in fp32 (``--precision bf16``: both under bf16 autocast, fp32 weights) with Adam (lr 3e-4, betas 0.9/0.999, constant schedule),
gradient-norm clipping at 1.0 (hard-coded in SAELens' trainer; hsae's recipe sets
``grad_clip = 1.0``, its default being no clipping) and their own default decoder-norm
handling for TopK:

* hsae: the real ``hsae.engine.trainer.Trainer`` built from a recipe string through
  ``hsae.config.loads_recipe`` + ``hsae.engine.assemble.assemble`` (losses ``mse`` +
  ``auxk``; unit-norm decoder rows: the gradient's parallel part is removed and the rows
  are renormalized after every Adam step). The data source is an in-memory
  ``DataSource`` registered as a plugin for this process only.
* SAELens: ``TopKTrainingSAE`` (``rescale_acts_by_decoder_norm = True``, its default:
  activations are scaled by the decoder row norms, so the decoder behaves as if unit norm;
  aux-k loss on) driven by ``SAETrainer.step``, i.e. the exact body of ``SAETrainer.fit``'s
  loop (``maybe_reset_sparsity`` -> ``step`` -> ``_checkpoint_if_needed``), which is
  ``training_forward_pass`` -> firing statistics -> backward -> ``clip_grad_norm_(1.0)``
  -> ``Adam.step`` -> ``zero_grad`` -> lr scheduler. Logging/wandb/progress bar are off.

Aux-k: both compute it only when some latent is dead. A latent is dead after
``--dead-window`` steps without firing (hsae ``dead_window_steps = W``; SAELens
``dead_feature_window = W - 1`` because it uses ``>`` where hsae uses ``>=``). With the
default window (1000, both libraries' default) no latent can be dead within a short
benchmark, so the aux-k term is the cheap "nothing is dead" check in both; pass e.g.
``--dead-window 1`` to time the case where aux-k runs on every step. Both use
``k_aux = d_in // 2`` (capped by the number of dead latents); they scale the loss
differently (hsae: coefficient 1/32, divided by the residual's variance; SAELens:
coefficient 1, times ``min(n_dead / k_aux, 1)``), which does not change the work.

Threads: hsae's default (``hsae.engine.device.set_threads``: ``HSAE_THREADS`` if set,
else torch's one per core); ``--threads N`` sets both libraries' threads.

Data: ``--pool`` batches of synthetic sparse activations (each sample is a nonnegative
combination of ``--active`` of ``--features`` random unit directions plus a little
noise), generated once in memory before any timing; steps cycle through the pool.

FLOPs (multiply-add = 2 FLOPs; elementwise work, TopK and Adam not counted):

* "dense-equivalent" (effective): what a dense SAE step needs, 12 * d_in * d_sae per
  sample: encoder forward, decoder forward, and in backward the decoder weight gradient,
  the gradient into the codes, the encoder weight gradient and the encoder input gradient
  (needed for ``b_dec``, which is subtracted from the input). This is what SAELens runs.
* "performed" (hsae): the dense encoder forward (needed to pick the top k) plus the
  sparse work, 2 * d_in * d_sae + 8 * k * d_in per sample (4 sparse products of k rows:
  decoder forward, decoder weight gradient, code gradient, encoder weight gradient), plus
  one ``d_in x d_sae`` matrix-vector product per step (the ``b_dec`` gradient).

The machine's dense matmul rate (fp32, or bf16 with ``--precision bf16``) is measured here: ``--peak-repeats`` timed
(batch x d_in) @ (d_in x d_sae) matmuls before every run; "peak" is the best of them and
"median matmul" their median (on a shared machine the median reflects the conditions the
runs saw).

Timing: the two libraries run interleaved, one training step of each in turn (SAELens
step i runs inside hsae's batch fetch, outside hsae's timing, right before hsae step i),
so a change of machine load hits both alike. ``--rounds`` repeats this with fresh models.
Reported: median step time over all timed steps per library, and the median (and
quartiles) of the step-by-step ratios. ``--only`` runs one library alone.

Run: ``python benchmarks/train_throughput.py`` (see ``--help``); needs ``sae-lens``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F


# -- data ----------------------------------------------------------------------------------


def make_pool(n: int, d_in: int, n_features: int, active: int, seed: int) -> torch.Tensor:
    """``(n, d_in)`` fp32: each row a nonnegative combination of ``active`` random unit directions."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_features, d_in, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)
    idx = torch.randint(n_features, (n, active), generator=g)
    mags = 0.5 + torch.rand(n, active, generator=g)
    x = F.embedding_bag(idx, directions, per_sample_weights=mags, mode="sum")
    return (x + 0.01 * torch.randn(n, d_in, generator=g)).contiguous()


# -- measurement helpers --------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(batch: int, d_in: int, d_sae: int, repeats: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> list[float]:
    """Dense GFLOP/s of each of ``repeats`` timed ``(batch x d_in) @ (d_in x d_sae)`` matmuls in ``dtype``."""
    a = torch.randn(batch, d_in, device=device, dtype=dtype)
    b = torch.randn(d_in, d_sae, device=device, dtype=dtype)
    out = torch.empty(batch, d_sae, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        rates.append(2 * batch * d_in * d_sae / (time.perf_counter() - t0) / 1e9)
    return rates


# -- hsae -----------------------------------------------------------------------------------


def _memory_source_plugin(pool: torch.Tensor):
    """A plugin object registering an in-memory DataSource serving rows of ``pool``.

    The trainer fetches a batch first thing in each step; the source calls its
    ``on_fetch(step)`` hook right before handing the batch over, which is where the
    benchmark takes its timestamps (and, interleaved, runs the SAELens step).
    """
    import attrs

    from hsae.data import Batch, DataSource, Shard
    from hsae.hookspecs import hookimpl

    class MemorySource(DataSource):
        """Batches sliced from a tensor held in memory (benchmark only)."""

        name = "bench-memory"

        @attrs.frozen
        class Config:
            """No keys: the tensor is given by the benchmark."""

        pool_tensor: torch.Tensor = pool
        on_fetch = None  # set by the benchmark: called with the step index before each batch

        @property
        def d_in(self) -> int:
            return self.pool_tensor.shape[1]

        def batches(self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
                    with_labels: bool = False) -> Iterator[Batch]:
            pool = self.pool_tensor
            n_batches = pool.shape[0] // batch_size
            views = [pool[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]
            step = start_step
            while True:
                if self.on_fetch is not None:
                    self.on_fetch(step)
                yield Batch(views[step % n_batches])
                step += 1

    class Plugin:
        @hookimpl
        def hsae_register(self, registry) -> None:  # noqa: ANN001
            registry.add(MemorySource)

    return Plugin(), MemorySource


HSAE_RECIPE = """
[data]
type = "bench-memory"

[model]
type = "sae"
d_sae = {d_sae}
router = {{ type = "topk", k = {k} }}

[losses.mse]
type = "mse"

[losses.auxk]
type = "auxk"

[metrics]

[train]
steps = {total}
batch_size = {batch}
lr = 3e-4
beta1 = 0.9
beta2 = 0.999
grad_clip = 1.0
unit_norm_decoder = true
dead_window_steps = {dead_window}
device = "{device}"
precision = "{precision}"
seed = {seed}
log_every = {total}
checkpoint_every = 0
progress = false
"""

_HSAE_SOURCE = None


def build_hsae(args: argparse.Namespace, pool: torch.Tensor, device: torch.device):
    """A fresh hsae Trainer for ``warmup + steps`` steps, and its data source."""
    global _HSAE_SOURCE
    from hsae.config import loads_recipe
    from hsae.engine.assemble import assemble
    from hsae.plugins import get_manager

    if _HSAE_SOURCE is None:
        plugin, _HSAE_SOURCE = _memory_source_plugin(pool)
        get_manager().register(plugin)
    text = HSAE_RECIPE.format(
        d_sae=args.d_sae, k=args.k, total=args.warmup + args.steps, batch=args.batch,
        dead_window=args.dead_window, device=device.type, seed=args.seed, precision=args.precision,
    )
    recipe = loads_recipe(text, file="<train_throughput>")
    data = recipe.config.data.build(seed=args.seed)
    return assemble(recipe.config, data=data), data


def run_hsae(args: argparse.Namespace, pool: torch.Tensor, device: torch.device, between=None) -> list[float]:  # noqa: ANN001
    """Seconds of each of the ``args.steps`` timed hsae steps (after ``args.warmup`` untimed ones).

    ``between(step)``, if given, runs before each hsae step, outside its timing.
    """
    trainer, source = build_hsae(args, pool, device)
    times: list[float] = []
    start = None

    def on_fetch(step: int) -> None:
        nonlocal start
        sync(device)
        if start is not None:
            times.append(time.perf_counter() - start)
        if between is not None:
            between(step)
        sync(device)
        start = time.perf_counter() if step >= args.warmup else None

    source.on_fetch = on_fetch
    trainer.fit()
    sync(device)
    times.append(time.perf_counter() - start)  # the last step ends when fit returns (no eval, no files)
    return times


# -- SAELens --------------------------------------------------------------------------------


def build_saelens(args: argparse.Namespace, device: torch.device):
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(args.seed)
    cfg = TopKTrainingSAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device=str(device),
        use_sparse_activations=args.saelens_sparse,
    )
    sae = TopKTrainingSAE(cfg)
    total = args.warmup + args.steps
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total * args.batch, train_batch_size_samples=args.batch,
        lr=3e-4, lr_end=3e-5, adam_beta1=0.9, adam_beta2=0.999, device=str(device), autocast=args.precision == "bf16",
        dead_feature_window=args.dead_window - 1,
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=iter(()))
    trainer.sae.to(device)
    return trainer


def saelens_stepper(args: argparse.Namespace, pool: torch.Tensor, device: torch.device):  # noqa: ANN201
    """A function running one SAELens training step and returning its seconds."""
    trainer = build_saelens(args, device)
    n_batches = pool.shape[0] // args.batch
    views = [pool[i * args.batch:(i + 1) * args.batch] for i in range(n_batches)]

    def one_step() -> float:  # SAETrainer.fit's loop body with wandb logging and the progress bar off
        sync(device)
        t0 = time.perf_counter()
        trainer.maybe_reset_sparsity()
        trainer.step(views[trainer.n_training_steps % n_batches])
        trainer._checkpoint_if_needed()
        trainer.n_training_steps += 1
        sync(device)
        return time.perf_counter() - t0

    return one_step


def run_saelens(args: argparse.Namespace, pool: torch.Tensor, device: torch.device) -> list[float]:
    """Seconds of each of ``args.steps`` SAELens steps, after ``args.warmup`` untimed ones."""
    one_step = saelens_stepper(args, pool, device)
    for _ in range(args.warmup):
        one_step()
    return [one_step() for _ in range(args.steps)]


def run_interleaved(args: argparse.Namespace, pool: torch.Tensor, device: torch.device) -> dict[str, list[float]]:
    """Both libraries, one step of each in turn: SAELens step i runs right before hsae step i.

    A change of machine load then hits both alike, and step i of each can be compared.
    """
    one_step = saelens_stepper(args, pool, device)
    saelens_times: list[float] = []

    def between(step: int) -> None:
        seconds = one_step()
        if step >= args.warmup:
            saelens_times.append(seconds)

    hsae_times = run_hsae(args, pool, device, between=between)
    return {"hsae": hsae_times, "saelens": saelens_times}


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--rounds", type=int, default=2, help="runs with fresh models")
    p.add_argument("--d-in", type=int, default=768)
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--k", type=int, default=25)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--pool", type=int, default=8, help="distinct in-memory batches cycled through")
    p.add_argument("--features", type=int, default=8192, help="synthetic ground-truth directions")
    p.add_argument("--active", type=int, default=32, help="synthetic directions active per sample")
    p.add_argument("--dead-window", type=int, default=1000,
                   help="steps without firing before a latent counts as dead (aux-k runs only with dead latents)")
    p.add_argument("--saelens-sparse", action="store_true", help="SAELens use_sparse_activations=True (default False)")
    p.add_argument("--only", choices=("both", "hsae", "saelens"), default="both")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: hsae's default: HSAE_THREADS, else torch's)")
    p.add_argument("--peak-repeats", type=int, default=10, help="timed matmuls before each run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: both libraries train under bf16 autocast (hsae precision = \"bf16\", SAELens autocast=True)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.dead_window < 1:
        raise SystemExit("--dead-window must be >= 1")
    from hsae.engine.device import set_threads

    set_threads(args.threads or None)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    pool = make_pool(args.pool * args.batch, args.d_in, args.features, args.active, args.seed).to(device)

    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}")
    print(f"TopK SAE {args.d_in} -> {args.d_sae}, k={args.k}, batch {args.batch}, {args.precision}; {args.warmup} warmup + "
          f"{args.steps} timed steps x {args.rounds} round(s); dead window {args.dead_window}")

    names = ["hsae", "saelens"] if args.only == "both" else [args.only]
    times: dict[str, list[float]] = {n: [] for n in names}
    rates: list[float] = []  # the matmul rate, sampled before every round (same conditions as the runs)
    for r in range(args.rounds):
        rates += measure_peak(args.batch, args.d_in, args.d_sae, args.peak_repeats, device,
                              torch.bfloat16 if args.precision == "bf16" else torch.float32)
        if args.only == "both":
            got = run_interleaved(args, pool, device)
        else:
            got = {args.only: (run_hsae if args.only == "hsae" else run_saelens)(args, pool, device)}
        for name in names:
            times[name] += got[name]
        print(f"  round {r + 1}: " + ", ".join(
            f"{name} median {1e3 * statistics.median(got[name]):.1f} ms/step" for name in names))

    # Medians over all timed steps: robust to other processes briefly taking the cores.
    dense_flops = 12 * args.d_in * args.d_sae * args.batch
    hsae_flops = (2 * args.d_in * args.d_sae + 8 * args.k * args.d_in) * args.batch + 2 * args.d_in * args.d_sae
    peak, peak_median = max(rates), statistics.median(rates)
    print(f"dense {args.precision} matmul ({args.batch}x{args.d_in})@({args.d_in}x{args.d_sae}): peak (best of {len(rates)}) "
          f"{peak:.1f} GFLOP/s, median {peak_median:.1f} GFLOP/s")
    result: dict[str, float] = {"peak_gflops": peak, "peak_median_gflops": peak_median}
    for name in names:
        step_s = statistics.median(times[name])
        result[f"{name}_step_ms"] = 1e3 * step_s
        result[f"{name}_samples_per_s"] = args.batch / step_s
        result[f"{name}_best_step_ms"] = 1e3 * min(times[name])
        result[f"{name}_effective_gflops"] = dense_flops / step_s / 1e9
        print(f"{name:8s} {result[f'{name}_samples_per_s']:8.0f} samples/s  (median {1e3 * step_s:.1f} ms/step "
              f"over {len(times[name])} steps; fastest step {result[f'{name}_best_step_ms']:.1f} ms)")
    if "hsae" in names:
        step_s = result["hsae_step_ms"] / 1e3
        result["hsae_performed_gflops"] = hsae_flops / step_s / 1e9
        print(f"hsae     effective {result['hsae_effective_gflops']:.1f} GFLOP/s (dense-equivalent {dense_flops / 1e9:.1f} "
              f"GFLOP/step) = {result['hsae_effective_gflops'] / peak:.2f}x the matmul peak "
              f"({result['hsae_effective_gflops'] / peak_median:.2f}x the median matmul); performed "
              f"{result['hsae_performed_gflops']:.1f} GFLOP/s ({hsae_flops / 1e9:.2f} GFLOP/step) = "
              f"{result['hsae_performed_gflops'] / peak:.0%} of peak ({result['hsae_performed_gflops'] / peak_median:.0%})")
    if "saelens" in names:
        print(f"saelens  {result['saelens_effective_gflops']:.1f} GFLOP/s (dense, {dense_flops / 1e9:.1f} GFLOP/step) "
              f"= {result['saelens_effective_gflops'] / peak:.0%} of the matmul peak "
              f"({result['saelens_effective_gflops'] / peak_median:.0%} of the median matmul)")
    if len(names) == 2:
        result["ratio"] = result["hsae_samples_per_s"] / result["saelens_samples_per_s"]
        paired = [s / h for h, s in zip(times["hsae"], times["saelens"])]
        result["paired_ratio"] = statistics.median(paired)
        print(f"ratio hsae / saelens samples/s: {result['ratio']:.2f}x (medians); step by step: median "
              f"{result['paired_ratio']:.2f}x, quartiles {statistics.quantiles(paired, n=4)[0]:.2f}-"
              f"{statistics.quantiles(paired, n=4)[2]:.2f}")
    return result


if __name__ == "__main__":
    main()
