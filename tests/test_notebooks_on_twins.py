"""Every notebook runs top to bottom on real Stable Diffusion's shapes, not only on the built-in model.

Colab/Kaggle learners run the course on SD v1.4 (and may pick SD 2.1); their path can never be
downloaded here, so each notebook is executed on twins (`sdlib.builtin.twins`): SD v1.4's configs
(PNDM, CLIP ViT-L/14 text encoder, 768 wide) and, for the notebooks that read the UNet's output,
SD 2.1's (DDIM, v-prediction, OpenCLIP-H 1024 wide, pad "!"). The twins are narrow and run at 64 px
(8 x 8 latents) so that a CPU gets through; outputs are not compared (random weights draw noise),
but every cell must run, and the settings cell must pick the real-SD branch.
"""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sdlib.builtin import twins

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
READS_UNET_OUTPUT = ("00_", "02_", "04_", "05_", "06_")  # run on the v-prediction twin as well
sys.path.insert(0, str(ROOT / "tools"))
from execute_notebooks import ENV  # noqa: E402  (the environment notebooks are executed in)


@pytest.fixture(scope="module")
def twin_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    return {name: twins.build_twin(name, root / name, sample_size=8) for name in ("sd-v1-4", "sd-2-1")}


CASES = [("sd-v1-4", nb) for nb in NOTEBOOKS] + \
        [("sd-2-1", nb) for nb in NOTEBOOKS if nb.name.startswith(READS_UNET_OUTPUT)]


@pytest.mark.parametrize("twin,notebook", CASES, ids=[f"{t}-{nb.name[:2]}" for t, nb in CASES])
def test_notebook_runs_on_twin(twin_folders, twin, notebook, monkeypatch):
    for key, value in dict(ENV, SDLIB_MODEL=str(twin_folders[twin])).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error" or (o.get("name") == "stderr" and "Traceback" in o.get("text", ""))]
    assert not errors, errors[0]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "settings for real Stable Diffusion" in text, "the settings cell did not pick the SD branch"
