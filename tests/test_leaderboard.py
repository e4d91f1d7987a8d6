"""Leaderboard: add (rows + per-user ranks), build (markdown, p-values, HTML in headless Chromium), verify."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recbench.errors import RefusedError
from recbench.leaderboard.__main__ import main as leaderboard_main
from recbench.leaderboard.build import add, build, load_rows
from recbench.leaderboard.verify import verify

from .test_run import fast_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    fast_run(out)
    return out


def fake_run(src: Path, dst: Path, seed: int, label: str, shift: int = 0, ndcg: float | None = None) -> Path:
    """A copy of a real run folder posing as another seed/setting, ranks shifted by ``shift``."""
    dst.mkdir(parents=True)
    data = json.loads((src / "result.json").read_text())
    data["seed"], data["run_id"], data["git"]["dirty"] = seed, f"{label}{seed}", False
    data["model"]["label"], data["setting_hash"] = label, label.ljust(64, "0")
    if ndcg is not None:
        data["metrics"]["test"]["ndcg@10"] = ndcg
    (dst / "result.json").write_text(json.dumps(data))
    preds = pd.read_parquet(src / "predictions.parquet")
    preds["rank"] = preds["rank"] + shift
    preds.to_parquet(dst / "predictions.parquet")
    return dst


def test_add_and_build_with_p_values(run_dir, tmp_path):
    root = tmp_path / "lb"
    runs = [fake_run(run_dir, tmp_path / f"a{s}", s, "good", ndcg=0.1 + 0.01 * s) for s in (0, 1, 2)]
    runs.append(fake_run(run_dir, tmp_path / "b0", 0, "worse", shift=3, ndcg=0.05))
    assert leaderboard_main(["--root", str(root), "add", *map(str, runs)]) == 0
    assert len(load_rows(root)) == 4
    assert len(list(root.rglob("*.ranks.npz"))) == 4
    (root / "references.yaml").write_text(
        "synthetic:\n  - {model: paper model, source: 'Somebody 2024, Table 1', mask_history: false,"
        " metrics: {ndcg@10: 0.5}}\n"
    )
    written = build(root)
    md = (root / "synthetic.md").read_text()
    assert {p.name for p in written} == {"synthetic.md", "models.md", "index.html"} and "do not edit" in md
    assert "0.1100 ± 0.0100" in md  # mean ± sample std of 0.10, 0.11, 0.12
    assert "| good | 3 | train+valid |" in md and "| worse | 1 | train+valid |" in md
    assert "Somebody 2024, Table 1" in md and "0.5000" in md
    # p-value: paired t-test over users of per-user ndcg@10, best ("good") vs "worse"
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    ranks = preds.sort_values("user")["rank"].to_numpy()
    ndcg = lambda r: np.where(r <= 10, 1 / np.log2(r + 1.0), 0.0)  # noqa: E731
    p = stats.ttest_rel(ndcg(ranks), ndcg(ranks + 3)).pvalue
    expected = "<0.001" if p < 1e-3 else f"{p:.3f}"
    worse_line = next(line for line in md.splitlines() if line.startswith("| worse |"))
    assert f"| {expected} |" in worse_line
    assert "| cap 2 |" in worse_line  # debug=fast trains to trainer.max_epochs = 2: said in the table
    assert (root / "README.md").is_file()


def test_stopped_says_early_stop_or_epoch_cap(run_dir):
    from recbench.leaderboard.build import stopped
    from recbench.results.schema import read_row

    row = read_row(run_dir / "result.json")
    assert stopped([row]) == "cap 2"
    early = row.model_copy(update={"config": {**row.config, "trainer": {"max_epochs": 200}}})
    none = row.model_copy(update={"cost": row.cost.model_copy(update={"epochs_trained": 0})})
    assert stopped([early]) == "early" and stopped([none]) == "–" and stopped([row, early]) == "cap 2, early"
    # a max_steps budget that ended training before early stopping could (fewer epochs since the best
    # than the patience) is a cap too; one that early stopping beat is not
    steps = {**row.config, "trainer": {"max_epochs": 200, "max_steps": 5}}
    capped = row.model_copy(update={"config": steps})
    long_after_best = row.cost.model_copy(update={"best_epoch": 0, "epochs_trained": 50})
    late = capped.model_copy(update={"cost": long_after_best})
    assert stopped([capped]) == "cap 5 steps" and stopped([late]) == "early"


def test_resumed_rows_show_and_rerun_their_from_scratch_command(run_dir, tmp_path, monkeypatch):
    """A run resumed from its own checkpoint is shown, and re-run by ``verify``, without the checkpoint path
    (resuming reproduces the uninterrupted run), and the page says it was trained in several sittings."""
    import subprocess as sp

    from recbench.leaderboard import verify as verify_mod
    from recbench.leaderboard.build import shown_command
    from recbench.results.schema import read_row

    row = read_row(run_dir / "result.json")
    resumed = row.model_copy(update={"command": f"{row.command} resume_from=/x/last.ckpt"})
    # shown without where the run wrote and logged: the author's folders are not part of the setting
    assert "paths.output_dir=" in row.command
    plain = " ".join(a for a in row.command.split() if not a.startswith("paths."))
    assert shown_command(row) == f"`{plain}`"
    assert shown_command(resumed) == (
        f"`{plain}` (trained in several sittings, resumed from its own checkpoints)"
    )
    bare = row.model_copy(update={"command": plain})
    assert shown_command(bare) == f"`{plain}`"
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return sp.CompletedProcess(cmd, 1, "", "stopped here")

    monkeypatch.setattr(verify_mod.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="stopped here"):
        verify_mod.rerun(resumed, tmp_path)
    assert "data=synthetic" in seen["cmd"] and not any(a.startswith("resume_from=") for a in seen["cmd"])


def test_html_renders_in_headless_chromium(run_dir, tmp_path):
    from recbench.leaderboard.page_check import chromium

    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed (CI installs Debian's chromium package)")
    root = tmp_path / "lb"
    add(
        [
            fake_run(run_dir, tmp_path / "a", 0, "good"),
            fake_run(run_dir, tmp_path / "b", 0, "worse", shift=3),
        ],
        root,
    )
    build(root)
    html = root / "index.html"
    # Click-sort the first table by its model column with JS, then dump the rendered DOM.
    script = tmp_path / "check.html"
    script.write_text(
        html.read_text().replace(
            "</body>",
            "<script>document.querySelector('table.sortable th').click();"
            "document.body.setAttribute('data-rows',"
            " document.querySelectorAll('table.sortable tbody tr').length)"
            "</script></body>",
        )
    )
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            script.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = out.stdout
    # 2 settings x 5 sortable tables: headline and every-metric tables, each masked and not, and the
    # sampled metrics (fast runs write them); and the one model's line in the every-model table
    assert 'data-rows="11"' in dom, out.stderr[-2000:]
    assert "Sampled metrics (diagnostic)" in dom and ">uniform100<" in dom
    assert "sorted-asc" in dom and "<svg" in dom and ">good<" in dom and ">worse<" in dom
    assert "<nav>" in dom and 'data-family="ID"' in dom and 'class="legend"' in dom


def test_the_page_fits_a_desktop_and_a_phone_and_no_plot_labels_overlap(run_dir, tmp_path):
    """At 1400 and 390 px wide: no visible table wider than its container, the page never scrolls
    sideways, no two point labels of a plot overlap; screenshots of both widths are written."""
    from recbench.leaderboard.page_check import WIDTHS, check_page, chromium

    if chromium() is None:
        pytest.skip("chromium not installed (CI installs Debian's chromium package)")
    root = tmp_path / "lb"
    runs = [fake_run(run_dir, tmp_path / str(i), 0, f"model-with-a-long-name-{i}", shift=i) for i in range(6)]
    add(runs, root)
    (root / "references.yaml").write_text(
        "synthetic:\n  - model: A published baseline with a long description of where it comes from\n"
        "    source: Someone et al., a venue, Table 1\n    metrics: {recall@10: 0.1, ndcg@10: 0.05}\n"
    )
    build(root)
    problems = check_page(root / "index.html", tmp_path / "shots")
    assert problems == {w: [] for w in WIDTHS}
    assert all((tmp_path / "shots" / f"index_{w}.png").stat().st_size > 10_000 for w in WIDTHS)


def test_every_model_has_a_family():
    from recbench.leaderboard.html import FAMILIES

    from .test_configs import options

    assert sorted(set(options("model")) - set(FAMILIES)) == []


@pytest.mark.parametrize("crowd", [6, 40])
def test_plot_labels_never_overlap_even_for_coinciding_points(crowd):
    """Six points on one spot, and a board's worth (40) in one small cluster: every number finds a free
    spot inside the plot, away from every dot, the crowded ones with a leader line back to their dot."""
    from recbench.leaderboard.html import _overlap, place_labels

    rng = np.random.default_rng(0)
    cluster = [(100.0 + float(dx), 100.0 + float(dy)) for dx, dy in rng.uniform(0, 30, size=(crowd - 6, 2))]
    points = [(100.0, 100.0)] * 6 + cluster + [(104.0, 102.0), (300.0, 50.0)]
    placed = place_labels(points, 680, 340)
    boxes = []
    for i, (x, y, anchor, _) in enumerate(placed):
        w = 7.0 * len(str(i + 1)) + 2
        left = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        boxes.append((left, y - 10, left + w, y + 2))
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    dots = [(x - 4.5, y - 4.5, x + 4.5, y + 4.5) for x, y in points]
    assert not any(_overlap(box, dot) for box in boxes for dot in dots)
    assert all(b[0] >= 0 and b[2] <= 680 and b[1] >= 0 and b[3] <= 340 for b in boxes)
    assert any(leader for *_, leader in placed) == (crowd > 6)


def test_verify_reproduces_a_cpu_row_exactly(run_dir, capsys):
    assert verify(run_dir / "result.json") is True
    out = capsys.readouterr().out
    assert "PASS: largest difference 0" in out


@pytest.mark.parametrize("model", ["ease", "lightgcn"])
def test_verify_reproduces_cf_rows_exactly(model, tmp_path, capsys):
    """A closed-form and a trained CF row (their own datamodule and loss, chosen by the model file)."""
    fast_run(tmp_path, f"model={model}")
    assert verify(tmp_path / "result.json") is True
    assert "PASS: largest difference 0" in capsys.readouterr().out


def test_refuses_dirty_rows_unless_asked(run_dir, tmp_path):
    data = json.loads((run_dir / "result.json").read_text())
    data["git"]["dirty"] = True
    (tmp_path / "result.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="uncommitted changes"):
        add([tmp_path], tmp_path / "lb")
    assert len(add([tmp_path], tmp_path / "lb", allow_dirty=True)) == 1


def test_cli_reports_missing_rows(tmp_path, capsys):
    assert leaderboard_main(["--root", str(tmp_path), "add", str(tmp_path / "nope")]) == 1
    assert "no result row" in capsys.readouterr().err


def test_committed_leaderboard_is_up_to_date(tmp_path):
    """The committed tables are exactly what `leaderboard build` generates from the committed rows."""
    repo = Path(__file__).resolve().parents[1] / "leaderboards"
    if not list((repo / "results").rglob("*.json")):
        pytest.skip("no committed rows yet")
    copy = tmp_path / "lb"
    shutil.copytree(repo, copy)
    build(copy)
    for name in [p.name for p in repo.glob("*.md")] + ["index.html"]:
        assert (copy / name).read_text() == (repo / name).read_text(), (
            f"{name} is stale: run make leaderboard"
        )


def test_shipped_references_are_well_formed():
    """Every published number beside our rows names its source and says nothing the tables cannot show."""
    import yaml

    from recbench.leaderboard.build import COLUMNS

    refs = yaml.safe_load((Path(__file__).parents[1] / "leaderboards" / "references.yaml").read_text())
    assert refs, "leaderboards/references.yaml is empty"
    for dataset, entries in refs.items():
        for ref in entries:
            where = f"references.yaml: {dataset}: {ref.get('model')!r}"
            assert ref.get("model") and ref.get("source"), where
            assert set(ref) <= {"model", "source", "metrics", "mask_history"}, where
            assert ref.get("mask_history", False) in (True, False), where
            assert ref["metrics"] and set(ref["metrics"]) <= set(COLUMNS), where
            assert all(0 < v < 1 for v in ref["metrics"].values()), where


def test_select_on_validation_adds_the_best_setting_with_its_search(run_dir, tmp_path):
    """A sweep over a hyper-parameter: only the setting with the best mean validation score lands, and its
    rows say what else was tried; test metrics play no part in the choice."""
    sweep = tmp_path / "sweep"
    for label, seeds, val, test in [
        ("low", (0, 1), 0.20, 0.9),
        ("high", (0, 1), 0.30, 0.1),
        ("mid", (0,), 0.25, 0.5),
    ]:
        for s in seeds:
            run = fake_run(run_dir, sweep / f"{label}{s}", s, label, ndcg=test)
            data = json.loads((run / "result.json").read_text())
            data["metrics"]["val"]["ndcg@10"] = val + 0.001 * s
            data["model"]["label"] = "knob"
            data["command"] = f"python -m recbench.run model=sasrec knob={label} seed={s}"
            (run / "result.json").write_text(json.dumps(data))
    root = tmp_path / "lb"
    written = add([sweep], root, select_on_validation=True)
    rows = [r for _, r in load_rows(root)]
    assert len(written) == 2 and {r.seed for r in rows} == {0, 1}
    assert {r.setting_hash for r in rows} == {"high".ljust(64, "0")}  # best on val, worst on test
    sel = rows[0].selection
    assert sel is not None and sel.monitor == "val/ndcg@10" and sel.sweep == "sweep"
    assert [c.setting_hash.rstrip("0") for c in sel.candidates] == ["high", "mid", "low"]
    assert [c.seeds for c in sel.candidates] == [2, 1, 2]
    assert sel.candidates[0].val == pytest.approx(0.3005)
    build(root)
    md = (root / "synthetic.md").read_text()
    assert "selected on validation (val/ndcg@10 0.3005) among 3 settings of sweep `sweep`" in md
    assert "the others: `knob=mid` 0.2500, `knob=low` 0.2005" in md  # what each changed
    # a search widened by a second sweep is one search: the folders together
    wide = tmp_path / "wider"
    run = fake_run(run_dir, wide / "top0", 0, "top", ndcg=0.2)
    data = json.loads((run / "result.json").read_text())
    data["metrics"]["val"]["ndcg@10"], data["model"]["label"] = 0.4, "knob"
    (run / "result.json").write_text(json.dumps(data))
    rows = add([sweep, wide], tmp_path / "lb2", select_on_validation=True)
    (only,) = [r for _, r in load_rows(tmp_path / "lb2")]
    assert len(rows) == 1 and only.selection is not None and only.selection.sweep == "sweep, wider"
    assert len(only.selection.candidates) == 4 and only.setting_hash.startswith("top")


def test_rows_logged_online_link_their_wandb_runs(run_dir, tmp_path):
    from recbench.leaderboard.build import wandb_links
    from recbench.results.schema import WandbInfo, read_row

    row = read_row(run_dir / "result.json")
    online = row.model_copy(
        update={
            "wandb": WandbInfo(
                mode="online", run_path="me/recbench/abc", url="https://wandb.ai/me/recbench/runs/abc"
            )
        }
    )
    assert wandb_links([row]) == ""  # offline: nothing to link
    assert wandb_links([online]) == f"; W&B: [seed {row.seed}](https://wandb.ai/me/recbench/runs/abc)"


def test_add_refuses_a_second_copy_of_a_seed(run_dir, tmp_path):
    root = tmp_path / "lb"
    add([fake_run(run_dir, tmp_path / "a0", 0, "good")], root)
    again = fake_run(run_dir, tmp_path / "again", 0, "good")  # the same seed of the same setting
    json_path = again / "result.json"
    data = json.loads(json_path.read_text())
    data["run_id"] = "other-run"
    json_path.write_text(json.dumps(data))
    new = fake_run(run_dir, tmp_path / "a1", 1, "good")
    with pytest.raises(RefusedError, match=r"seed 0 of setting good0000 \(good\) is already on the board"):
        add([new, again], root)
    assert len(load_rows(root)) == 1  # all or nothing: seed 1 was not added either
    assert [p.name for p in add([new, again], root, skip_existing=True)] == ["seed1-good1.json"]
    assert len(load_rows(root)) == 2


def text_row(row, model: str, encoder: str, pca: int | None, ndcg: float, dataset: str = "amazon_beauty"):
    part = "net" if model == "text_zeroshot" else "ranker"
    config = {"model": {"name": model, part: {"encoder": encoder, "pca_dim": pca, "template": "{title}"}}}
    metrics = {"test": {"ndcg@10": ndcg, "recall@10": 2 * ndcg}, "val": {"ndcg@10": ndcg}}
    data = row.dataset.model_copy(update={"name": dataset})
    return row.model_copy(update={"config": config, "metrics": metrics, "dataset": data})


def test_encoder_table_one_line_per_encoder_and_width(run_dir):
    from recbench.leaderboard.encoders import encoder_table
    from recbench.results.schema import read_row

    row = read_row(run_dir / "result.json")
    rows = [
        text_row(row, "text_zeroshot", "all-mpnet-base-v2", None, 0.03),
        text_row(row, "text_zeroshot", "all-MiniLM-L6-v2", 64, 0.02),
        text_row(row, "text_zeroshot", "all-MiniLM-L6-v2", None, 0.025),
        text_row(row, "text_zeroshot", "all-MiniLM-L6-v2", None, 0.035, dataset="amazon_toys"),
        row,  # not a text row: left out
    ]
    header, body, notes = encoder_table(rows)
    assert header[:5] == ["encoder", "PCA", "encoder params", "amazon_beauty N@10", "amazon_beauty R@10"]
    assert [line[:2] for line in body] == [["all-MiniLM-L6-v2", "–"], ["all-MiniLM-L6-v2", "64"],
                                           ["all-mpnet-base-v2", "–"]]  # fmt: skip
    assert body[0][3:] == ["0.0250", "0.0500", "**0.0350**", "**0.0700**"]
    assert body[2][3:] == ["**0.0300**", "**0.0600**", "–", "–"] and not notes
    # two decays of one encoder and width: the cell shows the one better on validation, and says so
    other = text_row(row, "text_zeroshot", "all-mpnet-base-v2", None, 0.04)
    other.config["model"]["net"]["decay"] = 0.5
    _, body, notes = encoder_table([*rows, other])
    assert body[2][3] == "**0.0400**" and len(notes) == 1 and '"decay": 0.5' in notes[0]


def test_the_text_encoder_section_fits_a_desktop_and_a_phone(run_dir, tmp_path):
    from recbench.leaderboard.encoders import encoder_table
    from recbench.leaderboard.html import render_html
    from recbench.leaderboard.page_check import WIDTHS, check_page, chromium
    from recbench.results.schema import read_row

    if chromium() is None:
        pytest.skip("chromium not installed (CI installs Debian's chromium package)")
    row = read_row(run_dir / "result.json")
    rows = [
        text_row(row, "text_zeroshot", enc, pca, 0.02, dataset=data)
        for enc in ("all-MiniLM-L6-v2", "all-mpnet-base-v2", "multilingual-e5-small-q4")
        for pca in (None, 128, 64)
        for data in ("amazon_beauty", "amazon_toys", "esci_us_150", "another_dataset")
    ]
    page = tmp_path / "index.html"
    page.write_text(render_html([], encoder_table(rows)))
    assert check_page(page) == {w: [] for w in WIDTHS}


def model_row(row, model: str, label: str, seed: int, val: float, test: float, dataset: str, **protocol):
    """A copy of ``row`` as ``model``'s ``label`` setting on ``dataset`` with the given N@10s."""
    metrics = {
        "val": {"ndcg@10": val},
        "test": {"ndcg@10": test},
        "test_history_masked": {"ndcg@10": test + 0.01},
    }
    return row.model_copy(
        update={
            "model": row.model.model_copy(update={"name": model, "label": label}),
            "dataset": row.dataset.model_copy(update={"name": dataset}),
            "protocol": row.protocol.model_copy(update=protocol),
            "metrics": metrics,
            "seed": seed,
        }
    )


