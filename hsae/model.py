"""The parts of a sparse autoencoder: Encoder, Router, Decoder, and the SAE they form.

Data flow of one forward pass::

    x --Encoder--> pre (B, d_sae) --Router--> codes (Codes) --Decoder--> x_hat (B, d_in)

``Codes`` is either dense or sparse (COO: rows, cols, values). Sparse routers (TopK,
BatchTopK) let the model decode by gathering only the selected decoder rows and let the
encoder's backward pass touch only the selected columns; that is where hsae's training
speed comes from.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from hsae.registry import Component


@attrs.define
class Codes:
    """Latent activations of a batch: dense ``(B, d_sae)`` or sparse COO triples."""

    n_rows: int
    d_sae: int
    values: torch.Tensor  # (B, d_sae) when dense, (nnz,) when sparse
    rows: torch.Tensor | None = None  # (nnz,) sample index of each value
    cols: torch.Tensor | None = None  # (nnz,) latent index of each value

    @classmethod
    def from_dense(cls, dense: torch.Tensor) -> "Codes":
        return cls(dense.shape[0], dense.shape[1], dense)

    @classmethod
    def from_sparse(cls, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int, d_sae: int) -> "Codes":
        return cls(n_rows, d_sae, values, rows, cols)

    @property
    def is_sparse(self) -> bool:
        return self.rows is not None

    def dense(self) -> torch.Tensor:
        """The ``(B, d_sae)`` matrix (materialized for sparse codes)."""
        if not self.is_sparse:
            return self.values
        out = self.values.new_zeros(self.n_rows, self.d_sae)
        return out.index_put((self.rows, self.cols), self.values)

    def active(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, cols)`` of the nonzero entries."""
        if self.is_sparse:
            keep = self.values != 0
            return self.rows[keep], self.cols[keep]
        rows, cols = torch.nonzero(self.values, as_tuple=True)
        return rows, cols

    # The per-step statistics below count nonzero entries in place rather than compacting
    # them first: boolean-mask indexing costs ~0.25 ms per call at 25,600 entries, the
    # counting ~0.05 ms, and the trainer takes both every step.

    def l0(self) -> torch.Tensor:
        """Number of active latents per sample, ``(B,)`` float."""
        if not self.is_sparse:
            return (self.values != 0).sum(1).float()
        nonzero = (self.values != 0).float()
        return nonzero.new_zeros(self.n_rows).index_add_(0, self.rows, nonzero)

    def fire_counts(self) -> torch.Tensor:
        """How many samples each latent fired on, ``(d_sae,)`` long."""
        if not self.is_sparse:
            return (self.values != 0).sum(0)
        return self.cols.new_zeros(self.d_sae).index_add_(0, self.cols, (self.values != 0).long())

    def restrict(self, n_latents: int) -> "Codes":
        """Only the first ``n_latents`` latents (Matryoshka prefixes); width stays ``d_sae``."""
        if self.is_sparse:
            keep = self.cols < n_latents
            return Codes(self.n_rows, self.d_sae, self.values[keep], self.rows[keep], self.cols[keep])
        mask = torch.arange(self.d_sae, device=self.values.device) < n_latents
        return Codes(self.n_rows, self.d_sae, self.values * mask)


@attrs.define
class SAEOutput:
    """Everything a forward pass produces that losses and metrics may need.

    ``pre`` holds the pre-activations (detached on the sparse path). ``extras`` carries
    architecture-specific tensors, e.g. H-SAE's top-level-only reconstruction.
    """

    x_hat: torch.Tensor
    codes: Codes
    pre: torch.Tensor | None = None
    extras: dict[str, Any] = attrs.field(factory=dict)


