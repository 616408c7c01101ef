#!/usr/bin/env python3
"""report_table.py — a run's per-language table, unedited -> edited with the edited mean's bootstrap interval, from eval.h5.

Usage: scripts/report_table.py RUN_DIR [METRIC]   (METRIC: token_em (default), f1, em, f1_harmonic)
Prints a Markdown table: one row per test language for the all-language edit (edit set `all`), a
row of language means, and a line of the language means in every other metric that eval wrote.
"""
import sys
from pathlib import Path

import h5py
import numpy as np

from eval_h5 import attr_list


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: scripts/report_table.py RUN_DIR [METRIC]")
    path = Path(sys.argv[1]) / "eval.h5"
    with h5py.File(path, "r") as f:
        sets, langs = attr_list(f, "eval_sets"), attr_list(f, "eval_langs")
        crits, metrics = attr_list(f, "eval_criteria"), attr_list(f, "eval_metrics")
        metric = sys.argv[2] if len(sys.argv) == 3 else "token_em"
        if "unedited" not in sets or "all" not in sets or metric not in metrics:
            raise SystemExit(f"report_table: {path}: needs edit sets 'unedited' and 'all' and metric {metric} "
                             f"(has sets {sets}, metrics {metrics})")
        cells = {k: f["cells/" + k][:] for k in ("mean", "lo", "hi", "n")}
    pre, post = sets.index("unedited"), sets.index("all")
    m = metrics.index(metric)
    print("| language | " + " | ".join(f"{c} unedited → edited [95% CI]" for c in crits) + " | n |")
    print("|---|" + "---|" * len(crits) + "---|")
    for li, lang in enumerate(langs):
        row = [f"{cells['mean'][pre, li, ci, m]:.2f} → **{cells['mean'][post, li, ci, m]:.2f}** "
               f"[{cells['lo'][post, li, ci, m]:.2f}, {cells['hi'][post, li, ci, m]:.2f}]" for ci in range(len(crits))]
        print(f"| {lang} | " + " | ".join(row) + f" | {int(cells['n'][post, li, 0, m])} |")
    means = [f"{np.nanmean(cells['mean'][pre, :, ci, m]):.2f} → **{np.nanmean(cells['mean'][post, :, ci, m]):.2f}**"
             for ci in range(len(crits))]
    print("| mean of languages | " + " | ".join(means) + " | |")
    for other in metrics:
        if other == metric:
            continue
        o = metrics.index(other)
        parts = [f"{c} {np.nanmean(cells['mean'][pre, :, ci, o]):.2f} → {np.nanmean(cells['mean'][post, :, ci, o]):.2f}"
                 for ci, c in enumerate(crits)]
        print(f"\n{other}, unedited → edited, language means: " + ", ".join(parts))


if __name__ == "__main__":
    main()
