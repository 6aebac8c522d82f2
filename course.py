"""The course's commands, the same on Linux, macOS and Windows (see README's Quick start).

    ./course.sh lab             py course.py lab             set up (first run: .venv) and open JupyterLab
    ./course.sh test            py course.py test            set up the same way and run every test:
                                                             unit tests + nbval over the notebooks
    ./course.sh test --latest   py course.py test --latest   the same tests on the newest releases of
                                                             the course's libraries, in .venv-latest
    ./course.sh site            py course.py site            build the course website into site/
    ./course.sh torch-choice    py course.py torch-choice    which PyTorch wheels a first setup installs

Extra arguments after `lab` go to jupyter lab (a folder first opens that folder instead of notebooks/), after `test` (and `--latest`) to pytest
(./course.sh test -k sampler). course.sh only runs this file with $PYTHON (default python3).

Environment: SDLIB_VENV (the virtual environment, default .venv); SDLIB_TORCH=cpu|default|auto and
SDLIB_TORCH_CPU_INDEX (see torch_choice); COURSE_DRY_RUN=1 prints the commands instead of running them.
Standard library only: this runs before anything is installed.
"""
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LATEST_VENV = ".venv-latest"
USAGE = "usage: ./course.sh lab | test [--latest] [pytest args] | site | torch-choice  (Windows: py course.py ...)"

# Notebooks are committed executed on the built-in model on CPU: test them the same way. One thread
# per process: the run is spread over pytest-xdist workers (-n logical), one per core.
TEST_ENV = {"SDLIB_MODEL": "builtin", "SDLIB_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
            "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PYTEST_ARGS = ["tests", "notebooks", "--nbval-lax", "--nbval-current-env",
               "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-p", "no:cacheprovider",
               "-n", "logical", "--durations=15"]  # how the work is shared out: conftest.py; the slowest printed
# What `test --latest` reports: the libraries whose releases have broken the course before.
SHOWN_VERSIONS = ["diffusers", "transformers", "huggingface_hub", "accelerate", "peft", "safetensors",
                  "numpy", "torch"]
# torch and torchvision stay at constraints.txt's pins in .venv-latest (the pair known to install).
PINNED_IN_LATEST = ("torch", "torchvision")


def check_python(version=sys.version_info):
    if tuple(version[:2]) < (3, 10):
        print("course: Python >= 3.10 needed, this is Python {}.{} ({}). Install a newer one (python.org) "
              "and run it again with it: PYTHON=python3.12 ./course.sh ..., on Windows py -3.12 course.py ..."
              .format(version[0], version[1], sys.executable), file=sys.stderr)
        raise SystemExit(2)


def fail(message):
    print("course: " + message, file=sys.stderr)
    raise SystemExit(2)


def venv_python(venv):
    """The environment's interpreter: .venv\\Scripts\\python.exe on Windows, .venv/bin/python elsewhere."""
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def dry_run():
    return os.environ.get("COURSE_DRY_RUN") == "1"


def show(cmd, env=None):
    """A command as one pastable line, with the environment it is given in front."""
    return " ".join([f"{k}={v}" for k, v in (env or {}).items()] + [shlex.quote(str(c)) for c in cmd])


def run(cmd):
    """Run a set-up step; stop with its exit code if it fails (as `set -e` did)."""
    sys.stdout.flush()
    if dry_run():
        print("+ " + show(cmd))
        return
    code = subprocess.run([str(c) for c in cmd]).returncode
    if code:
        raise SystemExit(code)


def replace_process(cmd, env=None):
    """Become `cmd` (exec on POSIX, so its output, signals and exit code are the caller's); on Windows,
    run it and exit with its code."""
    cmd = [str(c) for c in cmd]
    sys.stdout.flush()
    if dry_run():
        print("+ " + show(cmd, env))
        raise SystemExit(0)
    full_env = {**os.environ, **(env or {})}
    if os.name != "nt":
        os.execve(cmd[0], cmd, full_env)
    proc = subprocess.Popen(cmd, env=full_env)
    while proc.returncode is None:
        try:
            proc.wait()
        except KeyboardInterrupt:  # Ctrl+C reached the child too: it decides (jupyter asks first)
            pass
    raise SystemExit(proc.returncode)


