#!/usr/bin/env python3
"""control_stats.py — what the edited neurons of runs are and how their edits behave, side by side, from locate.h5, edit.h5 and eval.h5.

Usage: scripts/control_stats.py RUN_DIR [RUN_DIR ...]
Per run: the neurons handed to edit (distinct, shared by more than half of the facts, per layer), the
optimisation (status, steps, NLL of the new answer before -> after, seconds per fact) and how often the
cached edit fired per criterion (eval.h5 fired/all; -1 = no question is left out). Markdown on stdout.
"""
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from eval_h5 import attr_list


def csr_rows(f, name):
    """The per-fact lists of CSR dataset name (a group with offsets and values)."""
    offsets, values = f[name + "/offsets"][:], f[name + "/values"][:]
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def neuron_stats(run):
    with h5py.File(run / "locate.h5", "r") as f:
        layers, neurons = csr_rows(f, "edit/layer"), csr_rows(f, "edit/neuron")
    per_fact = [set(zip(l.tolist(), n.tolist())) for l, n in zip(layers, neurons)]
    with_neurons = [s for s in per_fact if s]
    share = Counter(x for s in with_neurons for x in s)
    distinct = len(share)
    common = sum(1 for c in share.values() if c > len(with_neurons) / 2)
    per_layer = Counter(l for s in with_neurons for l, _ in s)
    return {"facts with neurons": len(with_neurons),
            "neurons per fact": np.mean([len(s) for s in with_neurons]) if with_neurons else 0,
            "distinct neurons": distinct,
            "share of distinct neurons in > half the facts": common / distinct if distinct else float("nan"),
            "layers": " ".join(f"{l}:{c}" for l, c in sorted(per_layer.items()))}


def edit_stats(run):
    with h5py.File(run / "edit.h5", "r") as f:
        status, steps = f["status"][:].ravel(), f["steps"][:].ravel()
        before, after, wall = f["nll_before"][:], f["nll_after"][:], f["wall_seconds"][:].ravel()
    opt = status != 1
    return {"edited / not reached / no neurons": f"{(status == 0).sum()} / {(status == 2).sum()} / {(status == 1).sum()}",
            "steps (mean)": steps[opt].mean() if opt.any() else float("nan"),
            "NLL of alt before -> after (mean over facts and languages)":
                f"{np.nanmean(before[opt]):.2f} -> {np.nanmean(after[opt]):.2f}" if opt.any() else "-",
            "seconds per optimised fact": wall[opt].mean() if opt.any() else float("nan")}


def fired_stats(run):
    with h5py.File(run / "eval.h5", "r") as f:
        langs, crits = attr_list(f, "eval_langs"), attr_list(f, "eval_criteria")
        fired = f["fired/all"][:].reshape(-1, len(langs), len(crits)).astype(float)
    fired[fired < 0] = np.nan
    return {f"fired on {c} questions": np.nanmean(fired[:, :, ci]) for ci, c in enumerate(crits)}


def main():
    runs = [Path(p) for p in sys.argv[1:]]
    if not runs:
        raise SystemExit("usage: scripts/control_stats.py RUN_DIR [RUN_DIR ...]")
    rows = {}
    for run in runs:
        for part in (neuron_stats, edit_stats, fired_stats):
            for key, value in part(run).items():
                rows.setdefault(key, {})[run.name] = value
    print("| | " + " | ".join(r.name for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for key, values in rows.items():
        cells = [values.get(r.name, "") for r in runs]
        print(f"| {key} | " + " | ".join(f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)
                                         for v in cells) + " |")


if __name__ == "__main__":
    main()
