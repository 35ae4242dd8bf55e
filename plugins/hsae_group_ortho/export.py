"""The ``interpretability-export`` metric: top-activating examples per latent and per group, as markdown.

For the seed's human evaluation. With ``ctx.out_dir`` set it writes ``file`` (default
``interpretability.md``) there:

* per group (the model's, or index groups for an ungrouped model): its live latents, each
  with its best-matching true feature, and the ``n_examples`` eval samples with the largest
  group code mass, each shown with the group's active latents and the sample's true features;
* per live latent: firing rate, best-matching true feature (``|cos|``), and its
  ``n_examples`` top-activating samples with their true features.

On data without labels an example is shown by its index only. Returns the counts exported.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch

from hsae.io import write_text
from hsae.metric import EvalContext, Metric
from hsae_group_ortho.collect import CodeRecord, alive_latents, feature_names, grouping
from hsae_synthetic.metrics import abs_cosines


class InterpretabilityExportMetric(Metric):
    """Write a markdown page of top-activating examples per latent and per group."""

    name = "interpretability-export"
    needs_labels = True

    @attrs.frozen
    class Config:
        """``n_examples`` per latent and group, at most ``max_latents`` latents, the output ``file`` name."""

        n_examples: int = 5
        max_latents: int = 512
        fallback_groups: int = 16
        file: str = "interpretability.md"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.record = CodeRecord(labels=True)

    def reset(self) -> None:
        self.record.reset()

    def update(self, batch, out, model) -> None:
        self.record.update(batch, out)

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if ctx.out_dir is None or self.record.empty:
            return {"exported_latents": 0.0, "exported_groups": 0.0}
        codes, labels = self.record.codes(), self.record.labels()
        groups, source = grouping(model, self.config.fallback_groups)
        gt = ctx.data.ground_truth()
        names = feature_names(gt) if gt is not None else [f"f{i}" for i in range(labels.shape[1])]
        match = None
        if gt is not None:
            cos = abs_cosines(model.decoder_directions(), gt.directions)
            match = (cos.argmax(1), cos.max(1))
        page = ExportPage(codes, labels, names, match, self.config.n_examples)
        latents = alive_latents(codes)[: self.config.max_latents].numpy()
        latents = latents[np.argsort(groups[latents], kind="stable")]
        text = page.render(groups, latents, source, ctx.step)
        write_text(Path(ctx.out_dir) / self.config.file, text)
        return {"exported_latents": float(latents.size), "exported_groups": float(np.unique(groups[latents]).size)}


class ExportPage:
    """Renders the markdown page from the recorded codes and labels."""

    def __init__(self, codes: torch.Tensor, labels: torch.Tensor, names: list[str],
                 match: tuple[np.ndarray, np.ndarray] | None, n_examples: int) -> None:
        self.codes, self.labels, self.names, self.match, self.n = codes, labels, names, match, n_examples

    def features(self, row: int) -> str:
        active = torch.nonzero(self.labels[row]).flatten().tolist()
        return ", ".join(self.names[f] for f in active) or "(none)"

    def matched(self, latent: int) -> str:
        if self.match is None:
            return "?"
        return f"{self.names[self.match[0][latent]]} ({self.match[1][latent]:.2f})"

    def top_rows(self, scores: torch.Tensor) -> list[int]:
        k = min(self.n, int((scores > 0).sum()))
        return torch.topk(scores, k).indices.tolist() if k else []

    def render(self, groups: np.ndarray, latents: np.ndarray, source: str, step: int) -> str:
        n_rows = self.codes.shape[0]
        lines = [f"# Top-activating examples (step {step}, {n_rows} eval samples)", "",
                 f"Groups: {'the model' if source == 'model' else 'index partition (the model has no groups)'}. "
                 "A latent's match is its best true feature by |cos| of decoder directions.", ""]
        lines += ["## Groups", ""]
        for g in np.unique(groups[latents]):
            members = latents[groups[latents] == g]
            lines += [f"### group {g}", "", "members: " + ", ".join(f"{i} → {self.matched(i)}" for i in members), ""]
            mass = self.codes[:, torch.from_numpy(members)].sum(1)
            lines += ["| sample | group mass | active latents of the group | true features |", "|---|---|---|---|"]
            for row in self.top_rows(mass):
                active = [int(i) for i in members if self.codes[row, i] > 0]
                lines.append(f"| {row} | {mass[row]:.3f} | {', '.join(map(str, active))} | {self.features(row)} |")
            lines.append("")
        lines += ["## Latents", ""]
        for i in latents:
            rate = float((self.codes[:, i] > 0).float().mean())
            lines += [f"### latent {i} (group {groups[i]})", "", f"fires on {rate:.2%} of samples; match: {self.matched(i)}", "",
                      "| sample | activation | true features |", "|---|---|---|"]
            for row in self.top_rows(self.codes[:, i]):
                lines.append(f"| {row} | {self.codes[row, i]:.3f} | {self.features(row)} |")
            lines.append("")
        return "\n".join(lines)
