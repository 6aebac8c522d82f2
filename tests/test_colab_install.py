"""The Colab/Kaggle learner's first cell, on a Colab-like runtime built here.

A new virtual environment plays Colab: torch and the other heavy packages are already there (the
course's own environment, seen through a folder of links, without sdlib), `google.colab` is
importable, and nothing may be downloaded (PIP_NO_INDEX). The course is installed from this
checkout as a git URL (`git+file://...`), exactly as the install cell installs it from GitHub, not
editable; then notebook 00 is executed from a folder outside the checkout (its quick copy, as the
twin runs make it: what is checked is the install, not the pictures). It must run, end its load
cell with the "ready: ..." line, leave torch alone, import sdlib from site-packages, and write
nothing there.
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from execute_notebooks import QUICK_ENV, quick_copy  # noqa: E402  (the quick copies' settings)
RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3").execute()
nbformat.write(nb, sys.argv[2])
"""


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert out.returncode == 0, f"{cmd[:4]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A venv whose python sees the course's packages (not sdlib) and a stub google.colab."""
    root = tmp_path_factory.mktemp("colab")
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("the checkout is not a git repository")
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")])  # pip, setuptools: the runtime's
    python = root / "venv" / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    preinstalled = root / "preinstalled"  # the runtime's own packages: torch, diffusers, jupyter, ...
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("sdlib", "__editable__", "_sdlib")):
            (preinstalled / entry.name).symlink_to(entry)
    (root / "stub" / "google" / "colab").mkdir(parents=True)
    (root / "stub" / "google" / "__init__.py").write_text("")
    (root / "stub" / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab."""\n')
    (site / "colab_runtime.pth").write_text(f"{root / 'stub'}\n{preinstalled}\nimport google.colab\n")
    # (PIP_NO_BUILD_ISOLATION="0" is pip's spelling of --no-build-isolation: build with this setuptools)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               COURSE_REPO=f"git+file://{ROOT}", SDLIB_MODEL="builtin", SDLIB_DEVICE="cpu",
               HF_HUB_OFFLINE="1", MPLBACKEND="Agg", SDLIB_CACHE=str(root / "cache"))
    env.pop("PYTHONPATH", None)
    return dict(root=root, python=python, site=site, env=env)


def test_install_cell_on_a_colab_like_runtime(colab):
    python, site, env, root = colab["python"], colab["site"], colab["env"], colab["root"]
    run([str(python), "-m", "pip", "install", "-q", env["COURSE_REPO"]], env=env, cwd=root)
    assert not list(site.glob("torch*")), "pip reinstalled torch although a compatible one is there"
    where = run([str(python), "-c", "import sdlib, google.colab; print(sdlib.__file__)"], env=env, cwd=root)
    assert where.stdout.strip().startswith(str(site)), "sdlib is not the installed copy"
    before = files_under(site / "sdlib")
    assert "models/builtin/unet/diffusion_pytorch_model.safetensors" in before  # the model ships
    work = root / "work"  # a folder outside the checkout, as a Colab session's /content
    work.mkdir()
    nbformat.write(quick_copy(nbformat.read(ROOT / "notebooks" / "00_overview.ipynb", as_version=4)),
                   work / "00.ipynb")
    run([str(python), "-c", RUN_NOTEBOOK, "00.ipynb", "00_out.ipynb"], env={**env, **QUICK_ENV}, cwd=work)
    nb = json.loads((work / "00_out.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "ready: sdlib 0.1.0, torch " in text and ", device cpu, model builtin" in text
    assert files_under(site / "sdlib") == before, "running the course wrote into site-packages"
    assert not list(site.glob("torch*"))
