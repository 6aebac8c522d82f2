"""Write docs/teachers.md, the teacher's page, from the notebooks themselves (so it cannot drift).

    .venv/bin/python tools/teacher_page.py            # rewrite docs/teachers.md
    .venv/bin/python tools/teacher_page.py --check    # exit 1 if it is out of date (a test runs this)

Per notebook: what learners will see (its "What you will see" line), what they should know before,
the reading time, the measured run time on one core of this project's laptop-class CPU (from
docs/notebook_times.json, written from a test run: seconds each notebook took under nbval, whose
kernels run on one thread), the predicted minutes on a T4 and an A100 GPU with SD v1.4
(`sdlib.speed.predicted_minutes`, from sdlib/data/gpu_predictions.json, which
benchmarks/predict_gpu.py writes), and every "Try it" with where its worked answer is.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import answers  # noqa: E402  (the Try-its and their answers: one home)
from sdlib import speed  # noqa: E402  (the predicted GPU times: one home)
PAGE = ROOT / "docs" / "teachers.md"
TIMES = ROOT / "docs" / "notebook_times.json"

HEAD = """# For teachers

Twelve notebooks (00 to 11), each about 15-25 minutes of reading, that run on any laptop CPU on the course's own
small model, and on real Stable Diffusion on a Colab or Kaggle GPU by one setting. This page is
written by `tools/teacher_page.py` from the notebooks; do not edit it by hand.

## Before class

- **Laptops (no GPU needed):** on each machine, once, with the network on: `git clone` the course,
  then `./course.sh lab` (Linux/macOS) or `py course.py lab` (Windows; Python 3.10+ everywhere).
  The first run installs the pinned packages into `.venv/` (a few minutes; PyTorch's CPU-only
  wheels on Linux laptops when PyTorch's index is reachable, see the README). After that nothing
  needs the network: the model, the tokenizer and the photos ship with the course.
  `./course.sh test -k 00_overview` checks a machine in about a minute.
- **Colab or Kaggle (real Stable Diffusion):** hand out the notebook badges from the README (made by
  `tools/set_repo_url.py URL` once the course has a public repository). Choose a GPU runtime; the
  first cell installs the course, the load cell downloads SD v1.4 (about 4 GB, a few minutes).
  Kaggle needs Internet switched on in the notebook's settings.
- **Answers:** every "Try it" has a worked answer right after it (or after the cells it needs), in a
  section headed "Answer" that is closed until opened: in JupyterLab the heading shows a "+ N cells
  hidden" button that opens it; in Colab the section is collapsed and opens with its arrow; on the
  course website (`./course.sh site`) it is an "Answer" block that opens on click. GitHub's and
  nbviewer's static views cannot close a cell: there the answers are shown open. The answer's code
  and its output are both inside the closed section. (`tools/answers.py` checks every "Try it" has
  one and writes the hiding into the notebooks.)
- Run times below are for executing a whole notebook top to bottom; learners reading at their own
  pace spend the reading time, not the run time. To time them on your own machine or runtime, run
  `python benchmarks/benchmark.py` in the course folder (on a Colab GPU with real Stable Diffusion:
  `HF_HUB_OFFLINE=0 python benchmarks/benchmark.py --model CompVis/stable-diffusion-v1-4 --device cuda`);
  it prints each notebook's seconds.

"""


def first_line_after(label, text):
    m = re.search(r"\*\*" + re.escape(label) + r"\*\*\s*(.+?)(?=\s\*\*[A-Z][a-z]+:\*\*|\n\n|$)", text, re.S)
    return " ".join(m.group(1).split()) if m else ""


def try_its(nb):
    """[(section, task)] for every **Try it** in the notebook's markdown (answers.try_its finds them)."""
    out = []
    for i, section in answers.try_its(nb):
        for m in re.finditer(r"(?m)^\*\*Try it([^*]*)\*\*\s*([^\n]*)", nb.cells[i].source):
            title = m.group(1).strip(" :.()")
            rest = re.split(r"(?<=[.?!])\s", m.group(2).strip().removeprefix("- "), maxsplit=1)[0]
            task = title if title and title != "predict first" else rest
            out.append((section, " ".join(task.split()) or "see the list in the notebook"))
    return out


def gpu_line(row, why_not=None):
    """The predicted GPU minutes of one notebook, labelled, or why there are none and what to run."""
    if why_not:
        return f"not predicted ({why_not}); measure it with the benchmark above."
    if not row:
        return "not predicted yet; run `benchmarks/predict_gpu.py`, or measure it with the benchmark above."
    shown = lambda m: f"{m:.1f} min" if m >= 0.05 else "under 0.1 min"  # as notebook 08, section 6, prints it
    small = ("; only SD-sized calls are priced, not the built-in models a notebook runs beside SD"
             if max(row.values()) < 0.05 else "")
    return ("predicted (not measured) computing time " + ", ".join(f"{shown(m)} on a{'n' * gpu.startswith('A')} {gpu}"
                                                                  for gpu, m in row.items())
            + f", without loading the weights (the assumptions: notebook 08, section 6){small}; "
            "measure it with the benchmark above.")


def page():
    times = json.loads(TIMES.read_text()) if TIMES.is_file() else {}
    gpu = speed.predicted_minutes() if speed.GPU_PREDICTIONS.is_file() else {}
    parts = [HEAD]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        intro = nb.cells[0].source
        title = intro.splitlines()[0].lstrip("# ").strip()
        reading = first_line_after("Time:", intro).split(";")[0].rstrip(".")
        secs = times.get(path.stem)
        run = f"{secs:.0f} s" if secs is not None else "not measured"
        parts.append(f"## {title}\n\n`notebooks/{path.name}`\n\n")
        parts.append(f"- **Learners will see:** {first_line_after('What you will see:', intro)}\n")
        parts.append(f"- **Before:** {first_line_after('Before:', intro) or 'nothing'}\n")
        parts.append(f"- **Time:** {reading or 'see the notebook'}; runs top to bottom in {run} on one "
                     "core of a laptop-class CPU (built-in model; more cores are faster). On a GPU with SD "
                     f"v1.4: {gpu_line(gpu.get(path.stem), speed.NOT_PREDICTED.get(path.stem))}\n")
        tries = try_its(nb)
        if tries:
            parts.append("- **Try it** (worked answer: the closed \"Answer\" section after each):\n")
            parts += [f"  - {task} (section {section})\n" for section, task in tries]
        parts.append("\n")
    return "".join(parts).rstrip() + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    text = page()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run tools/teacher_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
