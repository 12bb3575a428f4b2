"""Deterministic (by seed) generators of ProsQA-, ProntoQA-style and arithmetic records.

Each generator has a frozen config of difficulty knobs, so the full-size tasks and the
CPU-sized variants come from one code path; `GENERATORS` maps a task name to
(config class, generate function).
"""

from lrm_jax.data.generators.arithmetic import ArithConfig, generate_arithmetic
from lrm_jax.data.generators.prontoqa import ProntoQAConfig, generate_prontoqa
from lrm_jax.data.generators.prosqa import ProsQAConfig, generate_prosqa

GENERATORS = {
    "prosqa": (ProsQAConfig, generate_prosqa),
    "prontoqa": (ProntoQAConfig, generate_prontoqa),
    "arithmetic": (ArithConfig, generate_arithmetic),
}
