"""BatchTopK's inference threshold: a running average whose momentum warms up, so it does not lag early."""

from __future__ import annotations

import torch

from hsae.config.spec import RouterSpec
from hsae.plugins import get_registry
from hsae.saving import saelens_state_dict


def _router(**kw):  # noqa: ANN003, ANN202
    BatchTopK = get_registry().get("router", "batchtopk")
    return BatchTopK(BatchTopK.Config(k=4, **kw), d_sae=64)


def _feed(router, scale: float) -> float:  # noqa: ANN001
    """One training batch whose smallest selected activation is about ``scale``; returns it."""
    g = torch.Generator().manual_seed(int(scale * 1000))
    pre = scale * (1 + torch.rand(32, 64, generator=g))
    values = pre.reshape(-1).topk(4 * 32).values
    router.select(pre)
    return float(values.min())


def test_the_threshold_tracks_a_growing_activation_scale():
    router = _router()
    router.train()
    for step in range(160):  # the smallest selected activation grows 1 -> 17, as early in training
        smallest = _feed(router, 1 + step / 10)
    # A plain 0.999 average would still sit near the first values (~2.5); the warmed-up one is close.
    assert abs(float(router.threshold) - smallest) / smallest < 0.15
    assert int(router.threshold_updates) == 160


def test_the_momentum_warms_up_to_threshold_momentum():
    router = _router(threshold_momentum=0.99)
    assert router.momentum() == 0.1
    router.threshold_updates.fill_(10**6)
    assert router.momentum() == 0.99


def test_the_update_count_is_checkpointed_and_old_states_load():
    router = _router()
    router.train()
    for _ in range(3):
        _feed(router, 1.0)
    state = router.state_dict()
    assert int(state["threshold_updates"]) == 3
    fresh = _router()
    fresh.load_state_dict(state)
    assert int(fresh.threshold_updates) == 3 and torch.equal(fresh.threshold, router.threshold)
    old = {"threshold": state["threshold"]}  # written before the warm-up existed: counts as warmed up
    fresh.load_state_dict(old)
    assert fresh.momentum() == fresh.config.threshold_momentum
    fresh.load_state_dict({"threshold": torch.tensor(-1.0)})  # never learned: fresh
    assert int(fresh.threshold_updates) == 0


def test_the_saelens_file_has_no_update_count():
    SAE = get_registry().get("model", "sae")
    model = SAE(SAE.Config(d_sae=64, router=RouterSpec("batchtopk", get_registry().get("router", "batchtopk").Config(k=4))), d_in=16)
    model.train()
    model(torch.randn(32, 16))
    tensors = saelens_state_dict(model)
    assert "threshold_updates" not in tensors and tensors["threshold"].shape == (64,)
