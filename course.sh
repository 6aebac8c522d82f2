#!/usr/bin/env bash
# The course's commands (see README and course.py, which holds them all; on Windows: py course.py ...):
#   ./course.sh lab             set up (first run: a virtual environment in .venv) and open JupyterLab
#   ./course.sh test            set up the same way and run every test: unit tests + nbval over notebooks
#   ./course.sh test --latest   the same tests on the newest releases of the libraries (.venv-latest)
# Extra arguments after `test` go to pytest (e.g. ./course.sh test -k sampler), after `lab` to jupyter lab.
#   ./course.sh site            build the course website into site/ (open site/index.html)
#   ./course.sh torch-choice    which PyTorch wheels a first setup would install, and why
# PYTHON picks the interpreter that runs course.py and makes the virtual environment (default python3).
set -euo pipefail
cd "$(dirname "$0")"
exec "${PYTHON:-python3}" course.py "$@"
