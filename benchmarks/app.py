"""`piti app` latency: from the command to a served page, and from pressing Generate to the
first picture with the demo model at the README command's settings, against the README
command's own time per picture (`piti sample` on one example, same settings) — in one run.

    python -m benchmarks.app [--precision auto] [--port 7871]

Needs the app extra (`pip install "piti[app]"`). Prints seconds and the ratio
(app's first picture / `piti sample`'s picture; target ≤ 1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "mask" / "scene_0.png"


def served(url: str, timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no page at {url} after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with tempfile.TemporaryDirectory(prefix="piti-app-bench-") as tmp:
        url = f"http://127.0.0.1:{args.port}/"
        start = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "piti_cli", "app", "--port", str(args.port), "--out",
                                   f"{tmp}/app", "--precision", args.precision], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            served(url)
            to_page = time.perf_counter() - start
            client = Client(url, verbose=False)
            value = {"background": handle_file(str(EXAMPLE)), "layers": [], "composite": handle_file(str(EXAMPLE)),
                     "id": None}
            start = time.perf_counter()
            client.predict(value, "", "", 8.0, False, "ddim", 50, False, 300, 0, 1, api_name="/generate")
            first = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "piti_cli", "sample", "--cond", str(EXAMPLE), "--out", f"{tmp}/cli",
                        "--guidance", "8", "--steps", "50", "--upsample-start", "300", "--precision", args.precision],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command = time.perf_counter() - start
    print(f"piti app → served page: {to_page:.1f} s")
    print(f"Generate → first picture (demo, README settings; the pair loads before the page is served): {first:.1f} s")
    print(f"piti sample, one picture, same settings (whole command): {command:.1f} s")
    print(f"ratio app first picture / command: {first / command:.2f} (target ≤ 1)")


if __name__ == "__main__":
    main()
