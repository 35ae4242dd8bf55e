"""ReLU router: the classic L1-penalized SAE (pair it with the ``l1`` loss)."""

from __future__ import annotations

import attrs
import torch

from hsae.model import Codes, Router


class ReLURouter(Router):
    """Every latent with a positive pre-activation fires (dense codes)."""

    name = "relu"

    @attrs.frozen
    class Config:
        """No keys."""

    def forward(self, pre: torch.Tensor) -> Codes:
        return Codes.from_dense(torch.relu(pre))

    def saelens_fields(self) -> dict:
        return {"architecture": "standard"}
