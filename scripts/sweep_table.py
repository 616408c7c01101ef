#!/usr/bin/env python3
"""sweep_table.py — one row per sweep variant: per-language token accuracy after the edit, from each eval.h5.

Usage: scripts/sweep_table.py OUT_DIR   (reads OUT_DIR/variants.tsv, writes OUT_DIR/sweep.tsv, prints a Markdown table)
Score = mean over languages of (reliability + generality + locality) / 3, token accuracy of the
all-language edit; `min` columns are the worst language.
"""
import sys
from pathlib import Path

import h5py
import numpy as np

CRITERIA = ("reliability", "generality", "locality", "portability")


def attr_list(f, key):
    value = f.attrs[key]
    return (value.decode() if isinstance(value, bytes) else str(value)).split(",")


def variant_row(run_dir):
    """Language means and minima per criterion, edit seconds per fact, LAFNs per fact."""
    with h5py.File(run_dir / "eval.h5", "r") as f:
        sets, crits, metrics = attr_list(f, "eval_sets"), attr_list(f, "eval_criteria"), attr_list(f, "eval_metrics")
        if "all" not in sets or "token_em" not in metrics:
            raise SystemExit(f"sweep_table: {run_dir}/eval.h5: needs edit set 'all' and metric token_em")
        mean = f["cells/mean"][sets.index("all"), :, :, metrics.index("token_em")]
        seconds = float(np.nanmean(f["edit_wall_seconds"][:]))
    with h5py.File(run_dir / "locate.h5", "r") as f:
        offsets = f["edit/layer/offsets"][:] if "edit/layer/offsets" in f else None
    row = {}
    for c in CRITERIA:
        if c in crits:
            per_lang = mean[:, crits.index(c)]
            row[c] = (float(np.nanmean(per_lang)), float(np.nanmin(per_lang)))
    row["score"] = float(np.mean([row[c][0] for c in CRITERIA[:3] if c in row]))
    row["seconds"] = seconds
    row["lafns"] = float(np.mean(np.diff(offsets))) if offsets is not None else float("nan")
    return row


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: scripts/sweep_table.py OUT_DIR")
    out = Path(sys.argv[1])
    variants = [line.split("\t", 1) for line in (out / "variants.tsv").read_text().splitlines() if line]
    header = ["variant", "score"] + [f"{c}_{s}" for c in CRITERIA for s in ("mean", "min")] + \
             ["edit_s_per_fact", "neurons_per_fact", "overrides"]
    rows = []
    for name, overrides in variants:
        r = variant_row(out / name)
        rows.append([name, f"{r['score']:.3f}"] +
                    [f"{r[c][k]:.3f}" if c in r else "-" for c in CRITERIA for k in (0, 1)] +
                    [f"{r['seconds']:.1f}", f"{r['lafns']:.1f}", overrides or "(defaults)"])
    (out / "sweep.tsv").write_text("\n".join("\t".join(x) for x in [header] + rows) + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for x in rows:
        print("| " + " | ".join(x) + " |")


if __name__ == "__main__":
    main()
