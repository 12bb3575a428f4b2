"""Command-line studies on lrm_jax checkpoints and data (`python -m analysis.<study>`)."""
