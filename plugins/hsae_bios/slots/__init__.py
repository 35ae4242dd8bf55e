"""The slot SAE of seed 003 (step 4) and its tensor-level evaluation (step 5), as components.

Modules (imported by the plugin's ``hsae_register`` hook only, never at package import):

- :mod:`.model`: the ``slot-sae`` model: ``n_slots`` supervised Gumbel-softmax slots,
  optional free TopK latents (AlignSAE style) and per-slot value heads;
- :mod:`.router`: the Gumbel-softmax slot code and the temperature schedule;
- :mod:`.losses`: ``slot-reconstruction``, ``slot-entropy``, ``slot-alignment``,
  ``slot-independence``, ``slot-value``;
- :mod:`.metrics`: ``slot-assignment``, ``slot-explained-variance``, ``slot-value-accuracy``;
- :mod:`.callbacks`: ``slot-temperature`` (anneals the router's temperature, resumable);
- :mod:`.labels`: the label layout (``split_labels``) and confusion matrices;
- :mod:`.probes`, :mod:`.matching`: baselines on captured activations (logistic and
  nearest-class-mean probes, the per-attribute-mean ceiling, best-matching latents of an
  unsupervised SAE);
- :mod:`.synthetic`: ``slot-clusters``, labelled clustered activations for tests and demos.
"""
