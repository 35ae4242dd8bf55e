"""Device choice, CPU threads and mixed precision: CUDA when present, CPU otherwise."""

from __future__ import annotations

import contextlib
import os

import torch

from hsae.errors import UserError


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available; use device = \"auto\" or \"cpu\"")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.set_device(device)
    return device


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto`` or ``bf16``), fp32 elsewhere unless ``bf16`` is asked."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


THREADS_ENV = "HSAE_THREADS"


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads for training and return the number in use.

    ``threads`` (the recipe's ``train.threads``) wins; else the environment variable
    ``HSAE_THREADS``; else torch's own choice is kept (one thread per physical core, or
    ``OMP_NUM_THREADS`` when set), which suits a machine the run has to itself. On a
    machine shared with other jobs, fewer threads than cores is often faster: each
    thread of a matmul waits for the slowest one.
    """
    if threads is None and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise UserError(f"{THREADS_ENV} must be a positive integer, got {os.environ[THREADS_ENV]!r}") from None
    if threads is not None:
        if threads < 1:
            raise UserError(f"CPU threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()
