"""Every notebook runs top to bottom on real Stable Diffusion's shapes, not only on the built-in model.

Colab/Kaggle learners run the course on SD v1.4 (and may pick SD 2.1); their path can never be
downloaded here, so each notebook is executed on twins (`sdlib.testing.twins`): SD v1.4's configs
(PNDM, CLIP ViT-L/14 text encoder, 768 wide) and, for the notebooks that read the UNet's output,
SD 2.1's (DDIM, v-prediction, OpenCLIP-H 1024 wide, pad "!"). The twins are narrow, run at 64 px
(8 x 8 latents) and have 2 text-encoder layers (of 12 and 23; the width, heads and vocabulary are
real SD's) so that a CPU gets through; notebook 07 trains 2 steps (SDLIB_TRAIN_STEPS), 07 and 08
sample 5 (SDLIB_SAMPLE_STEPS), and the step counts written in cells are lowered to 5 (`quick_steps`).
Outputs are not compared (random weights draw noise), but every cell must run, and the settings
cell must pick the real-SD branch. The runs go side by side (`runs`).

Nothing of the built-in model's world may reach a learner on real SD (issue 26): the judge
(`sdlib.builtin.checker`, `sdlib.builtin.evaluate`) reads the built-in model's coloured shapes, so
on a twin every call to it fails the run (GUARD, a cell put first), and no printed line may read
like a verdict ("red circle", "pink in 25%") unless it says it is about the built-in model
(`builtin_world_lines`). A cell that depends on that world prints one line naming the built-in
model and skips, or has an SD branch. Notebook 10 compares the built-in eps model with its
flow-matching twin in every world (SD v1 has no flow sibling): the judge reads only that pair's
pictures there, so it runs without the guard (JUDGES_THE_BUILTIN_PAIR), and every verdict it
prints still names the built-in model. Notebook 11 opens an SD3 beside the SD model: on the twins it
opens a twin of SD3 medium (`SDLIB_SD3_MODEL`, `twins.build_sd3_twin`: SD3's 16 latent channels and
2 x 2 patches, the real CLIP widths, 2 joint blocks), as a learner on real SD opens SD3 medium.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from sdlib.builtin import scenes
from sdlib.testing import twins

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
READS_UNET_OUTPUT = ("00_", "02_", "04_", "05_", "06_", "08_")  # run on the v-prediction twin as well
JUDGES_THE_BUILTIN_PAIR = ("10_",)  # the judge reads the built-in pair's pictures in every world: no guard
# (07's v-prediction training target is tested in tests/test_finetune.py)
TEXT_LAYERS = 2  # text-encoder depth of the twins here (tests/test_twins.py checks the real depths)
sys.path.insert(0, str(ROOT / "tools"))
from execute_notebooks import ENV, QUICK_ENV, quick_copy, quick_steps  # noqa: E402  (the environment notebooks are executed in)


@pytest.fixture(scope="module")
def twin_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    return {name: twins.build_twin(name, root / name, sample_size=8, text_layers=TEXT_LAYERS)
            for name in ("sd-v1-4", "sd-2-1")}


@pytest.fixture(scope="module")
def sd3_twin(tmp_path_factory):
    """`sd3_twin()`: the SD3 twin's folder, built when notebook 11 first asks (its two CLIPs at their
    real widths hold 100 M parameters of vocabulary rows)."""
    lock, made = threading.Lock(), []

    def folder():
        with lock:
            if not made:
                made.append(twins.build_sd3_twin(tmp_path_factory.mktemp("sd3") / "sd3", sample_size=16,
                                                 text_layers=1, num_layers=2))
        return made[0]
    return folder


CASES = [("sd-v1-4", nb) for nb in NOTEBOOKS] + \
        [("sd-2-1", nb) for nb in NOTEBOOKS if nb.name.startswith(READS_UNET_OUTPUT)]


# Each notebook runs in a Python of its own (nbclient there), not in the test process: after the
# hundreds of tests before it, an nbclient in the pytest process waited forever on a kernel that
# had gone idle (3 full runs in 3 on 2026-11-25, cause not found: both sides idle in their event
# loops, py-spy). It hung in a process of its own too, always in an explorer cell (an ipywidgets
# `interact`; 02's strength explorer twice): those cells are left out here. The explorers are tested
# directly (tests/test_explore_*.py), and nbval runs them on the built-in model.
RUN = ("import sys, nbformat; from nbclient import NotebookClient; "
       "nb = nbformat.read(sys.argv[1], as_version=4); "
       "NotebookClient(nb, timeout=600, kernel_name='python3', "
       "resources={'metadata': {'path': sys.argv[3]}}).execute(); nbformat.write(nb, sys.argv[2])")


# Outputs are not compared here, so the runs need not reproduce the committed numbers: they run side
# by side, each with its share of the cores. Under pytest-xdist (`./course.sh test`) the workers
# already fill the cores: each case runs in its own test, on one thread, as xdist hands it out. Run
# alone (`pytest tests/test_notebooks_on_twins.py`), the cases start at once on a pool of WORKERS.
# Measured on 2 cores: two 1-thread runs at once take 43 s each; one at a time with 2 threads 39 s
# and 34 s.
UNDER_XDIST = bool(os.environ.get("PYTEST_XDIST_WORKER"))
WORKERS = 1 if UNDER_XDIST else max(1, min(4, (os.cpu_count() or 1)))
THREADS = "1" if UNDER_XDIST else str(max(1, (os.cpu_count() or 1) // WORKERS))


# The sampling counts written into the cells are capped at QUICK_STEPS in the copy that runs here
# (`execute_notebooks.quick_steps`): the twins draw noise, so what is tested is that every cell runs.
# Notebooks 07 and 08 read SDLIB_SAMPLE_STEPS themselves. The 15 runs took 323 s together in a quiet
# fresh-clone run on 2 cores (2026-12-04, at 59d5a98); 08's sampler sweep keeps its counts, which
# makes 08 the longest run (37 s on the 2.1 twin).


GUARD = """\
# Put first by tests/test_notebooks_on_twins.py: the judge is not for real SD's pictures.
import functools, inspect, sdlib.builtin.checker, sdlib.builtin.evaluate, sdlib.builtin.evaluate_control
def _builtin_only(f):
    @functools.wraps(f)
    def refuse(*args, **kwargs):
        raise AssertionError(f"built-in model only: {f.__module__}.{f.__name__} called on real SD's shapes")
    return refuse
