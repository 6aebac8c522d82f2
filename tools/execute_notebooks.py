"""Execute notebooks top to bottom, the one way they are committed.

    .venv/bin/python tools/execute_notebooks.py [notebooks/01_*.ipynb ...]

Runs each notebook in a fresh kernel on the built-in model on CPU (SDLIB_MODEL=builtin,
SDLIB_DEVICE=cpu, offline) on one CPU thread, from the notebooks/ folder, and writes it back with
outputs and execution counts 1..N. Prints the wall time of each. Used by the benchmark as well.

One thread: torch splits sums (matrix products, reductions) among its threads, so the last digits
depend on the thread count; with one, the committed numbers reproduce on any machine, and
`./course.sh test` checks notebooks side by side, one per core.
"""
import hashlib
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import answers  # noqa: E402
ENV = {"SDLIB_MODEL": "builtin", "SDLIB_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
       "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0",
       "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Every cell, quickly, for the tests that only check that the notebooks run (on the SD-shaped twins,
# in the browser): notebook 07 trains 2 steps, 07 and 08 sample 5 (08's sampler sweep keeps its
# counts); the twin runs cap the step counts written in the other notebooks' cells at the same 5.
QUICK_ENV = {"SDLIB_TRAIN_STEPS": "2", "SDLIB_SAMPLE_STEPS": "5"}
# The sampling counts written into cells (`num_steps=25`, `set_timesteps(25)`, ...) are capped at
# QUICK_STEPS in the quick copies (the hand loops and the library calls they are compared with
# alike). 08's sampler sweep keeps its counts (5, 10, 25, 50: a worked answer reads the 10-step row).
QUICK_STEPS = int(QUICK_ENV["SDLIB_SAMPLE_STEPS"])
STEP_COUNT = re.compile(r"\b(num_steps\s*=\s*|num_inference_steps\s*=\s*|set_timesteps\()(\d+)\b")


def quick_steps(source):
    """`source` with every literal step count above QUICK_STEPS lowered to it."""
    return STEP_COUNT.sub(lambda m: m[1] + str(min(int(m[2]), QUICK_STEPS)), source)


def quick_copy(nb):
    """The notebook `nb` (nbformat) with `quick_steps` applied to every code cell, in place; returns
    it. The quick copies of the twin runs, the browser test and the Colab install test."""
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = quick_steps(c.source)
    return nb


def execute(path, write=True, timeout=600, env=None):
    """Run one notebook; return its wall time in seconds. env: settings over ENV (the benchmark
    times the notebooks on another model or device with it; what is committed uses ENV alone)."""
    os.environ.update({**ENV, **(env or {})})
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None) if not _has_widgets(nb) else None
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    nb = answers.hide(_stable_widget_ids(_cell_ids(nb)))  # every worked answer closed until opened
    if write:
        nbformat.write(nb, path)
    return seconds


def _merge_streams(outputs):
    """Join consecutive prints to the same stream: how the kernel split them depends on timing."""
    merged = []
    for out in outputs:
        if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == out.name):
            merged[-1].text += out.text
        else:
            merged.append(out)
    return merged


def _stable_widget_ids(nb):
    """Widget model ids are random UUIDs; number them in order of appearance instead, so that
    executing twice writes the same file."""
    text = nbformat.writes(nb)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    ids = dict.fromkeys(re.findall(r'"model_id": "([0-9a-f]{32})"', text) + list(state.get("state", {})))
    for k, old in enumerate(ids):
        text = text.replace(old, f"{k + 1:032x}")
    return nbformat.reads(text, as_version=4)


def _cell_ids(nb):
    """Give a cell added without an id (nbformat 4.5 wants one; the site finds answers by it) one
    made from its place and text, so that executing twice writes the same file."""
    for i, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell["id"] = f"c{i}-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
    return nb


def _has_widgets(nb):
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def main(paths):
    paths = paths or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for p in paths:
        print(f"{Path(p).name}: {execute(p):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
