"""Where piti keeps its per-user files: `$PITI_HOME`, else the platform's user cache folder
(`~/.cache/piti` on Linux, found with platformdirs).

Inside it: `weights/` (what `piti weights fetch` downloads), `eval-stats/` (reference
statistics of `piti eval`) and `sha256-cache.json` (checkpoint hashes, see
`piti_cli.checkpoints.hash_cache`). Nothing is created until something is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

ENV_HOME = "PITI_HOME"


def piti_home() -> Path:
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    return Path(user_cache_dir("piti", appauthor=False))