def cpu_index():
    return os.environ.get("SDLIB_TORCH_CPU_INDEX") or "https://download.pytorch.org/whl/cpu"


def torch_choice():
    """Which PyTorch wheels: "cpu" (PyTorch's CPU-only wheels, a few hundred MB instead of several GB of
    CUDA libraries) on a machine with no NVIDIA GPU when PyTorch's own index answers, else "default"
    (PyPI's). SDLIB_TORCH=cpu or SDLIB_TORCH=default forces one. Returns the choice and why."""
    forced = os.environ.get("SDLIB_TORCH") or "auto"
    if forced == "cpu":
        return "cpu (SDLIB_TORCH=cpu)"
    if forced == "default":
        return "default wheels (SDLIB_TORCH=default)"
    if forced != "auto":
        fail(f"SDLIB_TORCH must be cpu, default or auto, got '{forced}'")
    if shutil.which("nvidia-smi"):
        if platform.system() == "Windows":  # PyPI's Windows wheels are CPU-only
            return ("default wheels (CPU-only on Windows: for the NVIDIA GPU here, install PyTorch's CUDA "
                    "build into .venv first, as pytorch.org shows)")
        return "default wheels (an NVIDIA GPU is here: they bring CUDA)"
    if platform.system() != "Linux":
        return f"default wheels (on {platform.system()} they are CPU-only already)"
    index = cpu_index()
    try:
        urllib.request.urlopen(index + "/torch/", timeout=5).close()
    except Exception:  # unreachable, refused, not found, bad address: all mean "not here"
        return f"default wheels (no NVIDIA GPU, but {index} is not reachable; SDLIB_TORCH=cpu to insist)"
    return f"cpu (no NVIDIA GPU here; CPU-only wheels from {index}; SDLIB_TORCH=default for the others)"


def create_venv(venv):
    if not os.access(venv_python(venv), os.X_OK):
        print(f"course: creating {venv}")
        run([sys.executable, "-m", "venv", venv])


def needs_install(stamp):
    """No stamp yet, or pyproject.toml or constraints.txt changed since the last install."""
    if not os.path.isfile(stamp):
        return True
    sources = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]
    return any(f.exists() and f.stat().st_mtime > os.path.getmtime(stamp) for f in sources)


def setup():
    """The course's environment: SDLIB_VENV (.venv) with constraints.txt's exact versions, installed once
    and again whenever pyproject.toml or constraints.txt is newer than the stamp."""
    venv = os.environ.get("SDLIB_VENV") or ".venv"
    python = venv_python(venv)
    create_venv(venv)
    stamp = os.path.join(venv, ".sdlib-installed")
    if needs_install(stamp):
        print("course: installing the course and its pinned dependencies (first time: several minutes)")
        run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
        choice = torch_choice()
        print(f"course: PyTorch: {choice}")
        if choice.startswith("cpu "):
            run([python, "-m", "pip", "install", "-q", "-c", "constraints.txt", "--index-url", cpu_index(),
                 "torch", "torchvision"])
        run([python, "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", ".[course,test]"])
        if not dry_run():
            Path(stamp).touch()
    return python


# JupyterLab's defaults for the course, in its environment only: ipywidgets saves the widgets' state
# with the notebook (off, a notebook run and saved in JupyterLab reopens with "Error displaying
# widget: model not found").
LAB_OVERRIDES = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def prepare_lab(python, venv, folder="notebooks"):
    """LAB_OVERRIDES written into the environment, and the notebooks of `folder` trusted (`jupyter
    trust`): JupyterLab draws widgets only in trusted notebooks, so the committed explorers then show
    their sliders and picture before anything runs (tests/test_browser.py)."""
    overrides = Path(venv, "share", "jupyter", "lab", "settings", "overrides.d", "sdlib.json")
    trust = [python, "-m", "jupyter", "trust", *sorted(str(p) for p in Path(folder).glob("*.ipynb"))]
    if dry_run():
        print(f"+ write {overrides}\n+ " + show(trust))
        return
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(LAB_OVERRIDES) + "\n")
    subprocess.run(trust, stdout=subprocess.DEVNULL)  # failing leaves them untrusted: widgets as text