def test_models_page_shows_each_models_validation_choice_on_every_board(run_dir):
    from recbench.leaderboard.build import Group, markdown
    from recbench.leaderboard.models import choose, models_markdown
    from recbench.results.schema import read_row

    row = read_row(run_dir / "result.json")
    assert row.cost.epochs_trained > 0

    def group(model, label, vals, tests, dataset="amazon_beauty", **protocol):
        rows = [
            model_row(row, model, label, s, v, t, dataset, **protocol)
            for s, (v, t) in enumerate(zip(vals, tests, strict=True))
        ]
        return Group(label, label[:8], rows, [])

    # three seeds beat one; among equal seed counts the best validation wins, never the best test
    tuned = group("sasrec", "sasrec_tuned", [0.30] * 3, [0.10, 0.11, 0.12])
    lucky = group("sasrec", "sasrec_lucky", [0.40], [0.50])
    default = group("sasrec", "sasrec", [0.20] * 3, [0.20] * 3)
    assert choose([tuned, lucky, default], "ndcg@10") is tuned
    # equal validation (a fold-in ablation scored without the validation item): the full history wins
    full = group("ease", "ease", [0.2], [0.08], test_history="train+valid")
    ablation = group("ease", "ease_ablation", [0.2], [0.05], test_history="train_only")
    assert choose([ablation, full], "ndcg@10") is full
    bpr = group("bprmf", "bprmf", [0.1], [0.04], test_history="train_only")
    toys = group("sasrec", "sasrec", [0.3], [0.06], dataset="amazon_toys")
    search = group("bm25", "bm25", [0.9], [0.9], dataset="esci_us_150")
    pages = [
        ("seqrec-loo-full", "amazon_beauty", [tuned, lucky, default, full, ablation, bpr], []),
        ("seqrec-loo-full", "amazon_toys", [toys], []),
        ("esci-rerank", "esci_us_150", [search], []),  # search boards are not next-item boards
    ]
    md = models_markdown(pages, markdown)
    assert md is not None and "bm25" not in md and "esci" not in md
    headline = md.split("## History items masked")[0]
    lines = {line.split(" | ")[0]: line for line in headline.splitlines() if line.startswith("| ")}
    assert lines["| sasrec"] == "| sasrec | ID | **0.1100 ± 0.0100** | **0.0600** (1 seed) | 100% |"
    assert lines["| ease"] == "| ease | CF | 0.0800 (1 seed) | – | 73% |"  # 0.08 / 0.11
    assert lines["| bprmf"] == "| bprmf | CF | 0.0400 (1 seed) † | – | 36% |"
    assert "0.0100 ± 0.0100" not in md and "0.5000" not in md  # the lucky setting is never shown
    masked = md.split("## History items masked")[1]
    assert "**0.1200 ± 0.0100**" in masked and "**0.0700** (1 seed)" in masked
    assert "- **amazon_beauty**: ease → `ease` (`ease`, 1 seed) of 2; sasrec → `sasrec_tuned`" in md
    # the page shows the same table first, filterable by family
    from recbench.leaderboard.html import render_html
    from recbench.leaderboard.models import model_table

    page = render_html([], None, model_table(pages, masked=False))
    assert '<a href="#models">every model</a>' in page and '<section id="models">' in page
    assert 'data-family="CF"' in page and "**" not in page and "<td>0.1100" in page
