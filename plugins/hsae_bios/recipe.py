"""The ``bio-slots`` recipe: every table of seed 003's pipeline, with the seed's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from hsae.config.spec import CallbackSpec, InitializerSpec, LossSpec, ModelSpec
from hsae_bios.capture import CaptureSettings
from hsae_bios.sft import SFTConfig
from hsae_lm.lm_train import GPT2Shape, LMTrainConfig, TokenizerConfig


@attrs.frozen
class DataSection:
    """The bioS dataset (``hsae data bios``'s options), or an existing one in ``dir``.

    dir: a folder written by `hsae data bios` (then the other keys are ignored)
    bios_per_person: biographies per person (K); with permute and full_name, Physics 3.1's augmentation
    """

    num_persons: int = 200
    seed: int = 0
    qa_train_fraction: float = 0.5
    bios_per_person: int = 5
    permute: bool = True
    full_name: bool = True
    dir: Path | None = None


@attrs.frozen
class LMSection:
    """The causal LM that must know the facts.

    method: train (a GPT-2 from scratch with lm-train, mixed training) or sft (fine-tune base_model)
    base_model: a local Hugging Face causal LM directory (method = sft)
    compare_single: also train the same LM on single, unpermuted biographies (Physics 3.1's contrast)
    eval_rows: QA rows per set scored for exact-match accuracy (greedy decoding)
    """

    method: Literal["train", "sft"] = "train"
    base_model: str | None = None
    model: GPT2Shape = GPT2Shape(n_layer=4, n_embd=128, n_head=4, context_length=128)
    tokenizer: TokenizerConfig = TokenizerConfig(vocab_size=8_000, min_frequency=1)
    train: LMTrainConfig = LMTrainConfig(steps=1500, batch_size=32, lr=3e-3, warmup_steps=100, log_every=250)
    sft: SFTConfig = SFTConfig()
    compare_single: bool = True
    eval_rows: int = 600


@attrs.frozen
class SlotTraining:
    """The slot SAE's optimisation (the seed's: lr 1e-3, batch 64, 100 epochs), per layer and seed."""

    lr: float = 1e-3
    batch_size: int = 64
    epochs: float = 100.0
    seeds: tuple[int, ...] = (0, 1, 2)


@attrs.frozen
class TopKBaseline:
    """The unsupervised baseline: a TopK SAE on the same activations, best-matching latent per rule.

    d_sae: latents; k: active latents per row; epochs, lr, batch_size: as the slot SAE's unless set
    """

    d_sae: int = 256
    k: int = 8
    epochs: float = 100.0
    lr: float = 1e-3
    batch_size: int = 64


@attrs.frozen
class EvaluationSection:
    """The causal tests.

    alphas: scales of the swap (slot i's code moved to slot j, times alpha)
    intervention_rows: clean-correct QA rows (QA-train persons, training template) edited per test
    held_out_fraction: share of the training-template rows held out of SAE training, to score it
    """

    alphas: tuple[float, ...] = (1.0, 2.0, 4.0)
    intervention_rows: int = 300
    held_out_fraction: float = 0.2


def _default_slot_losses() -> dict[str, LossSpec]:
    return {"reconstruction": LossSpec("slot-reconstruction"), "entropy": LossSpec("slot-entropy"),
            "alignment": LossSpec("slot-alignment"), "independence": LossSpec("slot-independence"),
            "value": LossSpec("slot-value")}


@attrs.frozen
class BioSlotsRecipe:
    """Seed 003 end to end: data, LM, capture at every layer, slot SAE, evaluation.

    layers: residual-stream layers to capture and fit (resid:L; default: 0 .. the number of blocks)
    slot_sae: the slot SAE (a model table); its n_values is set from the dataset
    slot_losses: its loss terms with the seed's coefficients
    slot_initializers: b_dec at the data mean (slot-mean-init)
    slot_callbacks: the Gumbel temperature schedule, 1.0 -> 0.1 (slot-temperature)
    """

    data: DataSection = DataSection()
    lm: LMSection = LMSection()
    capture: CaptureSettings = CaptureSettings()
    layers: tuple[int, ...] | None = None
    slot_sae: ModelSpec = ModelSpec("slot-sae")
    slot_losses: dict[str, LossSpec] = attrs.field(factory=_default_slot_losses)
    slot_initializers: dict[str, InitializerSpec] = attrs.field(factory=lambda: {"mean": InitializerSpec("slot-mean-init")})
    slot_callbacks: dict[str, CallbackSpec] = attrs.field(
        factory=lambda: {"temperature": CallbackSpec("slot-temperature")})
    slot_train: SlotTraining = SlotTraining()
    topk: TopKBaseline = TopKBaseline()
    evaluate: EvaluationSection = EvaluationSection()
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.lm.method == "sft" and not self.lm.base_model:
            problems.append(("lm.base_model", "required when lm.method = 'sft' (a local HF causal LM directory)"))
        if self.lm.method == "train" and self.lm.model.n_embd % self.lm.model.n_head:
            problems.append(("lm.model.n_head", f"must divide n_embd = {self.lm.model.n_embd}"))
        if not self.slot_train.seeds:
            problems.append(("slot_train.seeds", "needs at least one seed"))
        if not 0 < self.evaluate.held_out_fraction < 1:
            problems.append(("evaluate.held_out_fraction", "must be in (0, 1)"))
        if self.data.bios_per_person < 1:
            problems.append(("data.bios_per_person", "must be at least 1"))
        return problems
