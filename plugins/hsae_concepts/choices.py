"""Names the commands offer, importable without numpy (``hsae --help`` builds every parser)."""

SEED_STRATEGIES = ("embedding-to-feature", "hidden-to-feature", "hidden-to-concept")
NORMALIZATIONS = ("standardize", "minmax", "none")
