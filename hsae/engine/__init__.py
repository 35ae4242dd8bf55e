"""The training engine: device placement, schedules, checkpoints, distribution, the loop."""
