#!/usr/bin/env bash
# The course's two commands (see README):
#   ./course.sh lab    set up (first run: a virtual environment in .venv) and open JupyterLab
#   ./course.sh test   set up the same way and run every test: unit tests + nbval over notebooks
# Extra arguments after `test` go to pytest (e.g. ./course.sh test -k sampler).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SDLIB_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

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
        export SDLIB_MODEL=builtin SDLIB_DEVICE=cpu HF_HUB_OFFLINE=1 MPLBACKEND=Agg
        exec "$VENV/bin/python" -m pytest tests notebooks --nbval-lax --nbval-current-env \
            --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider "$@"
        ;;
    *)
        echo "usage: ./course.sh lab | test [pytest args]" >&2
        exit 2
        ;;
esac
