"""The training loop: one SAE, one data source, a weighted sum of losses, optional stages.

Per step: fetch this rank's batch -> forward (bf16 autocast on CUDA) -> weighted losses ->
backward (DDP all-reduces gradients) -> drop gradients of frozen groups -> remove the
decoder-parallel gradient -> clip -> Adam -> renormalize decoder -> dead-latent stats ->
callbacks. Everything that influences later steps is checkpointed, so ``--resume`` after
a crash ends bitwise equal to an uninterrupted run on CPU.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from hsae.callback import Callback
from hsae.data import DataSource, Shard
from hsae.engine import checkpoint as ckpt
from hsae.engine.device import autocast, pick_device, set_threads
from hsae.engine.distributed import DistInfo, all_reduce_sum, barrier
from hsae.engine.evaluate import evaluate, flatten
from hsae.engine.gradients import clip_divisor, remove_parallel_gradient, renormalize
from hsae.engine.optim import Adam
from hsae.engine.rundir import RunDir
from hsae.engine.schedule import lr_factor
from hsae.engine.schema import EvalConfig, Stage, TrainConfig
from hsae.errors import Problem, RecipeError, UserError
from hsae.loss import Loss, StepContext
from hsae.metric import Metric
from hsae.model import SAE
from hsae.progress import progress


def _located(part: object) -> AbstractContextManager[None]:
    """Errors of ``part`` located at its recipe table (when it was built from one)."""
    spec = getattr(part, "spec", None)
    return spec.locating() if spec is not None else nullcontext()


class Trainer:
    """Trains ``model`` on ``data`` and writes the run directory (rank 0)."""

    def __init__(
        self, *, model: SAE, data: DataSource, losses: dict[str, Loss], train: TrainConfig,
        metrics: dict[str, Metric] | None = None, callbacks: dict[str, Callback] | None = None,
        eval_cfg: EvalConfig = EvalConfig(), stages: tuple[Stage, ...] = (), run_dir: RunDir | None = None,
        dist: DistInfo = DistInfo(), sae_cfg_extra: dict[str, Any] | None = None,
        stages_path: str = "stages",
    ) -> None:
        self.model, self.data, self.cfg, self.eval_cfg = model, data, train, eval_cfg
        self.losses = nn.ModuleDict(losses)
        self.metrics = metrics or {}
        self.callbacks = nn.ModuleDict(callbacks or {})
        self.run_dir, self.dist = run_dir, dist
        self.sae_cfg_extra = sae_cfg_extra or {}
        self.device = pick_device(train.device, dist.local_rank)
        self.schedule = self._stage_schedule(stages, stages_path)
        self.step = 0
        self.steps_since_fired = torch.zeros(model.d_sae, dtype=torch.long)
        self._set_up = False

    # -- setup -------------------------------------------------------------------------

    def setup(self) -> None:
        """Run every loss's and callback's ``setup(model, data)`` once; errors are located at their tables."""
        if self._set_up:
            return
        for part in [*self.losses.values(), *self.callbacks.values()]:
            with _located(part):
                part.setup(self.model, self.data)
        self._set_up = True

    def _stage_schedule(self, stages: tuple[Stage, ...], path: str) -> list[tuple[int, int, Stage]]:
        groups = self.model.parameter_groups()
        problems = [
            Problem(f"no parameter group {name!r}; groups are {', '.join(groups)}", path=f"{path}[{i}].freeze")
            for i, stage in enumerate(stages) for name in stage.freeze if name not in groups
        ]
        if problems:
            raise RecipeError(problems)
        spans, start = [], 0
        for stage in stages:
            end = self.cfg.steps if stage.steps is None else start + stage.steps
            spans.append((start, end, stage))
            start = end
        if start < self.cfg.steps:
            spans.append((start, self.cfg.steps, Stage(name="rest" if stages else "")))
        return spans

    def stage_at(self, step: int) -> Stage:
        return next(stage for start, end, stage in self.schedule if start <= step < end)

    def _frozen(self, stage: Stage) -> list[nn.Parameter]:
        groups = self.model.parameter_groups()
        return [p for name in stage.freeze for p in groups[name]]

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam (``hsae.engine.optim``); the fused kernel (one vectorized pass per parameter) where torch has one for the device."""
        c = self.cfg
        params = list(self.model.parameters())
        try:
            return Adam(params, lr=c.lr, betas=(c.beta1, c.beta2), fused=True)
        except RuntimeError:  # a device or dtype without a fused kernel
            return Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

    # -- checkpoints ---------------------------------------------------------------------

    def _save(self, opt: torch.optim.Optimizer) -> None:
        if not (self.run_dir and self.dist.is_main):
            return
        opt_tensors, opt_rest = ckpt.flatten_optimizer(opt.state_dict())
        trainer = {"steps_since_fired": self.steps_since_fired, "rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            trainer["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        parts = {
            "model": self.model.state_dict(),
            "optimizer": opt_tensors,
            "losses": self.losses.state_dict(),
            "callbacks": self.callbacks.state_dict(),
            "trainer": trainer,
        }
        state = {"optimizer": opt_rest, "callbacks": {k: cb.extra_state() for k, cb in self.callbacks.items()}}
        ckpt.save_checkpoint(self.run_dir.checkpoints, self.step, parts, state, self.cfg.keep_checkpoints)

    def _restore(self, opt: torch.optim.Optimizer) -> bool:
        found = ckpt.list_checkpoints(self.run_dir.checkpoints) if self.run_dir else []
        if not found:
            return False
        parts, state = ckpt.load_checkpoint(found[-1], ["model", "optimizer", "losses", "callbacks", "trainer"])
        try:
            self.model.load_state_dict(parts["model"])
            opt.load_state_dict(ckpt.unflatten_optimizer(parts["optimizer"], state["optimizer"]))
            self.losses.load_state_dict(parts["losses"])
            self.callbacks.load_state_dict(parts["callbacks"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"{found[-1]}: checkpoint does not match this model ({exc})") from None
        for name, cb in self.callbacks.items():
            cb.load_extra_state(state["callbacks"].get(name, {}))
        self.steps_since_fired = parts["trainer"]["steps_since_fired"]
        torch.set_rng_state(parts["trainer"]["rng_cpu"])
        if "rng_cuda" in parts["trainer"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(parts["trainer"]["rng_cuda"], self.device)
        self.step = int(state["step"])
        return True

    # -- the loop ------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> dict[str, dict[str, float]]:
        """Train to ``train.steps`` and return the final evaluation."""
        c, model = self.cfg, self.model
        if self.device.type == "cpu":
            set_threads(c.threads)
        torch.manual_seed(c.seed + self.dist.rank)
        self.setup()
        model.to(self.device)
        self.losses.to(self.device)
        self.callbacks.to(self.device)
        opt = self._optimizer()
        if resume and self._restore(opt):
            model.to(self.device)
            if self.run_dir and self.dist.is_main:
                self.run_dir.truncate_log(self.step)
        else:
            if self.run_dir and self.dist.is_main:
                self.run_dir.create()
                self.run_dir.metrics_path.unlink(missing_ok=True)
            self._init_from_data()
        self.steps_since_fired = self.steps_since_fired.to(self.device)
        forward = model
        if self.dist.enabled:  # DDP starts every rank from rank 0's parameters
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, c.steps, c.lr_warmup_steps, c.lr_schedule, c.lr_end_fraction),
            last_epoch=self.step - 1 if self.step else -1,
        )
        unit_norm = model.unit_norm_parameters() if c.unit_norm_decoder else []
        shard = Shard(self.dist.rank, self.dist.world_size)
        local_batch = c.batch_size // self.dist.world_size
        if local_batch * self.dist.world_size != c.batch_size:
            raise UserError(f"train.batch_size = {c.batch_size} is not divisible by the {self.dist.world_size} processes")
        with_labels = any(loss.needs_labels for loss in self.losses.values())
        stream = self.data.batches(local_batch, start_step=self.step, shard=shard, with_labels=with_labels)
        writers = self._writers()
        bar = progress(c.steps, initial=self.step, enabled=c.progress and self.dist.is_main, desc=self._progress_name())
        model.train()
        try:
            self._loop(opt, sched, forward, stream, unit_norm, writers, bar)
        except KeyboardInterrupt:
            self._save(opt)  # Ctrl-C keeps the work done so far; --resume continues from here
            raise
        bar.close()
        self._save(opt)
        results = self._final(writers)
        for writer in writers:
            writer.close()
        return results

    def _init_from_data(self) -> None:
        """A fresh run's data-dependent start: a model with ``init_from_data(x)`` sees the first training batch.

        (The standard SAE sets ``b_dec`` from it.) Every rank reads the whole global batch,
        so all start alike and as a one-process run does. A resumed run restores those
        parameters instead.
        """
        init = getattr(self.model, "init_from_data", None)
        if init is None:
            return
        stream = self.data.batches(self.cfg.batch_size, start_step=0)
        batch = next(stream)
        stream.close()
        with torch.no_grad():
            init(batch.x.to(self.device))

    def _progress_name(self) -> str:
        """The run directory as a user would type it (``runs/t/seed-0/baseline`` of a multi-arm run)."""
        from hsae.run_summary import shown_path

        return shown_path(self.run_dir.root) if self.run_dir else "train"

    def _loop(self, opt, sched, forward, stream, unit_norm, writers, bar) -> None:
        """Steps from ``self.step`` to ``train.steps``."""
        c, model = self.cfg, self.model
        window: dict[str, torch.Tensor] = {}
        window_start, window_steps = time.perf_counter(), 0
        while self.step < c.steps:
            stage = self.stage_at(self.step)
            batch = next(stream).to(self.device, non_blocking=True)
            ctx = StepContext(self.step, c.steps, self.steps_since_fired >= c.dead_window_steps)
            active = {n: l for n, l in self.losses.items() if stage.losses is None or n in stage.losses}
            with autocast(self.device, c.precision):
                out = forward(batch.x)
                terms = {n: loss(batch, out, model, ctx).float() for n, loss in active.items()}
                total = sum(loss.weight(self.step) * terms[n] for n, loss in active.items())
            opt.zero_grad(set_to_none=True)
            total.backward()
            frozen = self._frozen(stage)
            for p in frozen:
                p.grad = None
            constrained = [(p, dim) for p, dim in unit_norm if not any(p is f for f in frozen)]
            remove_parallel_gradient(constrained)
            divisor = clip_divisor([p.grad for p in model.parameters() if p.grad is not None], c.grad_clip) if c.grad_clip else None
            opt.step(grad_divisor=divisor)
            sched.step()
            renormalize(constrained)
            with torch.no_grad():
                fired = all_reduce_sum(out.codes.fire_counts(), self.dist) > 0
                self.steps_since_fired.add_(1).masked_fill_(fired, 0)
                for cb in self.callbacks.values():
                    cb.on_step_end(batch, out, model, ctx)
                self._accumulate(window, total, terms, out)
            self.step += 1
            window_steps += 1
            bar.update(1)
            stage_ends = self.step == c.steps or self.stage_at(self.step) is not stage
            if self.step % c.log_every == 0 or stage_ends:  # a logged window never mixes stages
                elapsed = time.perf_counter() - window_start
                record = self._record(window, window_steps, elapsed, opt, stage)
                bar.set_postfix(loss=f"{record['loss']:.4g}", l0=f"{record['l0']:.1f}")
                self._emit(record, writers)
                window, window_start, window_steps = {}, time.perf_counter(), 0
            if c.eval_every and self.step % c.eval_every == 0 and self.step < c.steps:
                self._periodic_eval(writers)
            if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self._save(opt)
                barrier(self.dist)

    def _accumulate(self, window: dict[str, torch.Tensor], total: torch.Tensor, terms: dict[str, torch.Tensor], out) -> None:
        values = {"loss": total.detach(), "l0": out.codes.l0().mean(), **{f"loss/{n}": t.detach() for n, t in terms.items()}}
        for key, value in values.items():
            window[key] = window.get(key, 0) + value

    def _record(self, window, steps: int, elapsed: float, opt, stage: Stage) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step}
        record.update({k: float(v) / steps for k, v in window.items()})
        record["lr"] = opt.param_groups[0]["lr"]
        record["dead_fraction"] = float((self.steps_since_fired >= self.cfg.dead_window_steps).float().mean())
        record["samples_per_s"] = steps * self.cfg.batch_size / max(elapsed, 1e-9)
        if stage.name:
            record["stage"] = stage.name
        return record

    def _emit(self, record: dict[str, Any], writers) -> None:
        if not self.dist.is_main:
            return
        if self.run_dir:
            self.run_dir.log(record)
        for writer in writers:
            writer.write(record)

    def _periodic_eval(self, writers) -> None:
        if self.dist.is_main and self.metrics:
            results = evaluate(self.model, self.data, self.metrics, batches=self.eval_cfg.batches,
                               batch_size=self.eval_cfg.batch_size, device=self.device, step=self.step)
            self._emit({"step": self.step, **flatten(results)}, writers)
        barrier(self.dist)

    def _final(self, writers) -> dict[str, dict[str, float]]:
        results: dict[str, dict[str, float]] = {}
        if self.dist.is_main:
            out_dir = self.run_dir.root if self.run_dir else None
            if self.metrics:
                results = evaluate(self.model, self.data, self.metrics, batches=self.eval_cfg.batches,
                                   batch_size=self.eval_cfg.batch_size, device=self.device, out_dir=out_dir, step=self.step)
                self._emit({"step": self.step, **flatten(results)}, writers)
            if self.run_dir:
                from hsae.saving import saelens_cfg, saelens_state_dict

                cfg = saelens_cfg(self.model, self.data, extra=self.sae_cfg_extra)
                self.run_dir.write_model(saelens_state_dict(self.model), cfg)
                eval_config = {"batches": self.eval_cfg.batches, "batch_size": self.eval_cfg.batch_size,
                               "metrics": sorted(self.metrics), "step": self.step}
                self.run_dir.write_eval(results, eval_config, cfg)
        barrier(self.dist)
        return results

    def _writers(self) -> list[Any]:
        if not self.dist.is_main:
            return []
        from hsae.engine.loggers import make_writers

        return make_writers(self.cfg, self.run_dir)
