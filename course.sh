#!/usr/bin/env bash
# The course's two commands (see README):
#   ./course.sh lab    set up (first run: a virtual environment in .venv) and open JupyterLab
#   ./course.sh test   set up the same way and run every test: unit tests + nbval over notebooks
# Extra arguments after `test` go to pytest (e.g. ./course.sh test -k sampler).
#   ./course.sh site           build the course website into site/ (open site/index.html)
#   ./course.sh torch-choice   which PyTorch wheels a first setup would install, and why
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SDLIB_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

TORCH_CPU_INDEX="${SDLIB_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

# Which PyTorch wheels: "cpu" (PyTorch's CPU-only wheels, a few hundred MB instead of several GB of
# CUDA libraries) on a machine with no NVIDIA GPU when PyTorch's own index answers, else "default"
# (PyPI's). SDLIB_TORCH=cpu or SDLIB_TORCH=default forces one. Prints the choice and why.
torch_choice() {
    case "${SDLIB_TORCH:-auto}" in
        cpu) echo "cpu (SDLIB_TORCH=cpu)"; return ;;
        default) echo "default wheels (SDLIB_TORCH=default)"; return ;;
        auto) ;;
        *) echo "course: SDLIB_TORCH must be cpu, default or auto, got '$SDLIB_TORCH'" >&2; exit 2 ;;
    esac
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "default wheels (an NVIDIA GPU is here: they bring CUDA)"
    elif [ "$(uname -s)" != Linux ]; then
        echo "default wheels (on $(uname -s) they are CPU-only already)"
    elif "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" \
            "$TORCH_CPU_INDEX" >/dev/null 2>&1; then
        echo "cpu (no NVIDIA GPU here; CPU-only wheels from $TORCH_CPU_INDEX; SDLIB_TORCH=default for the others)"
    else
        echo "default wheels (no NVIDIA GPU, but $TORCH_CPU_INDEX is not reachable; SDLIB_TORCH=cpu to insist)"
    fi
}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed"'
        echo "course: creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.sdlib-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
        echo "course: installing the course and its pinned dependencies (first time: several minutes)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        local choice
        choice="$(torch_choice)"
        echo "course: PyTorch: $choice"
        if [ "${choice%% *}" = cpu ]; then
            "$VENV/bin/python" -m pip install -q -c constraints.txt --index-url "$TORCH_CPU_INDEX" torch torchvision
        fi
        "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[course,test]"
        touch "$stamp"
    fi
}

case "${1:-}" in
    lab)
        setup
        shift
        exec "$VENV/bin/python" -m jupyter lab notebooks/ "$@"
        ;;
    test)
        setup
        shift
        # Notebooks are committed executed on the built-in model on CPU: test them the same way.
        export SDLIB_MODEL=builtin SDLIB_DEVICE=cpu HF_HUB_OFFLINE=1 MPLBACKEND=Agg TQDM_DISABLE=1
        exec "$VENV/bin/python" -m pytest tests notebooks --nbval-lax --nbval-current-env \
            --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider "$@"
        ;;
    site)
        setup
        shift
        exec "$VENV/bin/python" tools/build_site.py "$@"
        ;;
    torch-choice)
        torch_choice
        ;;
    *)
        echo "usage: ./course.sh lab | test [pytest args] | site | torch-choice" >&2
        exit 2
        ;;
esac