class Encoder(nn.Module, Component):
    """Maps inputs to pre-activations ``(B, d_sae)``."""

    kind: ClassVar[str] = "encoder"
    provides: ClassVar[frozenset[str]] = frozenset()  # capabilities a model built with this part gains

    def __init__(self, config: Any, *, d_in: int, d_sae: int) -> None:
        super().__init__()
        self.config, self.d_in, self.d_sae = config, d_in, d_sae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entries(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pre: torch.Tensor | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activations of ``x - shift`` at ``(rows, cols)`` only, with gradient: ``(nnz,)``.

        ``pre``, if given, holds those pre-activations already computed (without gradient);
        an encoder may take the selected values from it instead of recomputing them.
        """
        return self.forward(x if shift is None else x - shift)[rows, cols]


class Router(nn.Module, Component):
    """Decides which latents fire and with what value.

    Dense routers implement :meth:`forward`. Sparse routers also implement :meth:`select`,
    returning the ``(rows, cols)`` to keep, and :meth:`activate` on the kept values.
    """

    kind: ClassVar[str] = "router"
    provides: ClassVar[frozenset[str]] = frozenset()  # capabilities a model built with this part gains
    sparse: ClassVar[bool] = False

    def __init__(self, config: Any, *, d_sae: int) -> None:
        super().__init__()
        self.config, self.d_sae = config, d_sae

    def forward(self, pre: torch.Tensor) -> Codes:
        if not self.sparse:
            raise NotImplementedError
        with torch.no_grad():
            rows, cols = self.select(pre)
        return Codes.from_sparse(rows, cols, self.activate(pre[rows, cols]), pre.shape[0], self.d_sae)

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def saelens_fields(self) -> dict[str, Any]:
        """Router-specific keys of a SAELens ``cfg.json`` (``architecture``, ``k``...).

        The default says SAELens has no such activation (see :func:`saelens_incompatible`);
        a router with a SAELens counterpart names its architecture here.
        """
        return saelens_incompatible(f"sae-{self.name}", f"SAELens has no counterpart of the {self.name!r} router")

    def to_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's tensors (short names) with this router's state in SAELens' inference form."""
        return tensors

    def from_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`to_saelens_tensors`: saved tensors back to this router's own state."""
        return tensors


class Decoder(nn.Module, Component):
    """Maps codes back to the input space."""

    kind: ClassVar[str] = "decoder"
    provides: ClassVar[frozenset[str]] = frozenset()  # capabilities a model built with this part gains

    def __init__(self, config: Any, *, d_in: int, d_sae: int) -> None:
        super().__init__()
        self.config, self.d_in, self.d_sae = config, d_in, d_sae

    def forward(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        """Reconstruction; ``bias=False`` omits the output bias (residual modelling)."""
        raise NotImplementedError

    def directions(self) -> torch.Tensor:
        """One direction per latent, ``(d_sae, d_in)``."""
        raise NotImplementedError

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        """``(parameter, dim)`` pairs whose slices along ``dim`` are kept at unit norm."""
        return []


class SAE(nn.Module, Component):
    """A sparse autoencoder: the unit the trainer trains and metrics evaluate."""

    kind: ClassVar[str] = "model"
    architecture: ClassVar[str] = "custom"
    # What the forward pass and the model offer to losses, metrics and callbacks that declare
    # ``requires`` (an ``extras`` key, an attribute such as ``latent_parent``); checked at assembly.
    provides: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, *, d_in: int) -> None:
        super().__init__()
        self.config, self.d_in = config, d_in

    d_sae: int

    def forward(self, x: torch.Tensor) -> SAEOutput:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> Codes:
        return self.forward(x).codes

    def capabilities(self) -> frozenset[str]:
        """What this built model provides: ``provides``, plus its parts' where a model has parts."""
        return self.provides

    def decode(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def decoder_directions(self) -> torch.Tensor:
        """``(d_sae, d_in)``: what each latent writes (used by MCC, steering...)."""
        raise NotImplementedError

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        """Decoder parameters kept at unit norm, with the gradient's parallel part removed."""
        return []

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups that recipe stages can freeze (``freeze = ["decoder"]``)."""
        return {"all": list(self.parameters())}

    def saelens_cfg(self) -> dict[str, Any]:
        """Architecture keys of ``cfg.json``; the default marks the model as one SAELens cannot load."""
        return saelens_incompatible(self.architecture, f"SAELens has no counterpart of the {self.name!r} model")

    def to_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state dict (short names) as ``model.safetensors`` holds it: SAELens' inference form
        for architectures SAELens knows, unchanged otherwise."""
        return tensors

    def from_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`to_saelens_tensors`: ``model.safetensors`` back to this model's state (short names)."""
        return tensors


def saelens_incompatible(architecture: str, reason: str) -> dict[str, Any]:
    """``cfg.json`` keys of a model SAELens cannot load.

    ``architecture`` must be a name SAELens does not register (its loader then fails with
    ``KeyError: '<architecture>'`` instead of loading wrong weights); ``saelens_note`` tells
    the reader why and how to load the run instead.
    """
    return {
        "architecture": architecture,
        "saelens_compatible": False,
        "saelens_note": f"{reason}; SAELens cannot load this SAE: load it with hsae.load_sae(run_dir)",
    }
