"""lrm-jax: latent reasoning models (COCONUT, CODI) in JAX/Flax NNX, and their interpretability studies."""

from setuptools import find_packages, setup

# Pinned to the versions known to work on the project's machines (see README, "Environment").
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "chex==0.1.92",
    "numpy==2.4.6",
    "transformers==5.23.0",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "grain==0.2.18",
    "array_record==0.8.6",
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",  # tfds needs it at build time but does not declare it
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "tensorboardX==2.6.5",
]

EXTRAS_REQUIRE = {
    # pytest-xdist: the suite runs as two workers (JAX compiles one at a time per process, so two
    # processes use both cores of the CI machine).
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0"],
    # torch only for parity checks against transformers' PyTorch GPT-2. Always exactly 2.13.0:
    # any other version pulls a multi-GB CUDA build.
    "hf": ["torch==2.13.0"],
}

setup(
    name="lrm-jax",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["lrm_jax", "lrm_jax.*", "train", "analysis"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
