"""Command-line studies on lrm_jax checkpoints and data (`python -m analysis.<study>`).

Importing the package first restarts a study CLI with jemalloc or huge pages (lrm_jax/host_devices.py); it
does nothing when the package is imported by anything but `python -m analysis.<study>`."""

from lrm_jax.host_devices import tune_malloc

tune_malloc()
