"""Initializer: start the slot SAE's decoder bias (and optionally its slot directions) at the data's means."""

from __future__ import annotations

import itertools

import attrs
import torch

from hsae.config.bounds import PositiveInt
from hsae.initializer import Initializer
from hsae_bios.slots.labels import split_labels


class SlotMeanInit(Initializer):
    """Set the slot-sae's b_dec to the mean of a few training batches; optionally each slot direction to its rule's mean.

    Residual-stream activations sit far from the origin (GPT-2's have a few coordinates in
    the tens), which a decoder bias trained from zero at lr 1e-3 needs thousands of steps to
    reach; SAEs usually start b_dec at the data's mean or geometric median. ``slot_means``
    also starts slot i's direction at (mean of rule i) - b_dec, i.e. at the reconstruction
    ceiling: a supervised shortcut, off by default.
    """

    name = "slot-mean-init"

    @attrs.frozen
    class Config:
        """batches: training batches averaged (from step 0)
        batch_size: rows per batch
        slot_means: also set each slot's decoder direction from its rule's mean (uses the labels)
        """

        batches: PositiveInt = 8
        batch_size: PositiveInt = 256
        slot_means: bool = False

    @torch.no_grad()
    def apply(self, model, data) -> None:
        if not hasattr(model, "W_dec_slot"):
            raise ValueError(f"slot-mean-init needs a slot-sae model, got {model.name!r}")
        c = self.config
        stream = data.batches(c.batch_size, split="train", with_labels=c.slot_means)
        total, count = 0.0, 0
        sums = torch.zeros(model.n_slots, model.d_in, dtype=torch.float64)
        counts = torch.zeros(model.n_slots, dtype=torch.float64)
        for batch in itertools.islice(stream, c.batches):
            x = batch.x.double()
            total, count = total + x.sum(0), count + len(x)
            if c.slot_means:
                rule, _ = split_labels(batch.labels, model.n_slots)
                keep = rule >= 0
                sums.index_add_(0, rule[keep], x[keep])
                counts.index_add_(0, rule[keep], torch.ones(int(keep.sum()), dtype=torch.float64))
        if not count:
            return
        mean = total / count
        model.b_dec.copy_(mean.to(model.b_dec.dtype))
        if c.slot_means:
            seen = counts > 0
            model.W_dec_slot[seen] = (sums[seen] / counts[seen, None] - mean).to(model.W_dec_slot.dtype)
