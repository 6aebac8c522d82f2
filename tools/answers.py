"""The worked answers: where they are in a notebook, and how they stay hidden until opened.

    .venv/bin/python tools/answers.py [notebooks/01_*.ipynb ...]     # set the hiding, check, no execution
    .venv/bin/python tools/answers.py --check                         # only check (exit 1 on a problem)

An answer is a section of its own: a markdown cell that is exactly one heading line
`#### Answer` (or `#### Answer: <topic>`), placed after the "**Try it**" it answers, then the
answer's cells (markdown and code, executed with the notebook), up to the next markdown cell that
starts with a heading of level 1-4. The structure alone says what is hidden; `hide` writes it where
each viewer looks (tools/execute_notebooks.py calls it on every notebook it writes):

- JupyterLab 4 / Notebook 7: the heading is collapsed (cell metadata `jp-MarkdownHeadingCollapsed`):
  the answer shows as one line "Answer" with "N cells hidden"; its arrow opens it.
- Colab: the heading cell gets a Colab cell id and the notebook lists it in `colab.collapsed_sections`,
  which Colab renders collapsed (Colab ignores JupyterLab's metadata).
- The course site (tools/build_site.py): the section becomes an HTML `<details>` block.
- GitHub's and nbviewer's static views cannot hide a cell: there the answers are shown open.

Every "**Try it**" has one, the recaps' too.
"""
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ANSWER = re.compile(r"#### Answer(?::\s*\S.*)?")            # the whole source of an answer's heading cell
HEADING = re.compile(r"^(#{1,6})\s", re.M)
TRY_IT = re.compile(r"(?m)^\*\*Try it")
JUPYTERLAB_COLLAPSED = "jp-MarkdownHeadingCollapsed"


def heading_level(cell):
    """The level JupyterLab and Colab give a markdown cell: its highest heading (1..6), or 0."""
    if cell.cell_type != "markdown":
        return 0
    levels = [len(m.group(1)) for m in HEADING.finditer(cell.source)]
    return min(levels) if levels else 0


def is_answer_heading(cell):
    return cell.cell_type == "markdown" and bool(ANSWER.fullmatch(cell.source.strip()))


def answer_sections(nb):
    """[(heading index, [body cell indices])]: each answer and the cells it hides."""
    sections = []
    for i, cell in enumerate(nb.cells):
        if is_answer_heading(cell):
            body = []
            for j in range(i + 1, len(nb.cells)):
                if 0 < heading_level(nb.cells[j]) <= 4:
                    break
                body.append(j)
            sections.append((i, body))
    return sections


def try_its(nb):
    """[(cell index, section title)] for every markdown cell with a "**Try it"."""
    out, section = [], "(top)"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("## "):
                section = line[3:].strip()
        if TRY_IT.search(cell.source):
            out.append((i, section))
    return out


def problems(nb):
    """What is wrong with the answers of `nb`, in words (empty: all is well)."""
    found = []
    sections = answer_sections(nb)
    starts = [i for i, _ in sections]
    tries = try_its(nb)
    for k, (i, _section) in enumerate(tries):
        nxt = [j for j, _ in tries[k + 1:]]
        limit = min(nxt + [j for j in range(i + 1, len(nb.cells)) if heading_level(nb.cells[j]) in (1, 2)]
                    + [len(nb.cells)])
        if not any(i < s < limit for s in starts):
            found.append(f"cell {i}: a Try it with no '#### Answer' section after it")
    for i, body in sections:
        if not body:
            found.append(f"cell {i}: an answer with no cells")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and re.search(r"<details>\s*<summary>\s*Answer", cell.source):
            found.append(f"cell {i}: an answer in <details> instead of an '#### Answer' section")
    return found


def hide(nb, stem="nb"):
    """Write the hiding of every answer into `nb`'s metadata (in place; returns `nb`). Idempotent."""
    ids = []
    for k, (i, body) in enumerate(answer_sections(nb)):
        cell = nb.cells[i]
        cell.metadata[JUPYTERLAB_COLLAPSED] = True
        cell.metadata["id"] = f"answer-{k + 1}"  # Colab's cell id, listed in collapsed_sections
        ids.append(cell.metadata["id"])
        for j in body:  # the section is hidden as a whole; a hidden part inside it would need a 2nd click
            jupyter = nb.cells[j].metadata.get("jupyter", {})
            for key in ("source_hidden", "outputs_hidden"):
                jupyter.pop(key, None)
            if "jupyter" in nb.cells[j].metadata and not jupyter:
                del nb.cells[j].metadata["jupyter"]
    colab = nb.metadata.setdefault("colab", {})
    colab["collapsed_sections"] = ids
    return nb


def main(argv):
    check_only = "--check" in argv
    paths = [a for a in argv if a != "--check"] or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    bad = 0
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        found = problems(nb)
        for line in found:
            print(f"{Path(p).name}: {line}")
        bad += bool(found)
        if not check_only:
            before = nbformat.writes(nb)
            hide(nb)
            if nbformat.writes(nb) != before:
                nbformat.write(nb, p)
                print(f"{Path(p).name}: answers hidden ({len(answer_sections(nb))})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
