"""python -m recbench.leaderboard add RUN_DIR... | build"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbench.leaderboard.build import add, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.leaderboard", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("leaderboards"), help="leaderboard folder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_add = sub.add_parser("add", help="copy validated result rows of run folders into <root>/results")
    p_add.add_argument("runs", nargs="+", type=Path, help="run folders (or result.json files)")
    p_add.add_argument("--allow-dirty", action="store_true", help="accept rows from uncommitted code")
    sub.add_parser("build", help="regenerate <root>/<dataset>.md from the rows")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "add":
            for p in add(args.runs, args.root, allow_dirty=args.allow_dirty):
                print(f"added {p}")
        else:
            for p in build(args.root):
                print(f"wrote {p}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
