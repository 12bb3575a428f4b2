"""The trainer every model family shares: state, objective, checkpoints, loop, evaluation."""
