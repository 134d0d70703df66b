"""Write a pack of procedural scenes (`piti_cli.data.scenes`) for `piti finetune`.

    python -m recipes.scenes OUT.h5 --count 512 --seed 0
"""

from __future__ import annotations

import argparse

from piti_cli.data.scenes import make_scenes, write_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(write_pack(args.out, *make_scenes(args.count, args.seed)))


if __name__ == "__main__":
    main()
