"""Build the course website: static HTML of the executed notebooks, a contents page, the teacher's page.

    ./course.sh site                                  # writes site/ (open site/index.html)
    .venv/bin/python tools/build_site.py --out DIR

Tool: nbconvert's HTML exporter (already installed with JupyterLab, so no new dependency; it keeps
every picture and inline animation of the committed outputs and embeds saved widget state), and
mistune (nbconvert's own Markdown renderer) for the contents page and docs/teachers.md. Jupyter
Book 2 needs Node.js and mkdocs-jupyter a second site generator, for the same pages.
"""
import argparse
import html
import re
import shutil
import sys
from pathlib import Path

import mistune
import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import answers  # noqa: E402  (where the worked answers are)

STYLE = """<style>
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
img { max-width: 100%; } code { background: #f4f4f4; padding: 0 0.2em; }
nav { margin-bottom: 1.5em; }
</style>"""
# A worked answer on a notebook's page: closed until its summary is clicked.
ANSWER_STYLE = ("<style>details.answer { border: 1px solid #ccc; border-radius: 4px; margin: 0.5em 0 0.5em 5em; }"
                " details.answer > summary { cursor: pointer; padding: 0.4em 0.8em; font-weight: bold; }</style>")


def page(title, body):
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"{STYLE}</head><body><nav><a href=\"index.html\">Contents</a> · "
            f"<a href=\"teachers.html\">For teachers</a></nav>\n{body}\n</body></html>\n")


def close_answers(body, nb):
    """`body` (nbconvert's HTML of `nb`) with each worked answer (tools/answers.py) in a closed
    <details> block: its heading becomes the summary, its cells the content. nbconvert writes the
    cells as consecutive <div class="jp-Cell ..." id="cell-id=ID"> siblings, so a section is the
    text from its first body cell's div to the next cell's div."""
    def start(k):
        if k >= len(nb.cells):
            return body.rindex("</main>")
        m = re.search(r'<div class="jp-Cell[^"]*" id="cell-id=' + re.escape(nb.cells[k].id) + '"', body)
        return m.start()

    for i, cell_indices in reversed(answers.answer_sections(nb)):
        end = start(cell_indices[-1] + 1 if cell_indices else i + 1)
        title = html.escape(nb.cells[i].source.strip().lstrip("# "))
        head, inner = start(i), body[start(i + 1):end]
        body = (body[:head] + f'<details class="answer"><summary>{title}</summary>\n{inner}</details>\n'
                + body[end:])
    return body.replace("</head>", ANSWER_STYLE + "</head>", 1)


def notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def contents_page():
    """The README's notebook table (each name linked to its page) and its gallery."""
    readme = (ROOT / "README.md").read_text()
    title = readme.splitlines()[0].lstrip("# ")
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1]
    table = re.search(r"\| notebook \| contents \|\n(?:\|.*\|\n)+", readme).group(0)
    for nb in notebooks():
        table = table.replace(f"`{nb.stem}`", f"[{nb.stem}](notebooks/{nb.stem}.html)")
    gallery = "\n".join(m.group(0) for m in re.finditer(r"!\[[^\]]*\]\(figures/[^)]+\)", readme))
    md = (f"# {title}\n{intro}\n\n## The notebooks\n\n{table}\n\n## Gallery\n\n{gallery}\n\n"
          "Teaching with it: [the teacher's page](teachers.html).\n")
    return page(title, mistune.html(md))


def build(out):
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "figures", out / "figures")
    exporter = HTMLExporter(template_name="lab")
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        body = close_answers(body, nb)
        nav = ('<nav style="font-family: system-ui, sans-serif; margin: 1em;"><a href="../index.html">Contents</a>'
               ' · <a href="../teachers.html">For teachers</a></nav>')
        body = re.sub(r"(<body[^>]*>)", r"\1" + nav, body, count=1)
        (out / "notebooks" / f"{path.stem}.html").write_text(body)
    (out / "index.html").write_text(contents_page())
    teachers = (ROOT / "docs" / "teachers.md").read_text()
    for nb in notebooks():  # the teacher's page names each notebook's file: link its page instead
        teachers = teachers.replace(f"`notebooks/{nb.name}`", f"[notebooks/{nb.name}](notebooks/{nb.stem}.html)")
    (out / "teachers.html").write_text(page("For teachers", mistune.html(teachers)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "site"))
    args = ap.parse_args(argv)
    out = build(args.out)
    print(f"site: {out / 'index.html'} ({len(notebooks())} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