def unpinned(requirement):
    """'diffusers>=0.30,<0.43' -> 'diffusers'; extras and environment markers are kept."""
    name = re.match(r"\s*[\w.-]+(\[[^\]]*\])?", requirement).group().strip()
    marker = requirement.partition(";")[2].strip()
    return f"{name}; {marker}" if marker else name


def dependencies():
    """Every requirement in pyproject.toml: the library's and its extras' (what `.[course,test]` installs)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip carries the same parser
        from pip._vendor import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return list(dict.fromkeys(reqs))


def constraints():
    """constraints.txt's lines as (name, line) pairs: ("torch", 'torch==2.14.1; platform_machine == ...')."""
    lines = [l.strip() for l in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    return [(re.split(r"[=<>!~;\s]", l, maxsplit=1)[0].lower(), l) for l in lines]


def torch_pins():
    """constraints.txt's torch and torchvision lines (one per machine type, with their markers)."""
    return [line for name, line in constraints() if name in PINNED_IN_LATEST]


def latest_plan(python, pins_file, choice):
    """The pip commands that bring .venv-latest to the newest release of every dependency: pyproject's
    names without its ranges, no constraints.txt, except torch/torchvision held at their pins by
    `pins_file` (torch_pins()). --upgrade-strategy eager: the libraries' own dependencies too
    (huggingface_hub, tokenizers). Then the course itself, as it is in this folder."""
    pip = [python, "-m", "pip", "install", "-q"]
    cpu = ["--extra-index-url", cpu_index()] if choice.startswith("cpu ") else []  # +cpu builds sort first
    return [pip + ["--upgrade", "pip"],
            pip + ["--upgrade", "--upgrade-strategy", "eager", "-c", pins_file] + cpu
                + [unpinned(r) for r in dependencies()],
            pip + ["--no-deps", "-e", "."]]


def setup_latest():
    """.venv-latest, upgraded to the newest releases every time it is asked for."""
    python = venv_python(LATEST_VENV)
    create_venv(LATEST_VENV)
    pins_file = os.path.join(LATEST_VENV, "torch-pins.txt")
    if not dry_run():
        Path(pins_file).write_text("\n".join(torch_pins()) + "\n", encoding="utf-8")
    print(f"course: upgrading {LATEST_VENV} to the newest releases (torch, torchvision: their pins)")
    choice = torch_choice()
    print(f"course: PyTorch: {choice}")
    for cmd in latest_plan(python, pins_file, choice):
        run(cmd)
    if not dry_run():
        print_versions(python)
    return python


def print_versions(python):
    """The versions .venv-latest got, beside constraints.txt's pins."""
    code = "import sys, importlib.metadata as m; print(*[m.version(n) for n in sys.argv[1:]])"
    got = subprocess.run([python, "-c", code, *SHOWN_VERSIONS], capture_output=True, text=True,
                         check=True).stdout.split()
    pinned = {}  # name -> its versions in constraints.txt (torch: one per machine type)
    for name, line in constraints():
        pinned.setdefault(name, []).append(line.split(";")[0].split("==")[1].strip())
    print(f"course: {'package':<16} {LATEST_VENV:<14} constraints.txt")
    for name, version in zip(SHOWN_VERSIONS, got):
        print(f"course: {name:<16} {version:<14} {' or '.join(pinned.get(name, ['-']))}")


def pytest_command(python, pytest_args):
    return [python, "-m", "pytest", *PYTEST_ARGS, *pytest_args]


def main(argv):
    check_python()
    os.chdir(ROOT)
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "lab":
        python = setup()
        # `lab FOLDER ...`: open another folder of notebooks (a copy of the course's) instead of notebooks/
        folder, args = (args[0], args[1:]) if args[:1] and Path(args[0]).is_dir() else ("notebooks/", args)
        prepare_lab(python, os.environ.get("SDLIB_VENV") or ".venv", folder)
        replace_process([python, "-m", "jupyter", "lab", folder, *args])
    elif command == "test" and args[:1] == ["--latest"]:
        replace_process(pytest_command(setup_latest(), args[1:]), TEST_ENV)
    elif command == "test":
        replace_process(pytest_command(setup(), args), TEST_ENV)
    elif command == "site":
        replace_process([setup(), "tools/build_site.py", *args])
    elif command == "torch-choice":
        print(torch_choice())
    else:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
