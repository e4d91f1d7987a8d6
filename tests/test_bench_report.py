"""scripts/bench_report.py: one table from make bench's reports, and the README section written from it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/bench_report.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def model(epoch: float, peak: float, **kw: float | None) -> dict:
    return {"seconds_per_epoch": epoch, "val_seconds_per_epoch": 1.0, "test_seconds": kw.get("test", 2.0),
            "fit_seconds": kw.get("fit"), "peak_memory_mb": peak, "created_at": "2026-12-03T07:00:00",
            "hardware": {"cpu": "Test CPU", "cpu_count": 2}, "git": {"sha": "abcdef0123"}}  # fmt: skip


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    write = lambda name, obj: (folder / name).write_text(json.dumps(obj))  # noqa: E731
    write("models_amazon_beauty.json", {"threads": 2, "models": {
        "sasrec": model(24.0, 1500), "gru4rec": model(30.0, 2500)}})  # fmt: skip
    write("cf_amazon_beauty.json", {"models": {
        "ease": model(0.0, 2900, fit=31.0), "lightgcn": model(3.5, 900),
        "bprmf": model(2.0, 800)}})  # fmt: skip
    write(
        "eval.json",
        {
            "cases": {
                "sasrec/amazon_beauty": {"floor": 0.56, "length": 0.66, "length_x_floor": 1.18},
                "sasrec/ml_1m": {"floor": 0.05, "length": 2.0, "length_x_floor": 40.0, "forward": 1.9},
                "hstu/ml_1m": {"floor": 0.05, "length": 2.2, "length_x_floor": 44.0, "forward": 2.4},
            }
        },
    )
    gen = {"seconds_per_step": 2.0, "steps_per_epoch": 10, "seconds_per_epoch": 20.0,
           "decode_users_per_second": 50.0, "gflop_per_second": 40.0,
           "share_of_matmul_peak": 0.4}  # fmt: skip
    write("generative.json", {"threads": 2, "matmul_peak_gflop_per_second": 100.0, "tiger": gen,
                              "sid_gpt": {**gen, "seconds_per_epoch": 5.0},
                              "epoch_ratio_sid_gpt_over_tiger": 0.25})  # fmt: skip
    write("data_ml20m.json", [{"dataset": "ml_20m", "preprocess_s": 12.0, "peak_rss_mb": 2100.0,
                               "note": "synthetic, 1 x ML-20M size"}])  # fmt: skip
    top20 = {
        "speedup": 8.4,
        "ours_users_per_s": 20.0,
        "hf_users_per_s": 2.4,
        "identical_lists": 0.99,
        "identical_up_to_ties": 1.0,
    }  # one list has two near-tied items swapped
    write("decode.json", {"users": 128, "beam": 20, "top20": top20})
    # sasrec_beauty_prefix.json and startup.json are absent
    return folder


def test_one_table_with_goals_and_what_was_not_measured(reports, tmp_path):
    br = load_script()
    figures, absent, where = br.collect(reports, tmp_path / "no_rows")
    by_what = {f.what: f for f in figures}
    assert by_what["sasrec: one epoch (dense training)"].met is True  # 24 <= 175 / 3
    assert by_what["gru4rec: one epoch (dense training)"].met is False  # 30 > 68.4 / 3
    assert by_what["gru4rec: peak memory"].met is False  # 2.5 GB vs RecBole's 2.2
    assert by_what["ease: fit"].met is False and by_what["ease: peak memory"].met is True
    assert by_what["bprmf: one epoch"].goal == "" and by_what["bprmf: one epoch"].met is None
    assert by_what["sasrec/amazon_beauty: validation pass (floor 0.56 s)"].ours == "0.66 s (1.18x floor)"
    forward = by_what["sasrec/ml_1m: of it, the network's forward (the rest against the floor)"]
    assert forward.ours == "1.90 s (95%; rest 2.00x floor)" and forward.met is None  # (2.0 - 1.9) / 0.05
    assert not any(f.what.startswith("sasrec/amazon_beauty: of it") for f in figures)  # no forward measured
    longer = by_what["hstu/ml_1m: of it, the network's forward (the rest against the floor)"]
    assert longer.ours == "2.40 s (all of it)"  # timed apart, longer than the pass: no negative rest
    tiger = by_what["tiger: training step, share of the float32 matmul peak (100 GFLOP/s, 2 threads)"]
    assert tiger.ours == "40.0 GFLOP/s (40%)" and tiger.met is False
    assert by_what["sid_gpt epoch ÷ TIGER epoch"].met is True
    ml20m = by_what["ML-20M-sized input (synthetic, 20M rows): preprocessing"]
    assert ml20m.met is False and ml20m.goal == "≤ 11.4 s (was 7.6 s)"  # 12.0 > 1.5 x 7.6
    assert by_what["ML-20M-sized input: peak memory"].met is True  # 2.1 GB <= 3.3 GB
    decode = next(f for f in figures if f.what.startswith("tiger: decoding 128 users"))
    assert decode.met is True and decode.ours.startswith("8.4x (20.0 vs 2.4 users/s)")
    assert decode.ours.endswith("lists identical for 100% up to near-ties")
    assert [a.split(" ")[0] for a in absent] == ["sasrec_beauty_prefix.json", "startup.json"]
    table = br.markdown(figures, absent, where)
    assert "Test CPU (2 cores), 2 threads, commit abcdef0" in table
    assert (
        "| Training on Beauty | sasrec: one epoch (dense training) | 24.0 s | 175 s | ≤ 1/3 of RecBole's "
        "| yes |" in table
    )
    assert "| gru4rec: peak memory | 2.5 GB | 2.2 GB | below RecBole's | **no** |" in table
    assert "Not measured in this report: sasrec_beauty_prefix.json (`python scripts/bench_sasrec.py" in table


def test_time_to_recbole_quality_comes_from_the_committed_rows(tmp_path):
    br = load_script()
    folder = tmp_path / "rows/seqrec-loo-full/amazon_beauty" / br.QUALITY_LABEL
    folder.mkdir(parents=True)
    for seed, (recall, seconds) in enumerate([(0.0844, 4537.0), (0.0820, 300.0), (0.0800, 200.0)]):
        row = {"seed": seed, "metrics": {"test": {"recall@10": recall}},
               "cost": {"train_seconds_to_best": seconds}, "hardware": {"torch_threads": 1}}  # fmt: skip
        (folder / f"seed{seed}-x.json").write_text(json.dumps(row))
    met = [f.met for f in br.time_to_quality(tmp_path / "rows")]
    assert met == [False, True, False]  # too slow; fast and good enough; fast but below RecBole's quality


def test_the_readme_section_is_rewritten_between_its_markers(reports, tmp_path):
    br = load_script()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{br.START}\nold table\n{br.END}\nafter\n")
    assert br.main(["--reports", str(reports), "--rows", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{br.END}\nafter\n")
    assert "old table" not in text and "| sasrec: one epoch (dense training) |" in text
    once = text
    br.main(["--reports", str(reports), "--rows", str(tmp_path), "--readme", str(readme)])
    assert readme.read_text() == once  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        br.rewrite_readme(readme, "table")


def test_the_readme_has_the_markers():
    br = load_script()
    text = (SCRIPT.parents[1] / "README.md").read_text()
    assert text.count(br.START) == 1 and text.count(br.END) == 1


def test_decode_lists_identical_up_to_near_ties():
    spec = importlib.util.spec_from_file_location("bench_decode", SCRIPT.parent / "bench_decode.py")
    assert spec and spec.loader
    bd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bd)
    ours, scores = np.array([3, 1, 2]), np.array([-1.0, -1.5, -1.5002])
    assert bd.same_up_to_ties(ours, scores, np.array([3, 1, 2]))
    assert bd.same_up_to_ties(ours, scores, np.array([3, 2, 1]))  # 1 and 2 tie within 1e-3
    assert not bd.same_up_to_ties(ours, scores, np.array([1, 3, 2]))  # 3 is 0.5 ahead of 1
    assert not bd.same_up_to_ties(ours, scores, np.array([3, 1, 4]))  # another item
