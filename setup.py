"""The one thing pyproject.toml cannot say: the top-level `weights/` folder ships as the package
`piti_weights` (package data: manifest + bundled demo files), and `examples/mask/` as
`piti_examples` (the masks `piti sample` uses without --cond). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["piti_cli*"]) + ["piti_weights", "piti_examples"],
    package_dir={"piti_weights": "weights", "piti_examples": "examples/mask"},
)
