"""lafn_analysis — what the analysis notebooks share: opening a run's stage files, their provenance as labels, bootstrap intervals and figures checked for real data.

Everything comes from the HDF5 files (h5py) and their attributes (docs/HDF5_LAYOUT.md); nothing else of a run is read.
"""
import json
import os
import re
from pathlib import Path

import h5py
import numpy as np

def run_dirs_from_env(default="runs/demo"):
    """The run folders to analyse: $LAFN_RUN_DIRS (separated by os.pathsep), else default."""
    return [d for d in os.environ.get("LAFN_RUN_DIRS", default).split(os.pathsep) if d]


def open_stage(run_dir, stage, needed_by):
    """RUN_DIR/STAGE.h5 opened read-only; FileNotFoundError naming the file, the notebook and the stage to run."""
    path = Path(run_dir) / f"{stage}.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {needed_by} needs the {stage} stage's output "
                                f"(lafn run FILE.cfg --stages {stage} with run.output_dir = {run_dir})")
    return h5py.File(path, "r")


def text(f, name, default=""):
    """String attribute name of the open file (h5py gives bytes), or default when absent."""
    if name not in f.attrs:
        return default
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def attr_list(f, name):
    """A comma-separated string attribute as a list."""
    return text(f, name).split(",")


def _config_value(raw):
    """One libconfig value of config_print's output as Python: string, number, bool or list."""
    raw = raw.strip()
    if raw.startswith("["):
        inner = raw[1:-1].strip()
        return [_config_value(x) for x in re.findall(r'"(?:[^"\\]|\\.)*"|[^,\s][^,]*', inner)] if inner else []
    if raw.startswith('"'):
        return json.loads(raw)
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
    except ValueError:
        return raw


def config(f):
    """{"section.key": value} from the file's lafn_config_resolved (config_print: one `key = value;` per line)."""
    out, section = {}, None
    line_re = re.compile(r'^\s*(\w+)\s*=\s*((?:"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^;#"])*?)\s*;')
    for line in text(f, "lafn_config_resolved").splitlines():
        opening = re.match(r"^(\w+)\s*=\s*\{", line)
        if opening:
            section = opening.group(1)
            continue
        m = line_re.match(line)
        if section and m:
            out[f"{section}.{m.group(1)}"] = _config_value(m.group(2))
    return out


# Knobs that tell runs apart in a legend when nothing else differs (the edited neuron set, the edit method).
LABEL_KEYS = ("locate.neuron_set", "edit.method", "edit.trigger")
# Knobs never used as labels: they differ between any two runs and say nothing about the method.
UNLABELLED = ("run.output_dir", "run.resume", "run.ranks", "run.threads_per_rank")


def run_labels(files):
    """A short label per open stage file: the knobs whose values differ between the runs (all of LABEL_KEYS
    that the file has when there is one run, or nothing differs), from lafn_config_resolved."""
    configs = [config(f) for f in files]
    keys = sorted(set().union(*configs)) if configs else []
    differing = [k for k in keys if k not in UNLABELLED and len({repr(c.get(k)) for c in configs}) > 1]
    shown = differing or [k for k in LABEL_KEYS if any(k in c for c in configs)]
    labels = []
    for c in configs:
        parts = [f"{k.split('.', 1)[1]}={c[k]}" for k in shown if k in c]
        labels.append(", ".join(parts) if parts else "defaults")
    if len(set(labels)) < len(labels):  # same knobs: the folders tell them apart
        labels = [f"{label} ({Path(f.filename).parent.name})" for label, f in zip(labels, files)]
    return labels


def print_provenance(f, label):
    """Prints the run's label and the provenance attributes a reader wants to see, one per line."""
    print(label)
    for key, value in (("file", f.filename), ("stage", text(f, "lafn_stage")), ("run id", text(f, "lafn_run_id")),
                       ("model", f"{text(f, 'lafn_model_path')} (sha256 {text(f, 'lafn_model_sha256')[:12]}…)"),
                       ("git", f"{text(f, 'lafn_git_revision')[:12]} (dirty: {text(f, 'lafn_git_dirty')})"),
                       ("written", f"{text(f, 'lafn_time_utc')} on {text(f, 'lafn_host')}, "
                                   f"{text(f, 'lafn_mpi_ranks')} ranks"),
                       ("command", text(f, "lafn_command_line"))):
        print(f"  {key:8s} {value}")


def bootstrap(x, samples=2000, seed=1, confidence=0.95):
    """Mean of the finite values of x and its percentile-bootstrap interval; NaNs when none are finite."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    means = x[np.random.default_rng(seed).integers(0, len(x), (samples, len(x)))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    return float(x.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def axis_points(ax):
    """Finite data values drawn in ax: line points, image pixels, bar heights, scatter points."""
    n = 0
    for line in ax.lines:
        n += int(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).sum())
    for image in ax.images:
        n += int(np.isfinite(np.ma.filled(np.asarray(image.get_array(), dtype=float), np.nan)).sum())
    for patch in ax.patches:
        height = getattr(patch, "get_height", lambda: np.nan)()
        n += int(np.isfinite(height) and height != 0)
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float)
        n += int(np.isfinite(offsets).all(axis=-1).sum()) if offsets.ndim == 2 else 0
    return n


def finish(fig, name):
    """Checks that every visible axis of fig shows finite data (ValueError naming the figure and axis if not),
    appends the figure's name and per-axis counts to $LAFN_FIGURE_LOG (JSON Lines) when set, and shows it."""
    import matplotlib.pyplot as plt
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    counts = {ax.get_title() or f"axis {i}": axis_points(ax) for i, ax in enumerate(axes)}
    empty = [title for title, n in counts.items() if n == 0]
    if not axes or empty:
        raise ValueError(f"figure '{name}': no data in {', '.join(empty) or 'any axis'}")
    log = os.environ.get("LAFN_FIGURE_LOG")
    if log:
        with open(log, "a") as out:
            out.write(json.dumps({"figure": name, "axes": counts}) + "\n")
    plt.show()
