"""course.py, the launcher behind `./course.sh` and `py course.py`: what it would run on each system.

Nothing here installs anything or reaches the network: commands are checked with COURSE_DRY_RUN=1
(printed, not run) or by calling the functions that compute them.
"""
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import course  # noqa: E402

DEAD_INDEX = "http://127.0.0.1:9"  # nothing listens there: the index "does not answer", at once
PYTEST = ("-m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with "
          "tests/nbval_sanitize.cfg -p no:cacheprovider -n logical --durations=15")
TEST_ENV = ("SDLIB_MODEL=builtin SDLIB_DEVICE=cpu HF_HUB_OFFLINE=1 MPLBACKEND=Agg TQDM_DISABLE=1 "
            "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1")


def launch(*args, via="course.py", **env):
    """Run ./course.sh or course.py (with this interpreter) as a learner would; (exit code, output)."""
    cmd = [str(ROOT / "course.sh")] if via == "course.sh" else [sys.executable, str(ROOT / "course.py")]
    out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHON": sys.executable, **env})
    return out.returncode, out.stdout + out.stderr


def set_up_venv(folder):
    """A stand-in for a set-up environment: an interpreter file and a stamp newer than the sources."""
    python = Path(course.venv_python(str(folder)))
    python.parent.mkdir(parents=True)
    python.write_text("")
    python.chmod(0o755)
    (folder / ".sdlib-installed").touch()
    later = (ROOT / "pyproject.toml").stat().st_mtime + 3600
    os.utime(folder / ".sdlib-installed", (later, later))
    return python


def test_venv_python_is_scripts_python_exe_on_windows_and_bin_python_elsewhere(monkeypatch):
    monkeypatch.setattr(os, "name", "nt")
    on_windows = course.venv_python(".venv")
    monkeypatch.setattr(os, "name", "posix")
    elsewhere = course.venv_python(".venv")
    monkeypatch.undo()
    assert on_windows == os.path.join(".venv", "Scripts", "python.exe")
    assert elsewhere == ".venv/bin/python"


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_torch_choice_takes_the_default_wheels_off_linux(monkeypatch, system):
    """macOS's and Windows' default wheels are CPU-only already: PyTorch's index is not even asked."""
    monkeypatch.delenv("SDLIB_TORCH", raising=False)
    monkeypatch.setattr(course.platform, "system", lambda: system)
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    monkeypatch.setattr(course.urllib.request, "urlopen", lambda *a, **k: pytest.fail("index asked"))
    assert course.torch_choice() == f"default wheels (on {system} they are CPU-only already)"


