#!/usr/bin/env python3
"""report.py — `lafn report`: executes the analysis notebooks on run folders and writes them as one HTML report.

Usage: analysis/report.py RUN_DIR [RUN_DIR ...] [OUT.html]   (default OUT: RUN_DIR/report.html of the first)
Each notebook runs in a fresh kernel with $LAFN_RUN_DIRS set to the folders (compared side by side when several)
and its working directory in analysis/. A notebook whose stage file is missing from a folder is left out, and the
report says which file; none left, or a cell error, is a failure (exit status 1; the report is still written
on a cell error, up to the failing cell). Missing Python modules: exit status 2 with the pip command.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = (("results", "eval"), ("atlas", "locate"), ("edits", "edit"))  # notebook, the stage file it reads
MODULES = ("h5py", "numpy", "matplotlib", "nbformat", "nbclient", "nbconvert", "ipykernel")
PIP = "python3 -m pip install h5py numpy matplotlib nbformat nbclient nbconvert ipykernel"


def fail(message, status=1):
    """Prints `lafn report: message` on stderr and exits with status."""
    print(f"lafn report: {message}", file=sys.stderr)
    sys.exit(status)


def parse_args(argv):
    """(run folders as absolute paths, output path) from the command line; exits with usage on a bad one."""
    usage = "usage: lafn report RUN_DIR [RUN_DIR ...] [OUT.html]"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage + "\n" + __doc__.split("\n", 3)[3], file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    out = Path(argv[-1]) if argv[-1].endswith(".html") else None
    runs = [Path(a).resolve() for a in (argv[:-1] if out else argv)]
    if not runs:
        fail(usage, 2)
    for run in runs:
        if not run.is_dir():
            fail(f"{run}: no such run folder")
    return runs, (out or runs[0] / "report.html").resolve()


def plan(runs):
    """The notebooks every folder has the stage file for, and a line per notebook left out naming the files."""
    chosen, skipped = [], []
    for name, stage in NOTEBOOKS:
        missing = [str(run / f"{stage}.h5") for run in runs if not (run / f"{stage}.h5").is_file()]
        if missing:
            skipped.append(f"{name}.ipynb left out: no {', '.join(missing)} (the {stage} stage has not run there)")
        else:
            chosen.append(name)
    return chosen, skipped


def execute(name, runs):
    """The notebook analysis/NAME.ipynb executed on runs, and the error of its failing cell (None if it ran)."""
    import nbclient
    from nbclient.exceptions import CellExecutionError
    import nbformat
    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    os.environ["LAFN_RUN_DIRS"] = os.pathsep.join(str(r) for r in runs)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3", shutdown_kernel="immediate",
                                     resources={"metadata": {"path": str(HERE)}})
    try:
        client.execute()
    except CellExecutionError as e:
        return nb, f"{name}.ipynb: a cell failed:\n{e}"
    return nb, None


def combine(parts, runs, skipped):
    """One notebook: a title cell (folders, what was left out), then each executed notebook's cells."""
    import nbformat
    lines = ["# lafn report", "", "Run folders:", ""] + [f"- `{r}`" for r in runs]
    lines += ["", "Notebooks: " + ", ".join(f"[{n}](#{n})" for n, _ in parts)]
    lines += [""] + [f"- {s}" for s in skipped]
    cells = [nbformat.v4.new_markdown_cell("\n".join(lines))]
    for name, nb in parts:
        cells.append(nbformat.v4.new_markdown_cell(f'<a id="{name}"></a>\n\n---\n*analysis/{name}.ipynb*'))
        cells.extend(nb.cells)
    return nbformat.v4.new_notebook(cells=cells, metadata=parts[0][1].metadata)


def write_html(nb, out):
    """Writes nb as HTML (images embedded) to out, through a temporary name."""
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)


def main(argv):
    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    if missing:
        fail(f"missing Python modules: {', '.join(missing)}; install them with\n  {PIP}\n"
             "(scripts/setup.sh --tests installs them)", 2)
    runs, out = parse_args(argv)
    chosen, skipped = plan(runs)
    for line in skipped:
        print(f"lafn report: {line}", file=sys.stderr)
    if not chosen:
        fail("nothing to report: each notebook needs a stage file that is missing (above); run the stages first "
             "(lafn run FILE.cfg)")
    parts, error = [], None
    for name in chosen:
        print(f"lafn report: executing {name}.ipynb", file=sys.stderr, flush=True)
        nb, error = execute(name, runs)
        parts.append((name, nb))
        if error:
            break
    write_html(combine(parts, runs, skipped), out)
    if error:
        fail(f"{error}\nthe report up to the failing cell: {out}")
    print(f"lafn report: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
