"""piti: pretraining-based image-to-image translation on top of GLIDE.

The Python API is `piti_cli.api` (`from piti_cli import PitiPipeline`), imported on first use
so that `piti --help` never imports torch.
"""

from piti_cli.version import __version__
__all__ = ["PitiPipeline", "PitiOutput", "__version__"]


def __getattr__(name: str):
    if name in ("PitiPipeline", "PitiOutput"):
        from piti_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'piti_cli' has no attribute {name!r}")
