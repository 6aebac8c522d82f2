"""Every "Try it" has a worked answer, and every answer is closed until the learner opens it (issue 26).

tools/answers.py finds the answers (a `#### Answer` heading and the cells up to the next heading)
and writes where each viewer reads that they are closed: JupyterLab's collapsed heading, Colab's
`collapsed_sections`; the website wraps them in <details> (tools/build_site.py). What a browser
shows is checked in tests/test_browser.py; here, the notebooks' structure and metadata.
"""
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import answers  # noqa: E402
import build_site  # noqa: E402

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def small_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("## 1. Section\n\n**Try it:** predict x."), code("x = 1"),
                md("#### Answer"), md("It is one:"),
                code("print(x)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
                md("#### Then"), md("**Try it:** and y?"), md("#### Answer: y"), md("y is two."),
                md("## Recap\n\n**Try it:** on your own prompt.")]
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_try_it_has_an_answer(path):
    nb = nbformat.read(path, as_version=4)
    assert answers.try_its(nb), f"{path.name}: no Try it"
    assert not answers.problems(nb), f"{path.name}: " + "; ".join(answers.problems(nb))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_answer_is_closed_in_jupyterlab_and_colab(path):
    nb = nbformat.read(path, as_version=4)
    sections = answers.answer_sections(nb)
    closed = [nb.cells[i].metadata.get(answers.JUPYTERLAB_COLLAPSED) for i, _ in sections]
    assert closed == [True] * len(sections), f"{path.name}: run tools/answers.py (or the execute tool)"
    assert nb.metadata["colab"]["collapsed_sections"] == [nb.cells[i].metadata["id"] for i, _ in sections]
    assert len({nb.cells[i].metadata["id"] for i, _ in sections}) == len(sections)
    hidden_parts = [j for _, body in sections for j in body
                    if nb.cells[j].metadata.get("jupyter", {}).get("source_hidden")]
    assert not hidden_parts, f"{path.name}: cells {hidden_parts} would need a second click"


def test_sections_end_at_the_next_heading():
    nb = small_notebook()
    assert answers.answer_sections(nb) == [(2, [3, 4]), (7, [8])]
    assert [i for i, _ in answers.try_its(nb)] == [0, 6, 9]


def test_problems_names_a_try_it_without_an_answer_and_details_answers():
    nb = small_notebook()
    assert answers.problems(nb) == ["cell 9: a Try it with no '#### Answer' section after it"]
    nb.cells[9:] = [md("## Recap\n\n**Try it:** on your own prompt."),
                    md("<details><summary>Answer</summary>\n\nchange the prompt\n</details>")]
    assert answers.problems(nb) == ["cell 9: a Try it with no '#### Answer' section after it",
                                    "cell 10: an answer in <details> instead of an '#### Answer' section"]
    nb.cells[10] = md("#### Answer\n\nchange the prompt")  # the heading must be alone in its cell
    assert answers.problems(nb)[0].startswith("cell 9: a Try it with no")
    nb.cells[10:] = [md("#### Answer"), md("change the prompt")]
    assert answers.problems(nb) == []


def test_hide_closes_each_answer_once():
    nb = small_notebook()
    nb.cells[4].metadata["jupyter"] = {"source_hidden": True}
    answers.hide(nb)
    once = nbformat.writes(nb)
    assert nbformat.writes(answers.hide(nb)) == once
    assert nb.cells[2].metadata[answers.JUPYTERLAB_COLLAPSED] and nb.cells[7].metadata[answers.JUPYTERLAB_COLLAPSED]
    assert answers.JUPYTERLAB_COLLAPSED not in nb.cells[5].metadata  # "#### Then" stays open
    assert nb.metadata["colab"]["collapsed_sections"] == ["answer-1", "answer-2"]
    assert "jupyter" not in nb.cells[4].metadata


def test_the_site_puts_each_answer_code_and_output_in_a_closed_details_block():
    nb = small_notebook()
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = build_site.close_answers(body, nb)
    blocks = page.split("<details")[1:]
    assert len(blocks) == 2 and all(" open" not in b.split(">")[0] for b in blocks)
    first = blocks[0].split("</details>")[0]
    assert "<summary>Answer</summary>" in first and "It is one:" in first and "<pre>1\n</pre>" in first
    assert "Then" not in first and "predict x" not in first
    assert "<summary>Answer: y</summary>" in blocks[1] and "y is two." in blocks[1].split("</details>")[0]
