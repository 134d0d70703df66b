"""Package data, installed as `piti_weights`: the weight manifest and the bundled demo model files.

`piti_cli.checkpoints.registry` finds this folder through `importlib.resources`, so the same
lookup works from the repository (editable install) and from an installed wheel.
"""
