#!/usr/bin/env python3
"""test_analysis: the analysis notebooks executed on small runs of the tiny model made by `lafn run`, through `lafn report`.

Usage: tests/analysis/test_analysis.py LAFN_BINARY   (from the repository root; ctest test_analysis)
Two runs of 4 demo facts in en and zh on the tiny random-weight Gemma 3 (the random control, and the LAFNs reusing
its probe.h5), edit set `each` evaluated: `lafn report` over both must execute every notebook without a cell
error, embed its figures, and every figure must show data on every axis (the notebooks' figure log, written by
lafn_analysis.finish, which also refuses an empty axis — checked here on a figure made empty on purpose). A folder
with only probe.h5 and locate.h5 reports the atlas alone and names the missing files; an empty one fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKS = [0, 0]  # made, failed
# Figures each notebook draws on these runs (lafn_analysis.finish names them), at least.
EXPECTED = ("heatmap token_em", "comparison token_em", "per language token_em", "lafns per layer", "jaccard",
            "lafns per fact", "shared neurons", "loss curves", "nll before after", "time and memory")


def check(ok, message):
    """Counts a check; prints message when it failed."""
    CHECKS[0] += 1
    if not ok:
        CHECKS[1] += 1
        print(f"FAIL: {message}", file=sys.stderr)
    return ok


def run(argv, env=None):
    """Runs argv from the repository root; (exit status, stdout + stderr)."""
    p = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def write_cfg(path, out_dir):
    """The pipeline file of the runs: tiny Gemma 3, demo facts 0-3 in en and zh, 2 ranks, the each edit set."""
    path.write_text(
        'model = { path = "tests/fixtures/models/tiny-gemma3.gguf"; };\n'
        'data = { format = "jsonl"; path = "conf/data/demo_facts.jsonl"; fact_range = [0, 4]; };\n'
        'languages = { codes = ["en", "zh"]; };\n'
        f'run = {{ output_dir = "{out_dir}"; ranks = 2; shard_facts = 2; seed = 7; }};\n'
        'locate = { prompt_fraction = 0.5; };\n'
        'edit = { steps = 12; lr = 0.1; };\n'
        'eval = { edit_sets = "each"; bootstrap_samples = 50; };\n')


def make_runs(lafn, tmp):
    """Runs A (random control, all stages) and B (LAFNs, on A's probe.h5); returns their folders or None."""
    a, b = tmp / "random", tmp / "lafn"
    cfg = tmp / "tiny.cfg"
    write_cfg(cfg, a)
    status, out = run([lafn, "run", str(cfg)])
    if not check(status == 0, f"lafn run (random control) exited {status}:\n{out[-3000:]}"):
        return None
    b.mkdir()
    shutil.copy(a / "probe.h5", b / "probe.h5")
    status, out = run([lafn, "run", str(cfg), "--stages", "locate,edit,eval", f"run.output_dir={b}",
                       "locate.neuron_set=lafn"])
    if not check(status == 0, f"lafn run (LAFNs) exited {status}:\n{out[-3000:]}"):
        return None
    return a, b


def check_report(lafn, runs, tmp):
    """lafn report over both runs: exit 0, every notebook in the HTML, figures embedded and with data."""
    log, html = tmp / "figures.jsonl", tmp / "report.html"
    env = dict(os.environ, LAFN_FIGURE_LOG=str(log))
    status, out = run([lafn, "report", *map(str, runs), str(html)], env)
    check(status == 0, f"lafn report exited {status}:\n{out[-5000:]}")
    body = html.read_text(encoding="utf-8") if html.is_file() else ""
    for name in ("results", "atlas", "edits"):
        check(f'id="{name}"' in body, f"the report lacks the {name} notebook")
    images = len(re.findall(r"data:image/png;base64,[A-Za-z0-9+/]{2000}", body))
    figures = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    check(images >= len(figures) > 0, f"{images} embedded PNG images for {len(figures)} figures")
    for expected in EXPECTED:
        check(any(f["figure"].startswith(expected) for f in figures), f"no figure '{expected}' in {log}")
    for f in figures:
        empty = [axis for axis, n in f["axes"].items() if n <= 0]
        check(f["axes"] and not empty, f"figure '{f['figure']}' has axes without data: {empty or 'no axis'}")
    check("Traceback" not in body, "the report shows an error")
    print(f"report: {len(figures)} figures, {images} images, {html.stat().st_size // 1024 if html.is_file() else 0} kB")


def check_partial(lafn, runs, tmp):
    """A folder with probe.h5 and locate.h5 only: the atlas alone, the missing files named; an empty folder fails."""
    part = tmp / "partial"
    part.mkdir()
    for name in ("probe.h5", "locate.h5"):
        shutil.copy(runs[0] / name, part / name)
    status, out = run([lafn, "report", str(part)])
    check(status == 0 and (part / "report.html").is_file(), f"report on probe + locate exited {status}:\n{out[-3000:]}")
    check(f"no {part}/eval.h5" in out and f"no {part}/edit.h5" in out, f"the missing files are not named:\n{out}")
    body = (part / "report.html").read_text(encoding="utf-8") if (part / "report.html").is_file() else ""
    check('id="atlas"' in body and 'id="results"' not in body, "the partial report is not the atlas alone")
    empty = tmp / "empty"
    empty.mkdir()
    status, out = run([lafn, "report", str(empty)])
    check(status != 0 and f"{empty}/eval.h5" in out and "nothing to report" in out,
          f"an empty folder must fail naming eval.h5; exit {status}:\n{out}")


def check_empty_axis_refused():
    """lafn_analysis.finish refuses a figure with an axis that shows nothing (only NaN)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sys.path.insert(0, str(REPO / "analysis"))
    import lafn_analysis as la
    fig, (full, empty) = plt.subplots(1, 2)
    full.plot([0, 1], [1, 2])
    empty.plot([0, 1], [float("nan")] * 2)
    empty.set_title("nan only")
    try:
        la.finish(fig, "test")
        check(False, "finish accepted an axis without data")
    except ValueError as e:
        check("nan only" in str(e), f"the message does not name the empty axis: {e}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lafn = sys.argv[1]
    check_empty_axis_refused()
    tmp = Path(tempfile.mkdtemp(prefix="lafn-analysis-"))
    runs = make_runs(lafn, tmp)
    if runs:
        check_report(lafn, runs, tmp)
        check_partial(lafn, runs, tmp)
    print(f"test_analysis: {CHECKS[0] - CHECKS[1]} passed, {CHECKS[1]} failed")
    if CHECKS[1] == 0:
        shutil.rmtree(tmp)
    else:
        print(f"test_analysis: files kept in {tmp}", file=sys.stderr)
    sys.exit(1 if CHECKS[1] else 0)


if __name__ == "__main__":
    main()
