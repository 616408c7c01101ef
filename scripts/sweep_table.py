#!/usr/bin/env python3
"""sweep_table.py — one row per sweep variant: per-language token accuracy after the edit, from each eval.h5.

Usage: scripts/sweep_table.py OUT_DIR [REFERENCE_RUN_DIR]
  (reads OUT_DIR/variants.tsv, writes OUT_DIR/sweep.tsv, prints a Markdown table)
Score = mean over languages of (reliability + generality + locality) / 3, token accuracy of the
all-language edit; `min` columns are the worst language. `score_diff` compares each variant with the
reference (REFERENCE_RUN_DIR, else the first variant) fact by fact: the mean over shared facts of the
per-fact score difference with its 95 % paired-bootstrap interval (2,000 resamples, seed 1) — an
interval containing 0 is a tie.
"""
import sys
from pathlib import Path

import h5py
import numpy as np

from eval_h5 import attr_list

CRITERIA = ("reliability", "generality", "locality", "portability")
SCORED = CRITERIA[:3]


def fact_scores(run_dir):
    """{fact index: score of that fact} from eval.h5's per-fact `post/all` (language means per criterion)."""
    with h5py.File(run_dir / "eval.h5", "r") as f:
        langs, crits, metrics = attr_list(f, "eval_langs"), attr_list(f, "eval_criteria"), attr_list(f, "eval_metrics")
        missing = [c for c in SCORED if c not in crits]
        if missing:
            raise SystemExit(f"sweep_table: {run_dir}/eval.h5: no {', '.join(missing)} (eval.criteria)")
        post = f["post/all"][:].reshape(-1, len(langs), len(crits), len(metrics))[..., metrics.index("token_em")]
        facts = f["facts"][:]
    with np.errstate(all="ignore"):  # a fact without any question of a criterion stays NaN
        per_crit = np.nanmean(post[:, :, [crits.index(c) for c in SCORED]], axis=1)
    return {int(i): float(np.mean(s)) for i, s in zip(facts, per_crit) if not np.isnan(s).any()}


def score_diff(scores, reference):
    """Mean paired difference over the shared facts and its 95 % percentile-bootstrap interval."""
    shared = sorted(set(scores) & set(reference))
    if not shared:
        return float("nan"), float("nan"), float("nan")
    d = np.array([scores[i] - reference[i] for i in shared])
    means = d[np.random.default_rng(1).integers(0, len(d), (2000, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


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
    row["score"] = float(np.mean([row[c][0] for c in SCORED if c in row]))
    row["seconds"] = seconds
    row["lafns"] = float(np.mean(np.diff(offsets))) if offsets is not None else float("nan")
    return row


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: scripts/sweep_table.py OUT_DIR [REFERENCE_RUN_DIR]")
    out = Path(sys.argv[1])
    variants = [(line.split("\t") + [""])[:2] for line in (out / "variants.tsv").read_text().splitlines() if line]
    if not variants:
        raise SystemExit(f"sweep_table: {out}/variants.tsv: no variants")
    reference = fact_scores(Path(sys.argv[2]) if len(sys.argv) == 3 else out / variants[0][0])
    header = ["variant", "score", "score_diff [95% CI]"] + [f"{c}_{s}" for c in CRITERIA for s in ("mean", "min")] + \
             ["edit_s_per_fact", "neurons_per_fact", "overrides"]
    rows = []
    for name, overrides in variants:
        r = variant_row(out / name)
        diff = "%+.3f [%+.3f, %+.3f]" % score_diff(fact_scores(out / name), reference)
        rows.append([name, f"{r['score']:.3f}", diff] +
                    [f"{r[c][k]:.3f}" if c in r else "-" for c in CRITERIA for k in (0, 1)] +
                    [f"{r['seconds']:.1f}", f"{r['lafns']:.1f}", overrides or "(defaults)"])
    (out / "sweep.tsv").write_text("\n".join("\t".join(x) for x in [header] + rows) + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for x in rows:
        print("| " + " | ".join(x) + " |")


if __name__ == "__main__":
    main()
