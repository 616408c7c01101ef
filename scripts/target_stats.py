#!/usr/bin/env python3
"""target_stats.py — what distinguishes the edited neurons of runs: fact-specificity, sharing, layer, edit outcome.

Usage: scripts/target_stats.py RUN_DIR [RUN_DIR ...]   (each with probe.h5, locate.h5 and edit.h5)

For each run's edited neurons (locate.h5 edit/: the LAFNs, or the random control's draw) it prints, as means
over facts with a bootstrap 95 % interval:
  own_kept    fraction of the fact's own prompts on which probe kept the neuron (score above probe's threshold)
  other_kept  the same over the other facts' prompts of the run (a neuron of the question form scores on all)
  own_act     mean |activation| at the last token on the own prompts where kept (0 where not kept)
  shared      fraction of the fact's neurons that are edited neurons of more than half of the run's facts
  layer       mean layer of the neurons
and the edit's outcome per fact from edit.h5: Adam steps, mean NLL of the new answer after the edit (over
languages), and the fraction of facts whose every language reached edit.stop_nll (status 0).
Only probe's kept entries are visible: a neuron below threshold on a prompt counts as not kept, activation 0.
"""
import sys

import h5py
import numpy as np


def ragged(group, name, i):
    """Row i of the ragged dataset group/name (values split by offsets)."""
    off = group[name + "/offsets"]
    return group[name + "/values"][off[i]:off[i + 1]]


def bootstrap(x, n=2000, seed=0):
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    return x.mean(), np.percentile(means, 2.5), np.percentile(means, 97.5)


def run_stats(run):
    probe, locate, edit = (h5py.File(f"{run}/{k}.h5", "r") for k in ("probe", "locate", "edit"))
    facts = list(probe["facts"][:])
    kept = []  # per fact: {(layer, neuron): {prompt: |act|}}, and the number of prompts
    for i in range(len(facts)):
        layers, neurons = ragged(probe, "kept/layer", i), ragged(probe, "kept/neuron", i)
        prompts, acts = ragged(probe, "kept/prompt", i), ragged(probe, "kept/act_last", i)
        table = {}
        for l, n, p, a in zip(layers, neurons, prompts, acts):
            table.setdefault((int(l), int(n)), {})[int(p)] = abs(float(a))
        kept.append((table, len(ragged(probe, "prompt/lang", i))))
    lfacts = list(locate["facts"][:])
    sets = [set(zip(ragged(locate, "edit/layer", i).tolist(), ragged(locate, "edit/neuron", i).tolist()))
            for i in range(len(lfacts))]
    count = {}
    for s in sets:
        for k in s:
            count[k] = count.get(k, 0) + 1
    rows = {k: [] for k in ("own_kept", "other_kept", "own_act", "shared", "layer")}
    for i, s in enumerate(sets):
        if not s:
            continue
        pi = facts.index(lfacts[i])
        own_table, n_own = kept[pi]
        own_k, own_a, other_k = [], [], []
        for k in s:
            hits = own_table.get(k, {})
            own_k.append(len(hits) / max(n_own, 1))
            own_a.append(np.mean(list(hits.values())) if hits else 0.0)
            tot = sum(n for j, (_, n) in enumerate(kept) if j != pi)
            other_k.append(sum(len(t.get(k, {})) for j, (t, _) in enumerate(kept) if j != pi) / max(tot, 1))
        rows["own_kept"].append(np.mean(own_k))
        rows["other_kept"].append(np.mean(other_k))
        rows["own_act"].append(np.mean(own_a))
        rows["shared"].append(np.mean([count[k] > len(sets) / 2 for k in s]))
        rows["layer"].append(np.mean([k[0] for k in s]))
    steps = edit["steps"][:, 0]
    nll = edit["nll_after"][:].mean(axis=1)
    reached = edit["status"][:, 0] == 0  # EDIT_STATUS: 0 edited, 1 no LAFN, 2 stop_nll not reached
    n_distinct = len(count)
    share_distinct = sum(c > len(sets) / 2 for c in count.values()) / max(n_distinct, 1)
    return rows, steps, nll, reached, n_distinct, share_distinct, len(sets)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"{'run':28s} {'metric':11s} {'mean':>8s} {'95% interval':>18s}")
    for run in sys.argv[1:]:
        rows, steps, nll, reached, n_distinct, share_distinct, n_facts = run_stats(run)
        for k, v in rows.items():
            m, lo, hi = bootstrap(v)
            print(f"{run:28s} {k:11s} {m:8.3f} [{lo:7.3f}, {hi:7.3f}]")
        for k, v in (("edit_steps", steps), ("nll_after", nll), ("stop_nll", reached.astype(float))):
            m, lo, hi = bootstrap(v)
            print(f"{run:28s} {k:11s} {m:8.3f} [{lo:7.3f}, {hi:7.3f}]")
        print(f"{run:28s} {n_facts} facts, {n_distinct} distinct neurons, {100 * share_distinct:.0f}% of them "
              f"edited neurons of more than half of the facts")


if __name__ == "__main__":
    main()
