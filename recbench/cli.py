"""The ``recbench`` command: one entry point for everything.

recbench run model=sasrec data=amazon_beauty     # = python -m recbench.run …
recbench leaderboard build                       # = python -m recbench.leaderboard …
recbench list models                             # = python -m recbench.list …
recbench data fetch amazon_beauty                # = python -m recbench.data …
"""

from __future__ import annotations

import difflib
import sys

COMMANDS = {
    "run": "train and evaluate one model on one dataset; write one result row (Hydra overrides)",
    "leaderboard": "add rows, build the boards, verify a row",
    "list": "what there is to run: models, data, experiments, tokenizers, losses, protocols",
    "data": "fetch, check and describe the benchmark datasets",
}


def usage() -> str:
    lines = ["usage: recbench <command> [arguments]", "", "commands:"]
    lines += [f"  {name:<12} {what}" for name, what in COMMANDS.items()]
    lines += ["", "recbench <command> --help shows each command's own options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        from recbench.run import cli

        sys.argv = ["recbench run", *rest]  # Hydra reads the command line itself
        cli()
        return 0
    if command == "leaderboard":
        from recbench.leaderboard.__main__ import main as leaderboard

        return leaderboard(rest)
    if command == "list":
        from recbench.list import main as listing

        return listing(rest)
    if command == "data":
        from recbench.data.__main__ import main as data

        return data(rest)
    close = difflib.get_close_matches(command, list(COMMANDS), n=1)
    hint = f"; did you mean `recbench {close[0]}`?" if close else ""
    print(f"error: recbench has no command {command!r}{hint}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
