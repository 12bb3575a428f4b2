"""The interpretability studies of Dilgren & Wiegreffe (2026) as batched library code.

`analysis/` holds the command-line entry points, reports and plots; everything that touches
the model lives here, so the studies can also be run from a notebook.
"""