@pytest.mark.parametrize("system", ["Linux", "Darwin", "Windows"])
def test_torch_choice_takes_the_default_wheels_with_an_nvidia_gpu(monkeypatch, system):
    monkeypatch.delenv("SDLIB_TORCH", raising=False)
    monkeypatch.setattr(course.platform, "system", lambda: system)
    monkeypatch.setattr(course.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    if system == "Windows":  # PyPI's Windows wheels have no CUDA: the learner is told where to get it
        assert course.torch_choice().startswith("default wheels (CPU-only on Windows: for the NVIDIA GPU here")
    else:
        assert course.torch_choice() == "default wheels (an NVIDIA GPU is here: they bring CUDA)"


def test_torch_choice_on_linux_without_gpu_asks_pytorchs_index(monkeypatch):
    monkeypatch.delenv("SDLIB_TORCH", raising=False)
    monkeypatch.setattr(course.platform, "system", lambda: "Linux")
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    monkeypatch.setenv("SDLIB_TORCH_CPU_INDEX", DEAD_INDEX)
    assert course.torch_choice() == (f"default wheels (no NVIDIA GPU, but {DEAD_INDEX} is not reachable; "
                                     "SDLIB_TORCH=cpu to insist)")
    asked = []
    monkeypatch.setattr(course.urllib.request, "urlopen", lambda url, timeout: asked.append(url) or open(os.devnull))
    assert course.torch_choice() == (f"cpu (no NVIDIA GPU here; CPU-only wheels from {DEAD_INDEX}; "
                                     "SDLIB_TORCH=default for the others)")
    assert asked == [DEAD_INDEX + "/torch/"]


def test_python_older_than_3_10_is_refused_with_the_version_it_found(capsys):
    with pytest.raises(SystemExit) as stop:
        course.check_python((3, 9, 18, "final", 0))
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("course: Python >= 3.10 needed, this is Python 3.9 (")
    assert "py -3.12 course.py" in message and "PYTHON=python3.12 ./course.sh" in message
    course.check_python((3, 10, 0, "final", 0))  # accepted: returns quietly
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("env", [{"SDLIB_TORCH_CPU_INDEX": DEAD_INDEX, "SDLIB_TORCH": ""},  # empty: auto
                                 {"SDLIB_TORCH": "cpu"}, {"SDLIB_TORCH": "default"}, {"SDLIB_TORCH": "gpu"}])
def test_course_sh_and_course_py_give_the_same_torch_choice(env):
    via_sh = launch("torch-choice", via="course.sh", **env)
    assert via_sh == launch("torch-choice", via="course.py", **env)
    assert via_sh[0] == (2 if env["SDLIB_TORCH"] == "gpu" else 0)
    assert via_sh[1].startswith({"": "default wheels (", "cpu": "cpu (SDLIB_TORCH=cpu)",
                                 "default": "default wheels (SDLIB_TORCH=default)",
                                 "gpu": "course: SDLIB_TORCH must be cpu"}[env["SDLIB_TORCH"]])


def test_dry_run_prints_the_exact_test_and_lab_commands(tmp_path):
    """A set-up environment: `test` and `lab` are one command each, extra arguments at the end."""
    python = set_up_venv(tmp_path / "venv")
    env = {"COURSE_DRY_RUN": "1", "SDLIB_VENV": str(tmp_path / "venv")}
    code, out = launch("test", "-k", "sampler", "-x", via="course.sh", **env)
    assert (code, out) == (0, f"+ {TEST_ENV} {python} {PYTEST} -k sampler -x\n")
    code, out = launch("lab", "--no-browser", via="course.sh", **env)
    notebooks = " ".join(sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")))
    overrides = tmp_path / "venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "sdlib.json"
    assert (code, out) == (0, f"+ write {overrides}\n+ {python} -m jupyter trust {notebooks}\n"
                              f"+ {python} -m jupyter lab notebooks/ --no-browser\n")
    copy = tmp_path / "copy"  # `lab FOLDER`: another folder of notebooks, trusted and opened instead
    copy.mkdir()
    (copy / "00_overview.ipynb").write_text("{}")
    code, out = launch("lab", str(copy), "--no-browser", via="course.sh", **env)
    assert (code, out) == (0, f"+ write {overrides}\n+ {python} -m jupyter trust {copy / '00_overview.ipynb'}\n"
                              f"+ {python} -m jupyter lab {copy} --no-browser\n")
    code, out = launch("site", **env)
    assert (code, out) == (0, f"+ {python} tools/build_site.py\n")


def test_dry_run_of_a_first_setup_creates_the_venv_then_installs_the_pins(tmp_path):
    venv = tmp_path / "new"
    python = course.venv_python(str(venv))
    code, out = launch("test", COURSE_DRY_RUN="1", SDLIB_VENV=str(venv), SDLIB_TORCH="cpu")
    assert code == 0 and not venv.exists()
    assert out.splitlines() == [
        f"course: creating {venv}",
        f"+ {sys.executable} -m venv {venv}",
        "course: installing the course and its pinned dependencies (first time: several minutes)",
        f"+ {python} -m pip install -q --upgrade pip",
        "course: PyTorch: cpu (SDLIB_TORCH=cpu)",
        f"+ {python} -m pip install -q -c constraints.txt --index-url https://download.pytorch.org/whl/cpu "
        "torch torchvision",
        f"+ {python} -m pip install -q -c constraints.txt -e '.[course,test]'",
        f"+ {TEST_ENV} {python} {PYTEST}",
    ]


def test_setup_reinstalls_when_pyproject_or_constraints_is_newer_than_the_stamp(tmp_path):
    stamp = tmp_path / ".sdlib-installed"
    assert course.needs_install(str(stamp))  # no stamp yet
    stamp.touch()
    newest = max((ROOT / f).stat().st_mtime for f in ("pyproject.toml", "constraints.txt"))
    os.utime(stamp, (newest + 1, newest + 1))
    assert not course.needs_install(str(stamp))
    os.utime(stamp, (newest - 1, newest - 1))
    assert course.needs_install(str(stamp))


def requirement_names(reqs):
    return {re.split(r"[<>=!~;\[ ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_latest_plan_names_every_dependency_without_ranges_and_pins_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    plan = course.latest_plan(".venv-latest/bin/python", "pins.txt", "default wheels (SDLIB_TORCH=default)")
    pip = [".venv-latest/bin/python", "-m", "pip", "install", "-q"]
    assert plan[0] == pip + ["--upgrade", "pip"]
    assert plan[-1] == pip + ["--no-deps", "-e", "."]
    upgrade = plan[1]
    assert upgrade[:len(pip)] == pip and {"--upgrade", "eager"} <= set(upgrade)
    assert upgrade[upgrade.index("-c") + 1] == "pins.txt"
    assert not any("constraints.txt" in arg for cmd in plan for arg in cmd)
    asked = [a for a in upgrade[len(pip):] if not a.startswith("-") and a not in ("eager", "pins.txt")]
    assert requirement_names(asked) == requirement_names(wanted)
    assert not [a for a in asked if re.search(r"[<>=!~]", a)], "a version range left in"
    # torch and torchvision: constraints.txt's lines, markers and all, and nothing else
    pinned = [l for l in (ROOT / "constraints.txt").read_text().splitlines() if l.startswith("torch")]
    assert course.torch_pins() == pinned
    assert 'torch==2.14.1; platform_machine == "x86_64"' in pinned
    assert 'torchvision==0.29.1; platform_machine == "x86_64"' in pinned


def test_latest_plan_looks_at_pytorchs_cpu_index_when_setup_would(monkeypatch):
    monkeypatch.setenv("SDLIB_TORCH_CPU_INDEX", DEAD_INDEX)
    upgrade = course.latest_plan("py", "pins.txt", "cpu (SDLIB_TORCH=cpu)")[1]
    assert upgrade[upgrade.index("--extra-index-url") + 1] == DEAD_INDEX
    assert "--extra-index-url" not in course.latest_plan("py", "pins.txt", "default wheels (x)")[1]


def test_unpinned_drops_the_range_and_keeps_extras_and_markers():
    assert course.unpinned("diffusers>=0.30,<0.43") == "diffusers"
    assert course.unpinned("open_clip_torch >= 2.24") == "open_clip_torch"
    assert course.unpinned('pkg[extra]~=1.2; python_version < "3.12"') == 'pkg[extra]; python_version < "3.12"'


def test_readme_quick_start_gives_the_commands_for_each_system():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for command in ("./course.sh lab", "./course.sh test", "py course.py lab", "py course.py test"):
        assert command in quick_start, command
    assert "./course.sh test --latest" in readme and "py course.py test --latest" in readme
    assert ".venv-latest/" in (ROOT / ".gitignore").read_text().splitlines()
