"""Render the leaderboard page in headless Chromium at a desktop and a phone width: screenshots, and the
layout checks the page must pass (no visible table wider than its container, no two plot labels
overlapping). ``python -m recbench.leaderboard.page_check [page] [--out outputs/page]``."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

WIDTHS = (1400, 390)
# Runs in the page: records each problem in <body data-problems="[…]">, read back from the dumped DOM.
CHECK = """<script>
(function(){
  const problems=[];
  document.querySelectorAll('table').forEach(function(t,i){
    if(t.offsetParent===null||t.closest('details:not([open])')) return;  // not shown
    const box=t.parentElement; const limit=Math.min(box.clientWidth, document.documentElement.clientWidth);
    if(t.getBoundingClientRect().width>limit+1) problems.push('table '+i+' is '+
      Math.round(t.getBoundingClientRect().width)+' px wide in a '+limit+' px container');
  });
  document.querySelectorAll('svg').forEach(function(svg,k){
    const boxes=Array.from(svg.querySelectorAll('text.label')).map(e=>[e.textContent,e.getBBox()]);
    for(let i=0;i<boxes.length;i++) for(let j=i+1;j<boxes.length;j++){
      const a=boxes[i][1],b=boxes[j][1];
      if(a.x<b.x+b.width&&b.x<a.x+a.width&&a.y<b.y+b.height&&b.y<a.y+a.height)
        problems.push('plot '+k+': labels '+boxes[i][0]+' and '+boxes[j][0]+' overlap');
    }
  });
  if(document.documentElement.scrollWidth>document.documentElement.clientWidth+1)
    problems.push('the page scrolls sideways ('+document.documentElement.scrollWidth+' px)');
  if(window.parent!==window) window.parent.postMessage(JSON.stringify(problems),'*');
  else document.body.setAttribute('data-problems', JSON.stringify(problems));
})();
</script></body>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


MIN_WINDOW = 500  # headless Chromium's narrowest window: a narrower page is shown in an iframe that wide
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:2400px;border:0"></iframe>
<script>window.addEventListener('message',function(e){{document.body.setAttribute('data-problems',e.data)}});
</script></body></html>"""


def _run(browser: str, profile: Path, width: int, *args: str) -> subprocess.CompletedProcess:
    window = max(width, MIN_WINDOW)
    return subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-sync", "--disable-background-networking", "--disable-component-update",
         f"--user-data-dir={profile}", f"--window-size={window},2400", "--virtual-time-budget=10000",
         "--allow-file-access-from-files", *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def check_page(page: Path, out: Path | None = None) -> dict[int, list[str]]:
    """{width: problems} for ``page`` at each of :data:`WIDTHS`; screenshots ``index_<width>.png`` go to
    ``out`` when given. Raises RuntimeError when Chromium is absent or prints no DOM."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium not installed (Debian: apt-get install chromium)")
    problems: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="recbench-page-") as tmp:
        checked = Path(tmp) / "check.html"
        checked.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK, 1), encoding="utf-8")
        for width in WIDTHS:
            target = checked
            if width < MIN_WINDOW:
                target = Path(tmp) / f"frame{width}.html"
                target.write_text(FRAME.format(src=checked.name, width=width), encoding="utf-8")
            done = _run(browser, Path(tmp) / "profile", width, "--dump-dom", target.as_uri())
            found = re.search(r'data-problems="([^"]*)"', done.stdout)
            if found is None:
                raise RuntimeError(f"chromium rendered no page at {width} px: {done.stderr[-1500:]}")
            problems[width] = json.loads(found.group(1).replace("&quot;", '"'))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                shown = page.resolve()
                if width < MIN_WINDOW:
                    shown = Path(tmp) / f"shot{width}.html"
                    shown.write_text(FRAME.format(src=page.resolve().as_uri(), width=width), encoding="utf-8")
                _run(browser, Path(tmp) / "profile", width, f"--screenshot={out / f'index_{width}.png'}",
                     shown.as_uri())  # fmt: skip
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", nargs="?", type=Path, default=Path("leaderboards/index.html"))
    parser.add_argument("--out", type=Path, default=Path("outputs/page"))
    args = parser.parse_args()
    problems = check_page(args.page, args.out)
    for width, found in problems.items():
        print(f"{width} px: {'ok' if not found else '; '.join(found)}")
    print(f"screenshots: {args.out}/index_{{{','.join(map(str, WIDTHS))}}}.png")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