for _module in (sdlib.builtin.checker, sdlib.builtin.evaluate, sdlib.builtin.evaluate_control):
    for _name, _f in inspect.getmembers(_module, inspect.isfunction):
        if not _name.startswith("_") and _f.__module__ == _module.__name__:
            setattr(_module, _name, _builtin_only(_f))
"""
COLOUR_WORDS = "|".join([*scenes.COLOURS, "pink", "cyan", "grey", "gray"])
VERDICT_LIKE = re.compile(rf"\b({COLOUR_WORDS})\s+({'|'.join(scenes.SHAPES)})s?\b"  # "red circle"
                          rf"|\b({COLOUR_WORDS})\b[^\n]{{0,30}}?\d+(\.\d+)?\s?%", re.I)  # "pink in 25%"


def builtin_world_lines(text):
    """The printed lines that read like the judge's verdicts on coloured shapes, except those that
    say they are about the built-in model. Quoted text is a prompt, not a verdict: left out."""
    return [line for line in text.splitlines()
            if VERDICT_LIKE.search(re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)) and "built-in model" not in line]


def run_on_twin(folder, notebook, out_dir, sd3_folder=None):
    """Execute `notebook` on the twin in `folder` (and the SD3 twin in `sd3_folder`, notebook 11's
    SDLIB_SD3_MODEL), in a Python of its own; the executed notebook."""
    env = {**os.environ, **ENV, **QUICK_ENV, "SDLIB_MODEL": str(folder),
           "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    if sd3_folder:
        env["SDLIB_SD3_MODEL"] = str(sd3_folder)
    src, out = out_dir / f"in_{notebook.name}", out_dir / notebook.name
    nb = nbformat.read(notebook, as_version=4)
    guard = [] if notebook.name.startswith(JUDGES_THE_BUILTIN_PAIR) else [nbformat.v4.new_code_cell(GUARD)]
    nb.cells = guard + [c for c in nb.cells if not (c.cell_type == "code" and "explorer(" in c.source)]
    nbformat.write(quick_copy(nb), src)
    run = subprocess.run([sys.executable, "-c", RUN, str(src), str(out), str(notebook.parent)],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def runs(request, twin_folders, sd3_twin, tmp_path_factory):
    """`runs(twin, notebook)`: the executed notebook. Alone, every selected case is started at once
    on a pool of WORKERS when the module starts; under xdist each case runs when its test asks."""
    def start(twin, nb):
        return run_on_twin(twin_folders[twin], nb, tmp_path_factory.mktemp(f"{twin}-{nb.name[:2]}"),
                           sd3_twin() if nb.name.startswith("11_") else None)

    if UNDER_XDIST:
        yield start
        return
    wanted = [(item.callspec.params["twin"], item.callspec.params["notebook"]) for item in request.session.items
              if getattr(item, "originalname", None) == "test_notebook_runs_on_twin"]
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {(twin, nb.name): pool.submit(start, twin, nb) for twin, nb in wanted}
        yield lambda twin, nb: futures[twin, nb.name].result()
        for f in futures.values():
            f.cancel()


@pytest.mark.parametrize("twin,notebook", CASES, ids=[f"{t}-{nb.name[:2]}" for t, nb in CASES])
def test_notebook_runs_on_twin(runs, twin, notebook):
    nb = runs(twin, notebook)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error" or (o.get("name") == "stderr" and "Traceback" in o.get("text", ""))]
    assert not errors, errors[0]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "settings for real Stable Diffusion" in text, "the settings cell did not pick the SD branch"
    if notebook.name.startswith("11_"):
        assert "SD3: builtin-sd3" not in text, "notebook 11 fell back to the miniature instead of the SD3 twin"
    assert not builtin_world_lines(text), f"built-in model's verdicts printed on {twin}: {builtin_world_lines(text)}"


def test_builtin_world_lines_finds_verdicts_printed_on_real_sd():
    printed = ("settings for real Stable Diffusion (a red apple on a wooden table)\n"
               "the judge reads: red circle on grey\n"
               "'a circle' before: pink in 25%\n"
               "built-in model only: the judge reads a red circle here; skipped on this model\n"
               "max pixel difference, hand loop vs pipeline: 0\n"
               "16 copies: 81 tokens (5n + 1 = 81); cut: 'a small red circle'\n")
    assert builtin_world_lines(printed) == ["the judge reads: red circle on grey", "'a circle' before: pink in 25%"]


def test_quick_steps_lowers_the_step_counts_written_in_cells():
    source = ('image = sdlib.generate(sd, prompt, seed=0, num_steps=25)\nscheduler.set_timesteps(25)\n'
              'pipe(prompt, num_inference_steps=25)\nnum_steps = 3\nsch.set_timesteps(N)\n'
              'SAMPLERS, STEP_COUNTS = ("ddim", "euler"), (5, 10, 25, 50)')  # kept: execute_notebooks.QUICK_STEPS
    assert quick_steps(source) == (
        'image = sdlib.generate(sd, prompt, seed=0, num_steps=5)\nscheduler.set_timesteps(5)\n'
        'pipe(prompt, num_inference_steps=5)\nnum_steps = 3\nsch.set_timesteps(N)\n'
        'SAMPLERS, STEP_COUNTS = ("ddim", "euler"), (5, 10, 25, 50)')


def test_quick_steps_reaches_every_notebook_that_samples_with_written_counts():
    """Where a notebook's cells write their step counts, the twin runs lower them (06 and 07 sample
    NUM_STEPS from their settings cell, and 07 and 08 read SDLIB_SAMPLE_STEPS; 01 does not sample)."""
    lowered = {nb.name[:2] for nb in NOTEBOOKS
               if any(c.cell_type == "code" and quick_steps(c.source) != c.source
                      for c in nbformat.read(nb, as_version=4).cells)}
    assert lowered == {"00", "02", "03", "04", "05", "08"}
