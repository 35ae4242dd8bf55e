"""Named hook points in any Hugging Face model, captured with forward hooks.

A hook point is one of:

* ``hidden:L``: the residual stream / hidden state as transformers numbers it in
  ``output_hidden_states`` (``0`` = embedding output, ``L`` = input of block ``L``, the
  number of layers = the model's final hidden state, after any final norm);
* ``resid:L``: the residual stream after ``L`` blocks, never normed: the same site as
  ``hidden:L`` for ``L`` below the number of layers, and for ``L`` = the number of layers the
  output of the last block, *before* the final norm (GPT-2's ``ln_f``) that ``hidden:L`` includes;
* ``module:<path>``: the output of any submodule (``model.named_modules()`` name, e.g.
  ``encoder.layer.3.output`` or ``transformer.h.1.mlp``); a tuple output gives its first item.

:func:`run_to_hook` runs a forward pass only as far as the hook: the hook stores the tensor
and raises :class:`StopForward`, which ends the pass, so the layers after it (and an LM head)
are never computed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch
from torch import nn


class StopForward(Exception):
    """Raised inside a hook once the activation is captured, to end the forward pass early."""


@attrs.frozen
class HookPoint:
    """Where to read: ``module``'s input (``pre``) or output, and how to describe it."""

    spec: str
    module: nn.Module
    pre: bool


def n_layers(model: nn.Module) -> int:
    config = model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    raise ValueError(f"cannot tell how many layers {type(model).__name__} has")


def find_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks (the shortest-named ModuleList of n_layers modules)."""
    n = n_layers(model)
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if not found:
        raise ValueError(f"no list of {n} transformer blocks in {type(model).__name__}; use module:<path>")
    return min(found, key=lambda item: (item[0].count("."), len(item[0])))[1]


def check_spec(spec: str) -> str | None:
    """A problem with a hook spec's syntax, or None (no model needed)."""
    kind, sep, arg = spec.partition(":")
    if not sep or kind not in ("hidden", "resid", "module"):
        return f"hook {spec!r}: expected hidden:<layer>, resid:<layer> or module:<path>"
    if kind in ("hidden", "resid") and not (arg.isdigit() or arg == "last"):
        return f"hook {spec!r}: the layer must be a number (or last)"
    if kind == "module" and not arg:
        return f"hook {spec!r}: module:<path> needs a path"
    return None


def resolve(model: nn.Module, spec: str) -> HookPoint:
    """The module and side to hook for ``spec`` (see the module docstring)."""
    problem = check_spec(spec)
    if problem:
        raise ValueError(problem)
    kind, _, arg = spec.partition(":")
    if kind == "module":
        modules = dict(model.named_modules())
        if arg not in modules:
            close = [n for n in modules if n.endswith(arg.split(".")[-1])][:3]
            raise ValueError(f"hook {spec!r}: no module {arg!r} in {type(model).__name__}"
                             + (f" (similar: {', '.join(close)})" if close else ""))
        return HookPoint(spec, modules[arg], pre=False)
    n = n_layers(model)
    layer = n if arg == "last" else int(arg)
    if not 0 <= layer <= n:
        raise ValueError(f"hook {spec!r}: layer must be in [0, {n}] for this model")
    if layer == n and kind == "resid":  # the last block's output, before the final norm
        return HookPoint(spec, find_blocks(model)[n - 1], pre=False)
    if layer == n:  # the final hidden state is the base model's output (after any final norm)
        return HookPoint(spec, model.base_model, pre=False)
    return HookPoint(spec, find_blocks(model)[layer], pre=True)


def first_tensor(value: Any) -> torch.Tensor:
    """The hidden-state tensor inside a module's output or input."""
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    if isinstance(value, (tuple, list)) and value:
        return first_tensor(value[0])
    if isinstance(value, dict) and "hidden_states" in value:
        return value["hidden_states"]
    raise TypeError(f"cannot find a tensor in {type(value).__name__}")


@contextlib.contextmanager
def hooked(point: HookPoint, sink: Callable[[torch.Tensor], torch.Tensor | None], *, stop: bool) -> Iterator[None]:
    """Call ``sink(activation)`` at ``point``; a tensor it returns replaces the activation
    (for splicing); ``stop`` ends the forward pass right after."""

    def pre_hook(module, args, kwargs):  # noqa: ANN001
        value = args[0] if args else kwargs["hidden_states"]
        new = sink(value)
        if stop:
            raise StopForward
        if new is None:
            return None
        return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

    def post_hook(module, args, output):  # noqa: ANN001
        new = sink(first_tensor(output))
        if stop:
            raise StopForward
        if new is None:
            return None
        return _replace_first(output, new)

    if point.pre:
        handle = point.module.register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:
        handle = point.module.register_forward_hook(post_hook)
    try:
        yield
    finally:
        handle.remove()


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    if hasattr(output, "last_hidden_state"):
        output.last_hidden_state = new
        return output
    if isinstance(output, tuple):
        return (new, *output[1:])
    raise TypeError(f"cannot replace the activation inside {type(output).__name__}")


def run_to_hook(model: nn.Module, point: HookPoint, **inputs: torch.Tensor) -> torch.Tensor:
    """The activation at ``point`` for ``inputs``; the forward pass stops there."""
    box: list[torch.Tensor] = []
    with hooked(point, lambda t: box.append(t) or None, stop=True):
        try:
            model(**inputs)
        except StopForward:
            pass
    if not box:
        raise RuntimeError(f"hook {point.spec!r} was never reached")
    return box[0]
