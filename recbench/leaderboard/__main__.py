"""python -m recbench.leaderboard add RUN_DIR... | build | verify ROW.json"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbench.errors import RecbenchError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.leaderboard", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("leaderboards"), help="leaderboard folder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_add = sub.add_parser("add", help="copy validated result rows of run folders into <root>/results")
    p_add.add_argument("runs", nargs="+", type=Path, help="run folders (or result.json files)")
    p_add.add_argument("--allow-dirty", action="store_true", help="accept rows from uncommitted code")
    p_add.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip rows whose seed and setting are already on the board",
    )
    p_add.add_argument(
        "--select-on-validation",
        action="store_true",
        help="each folder is a sweep: add only the setting with the best validation score, with the search",
    )
    sub.add_parser("build", help="regenerate <root>/<dataset>.md, README.md and index.html from the rows")
    p_verify = sub.add_parser("verify", help="re-run a row's command and report each metric's difference")
    p_verify.add_argument("row", type=Path, help="a result row (.json)")
    p_verify.add_argument("--tolerance", type=float, default=0.0, help="largest accepted |difference|")
    args = parser.parse_args(argv)
    from recbench.leaderboard.build import add, build  # after parsing: --help answers at once
    from recbench.leaderboard.verify import verify

    try:
        if args.cmd == "add":
            for p in add(
                args.runs,
                args.root,
                allow_dirty=args.allow_dirty,
                select_on_validation=args.select_on_validation,
                skip_existing=args.skip_existing,
            ):
                print(f"added {p}")
        elif args.cmd == "verify":
            return 0 if verify(args.row, args.tolerance) else 1
        else:
            for p in build(args.root):
                print(f"wrote {p}")
    except (RecbenchError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
