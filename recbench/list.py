"""What there is to run: one line per config, from its header comment.

    python -m recbench.list                # every kind
    python -m recbench.list models         # models | data | experiments | tokenizers | losses | protocols

Each name is what the override takes (``model=<name>``, ``data=<name>``, ``experiment=<name>`` …).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
KINDS = {  # what users ask for -> config group
    "models": "model",
    "data": "data",
    "experiments": "experiment",
    "tokenizers": "tokenizer",
    "losses": "loss",
    "protocols": "protocol",
}
WIDTH = 100


def summary(path: Path) -> str:
    """The first sentence of the file's header comment (``# @package`` lines and usage lines skipped)."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith(("@package", "`python", "python ")):
            continue
        words.append(text)
    sentence = first_sentence(" ".join(w for w in words if w))
    return sentence if len(sentence) <= WIDTH else sentence[: WIDTH - 1].rstrip() + "…"


def first_sentence(text: str) -> str:
    """Up to the first '.' or ';' that ends a sentence: outside parentheses, not in "et al." or "e.g."."""
    depth = 0
    for i, c in enumerate(text):
        depth += (c in "([") - (c in ")]")
        end = i + 1 == len(text) or text[i + 1] == " "
        if c in ".;" and depth <= 0 and end and not ABBREVIATION.search(text[: i + 1]):
            return text[:i]
    return text


ABBREVIATION = re.compile(r"(\bal|\be\.g|\bi\.e|\bvs|\bcf)\.$")


def listing(kind: str, conf_dir: Path = CONF_DIR) -> list[str]:
    group = KINDS[kind]
    files = sorted((conf_dir / group).glob("*.yaml"))
    width = max((len(f.stem) for f in files), default=0)
    return [f"{f.stem:<{width}}  {summary(f)}" for f in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.list", description=__doc__.split("\n")[0])
    parser.add_argument("kind", nargs="?", choices=sorted(KINDS), help="what to list (default: everything)")
    args = parser.parse_args(argv)
    kinds = [args.kind] if args.kind else list(KINDS)
    for i, kind in enumerate(kinds):
        if len(kinds) > 1:
            print(("\n" if i else "") + f"{kind} ({KINDS[kind]}=<name>)")
        print("\n".join(listing(kind)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
