"""Stamp the course's public repository into every notebook and the README.

    .venv/bin/python tools/set_repo_url.py https://github.com/OWNER/REPO   # set it, then stamp
    .venv/bin/python tools/set_repo_url.py                                 # stamp what pyproject says

One place holds the URL: `[tool.sdlib] repo_url` in pyproject.toml (with no argument and no URL
there, the `origin` remote is used when it is a GitHub URL). From it this tool writes each
notebook's first code cell (the Colab/Kaggle install cell), the "Open in Colab" / "Open in Kaggle"
badges on the first line of each notebook, and the README's table of badges.
`tests/test_repo_url.py` fails when a notebook or the README disagrees with pyproject.toml.
"""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BADGES_START, BADGES_END = "<!-- badges: made by tools/set_repo_url.py -->", "<!-- /badges -->"
GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:)([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def configured_url(root=ROOT):
    """[tool.sdlib] repo_url from pyproject.toml ('' when unset)."""
    return tomllib.loads((root / "pyproject.toml").read_text()).get("tool", {}).get("sdlib", {}).get("repo_url", "")


def origin_url(root=ROOT):
    """The origin remote as https://github.com/OWNER/REPO, or '' when it is not on GitHub."""
    out = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True)
    m = GITHUB.match(out.stdout.strip())
    return f"https://github.com/{m[1]}/{m[2]}" if m else ""


def owner_repo(url):
    m = GITHUB.match(url or "")
    if not m:
        raise SystemExit(f"not a GitHub repository URL: {url!r} (expected https://github.com/OWNER/REPO)")
    return m[1], m[2]


def install_cell(url):
    """The first code cell of every notebook: on Colab/Kaggle, install the course from `url`."""
    source = f"git+{url}" if url else ""
    return (
        "# Colab/Kaggle only: install the course library (elsewhere `./course.sh lab` already did).\n"
        "# Torch is left alone when the runtime has a compatible one (Colab and Kaggle do).\n"
        "import os, sys\n"
        f"COURSE_REPO = os.environ.get(\"COURSE_REPO\", \"{source}\")  # stamped by tools/set_repo_url.py\n"
        "if \"google.colab\" in sys.modules or \"KAGGLE_KERNEL_RUN_TYPE\" in os.environ:\n"
        "    if not COURSE_REPO:\n"
        "        raise SystemExit(\"Set COURSE_REPO to the course's git URL (os.environ['COURSE_REPO'] = \"\n"
        "                         \"'git+https://github.com/OWNER/REPO'), then run this cell again.\")\n"
        "    # Kaggle: switch Internet on in the notebook's settings first, or pip cannot reach GitHub.\n"
        "    %pip install -q {COURSE_REPO}")


def badges(url, notebook):
    """Markdown badges that open `notebook` (a name like 00_overview.ipynb) in Colab and Kaggle."""
    owner, repo = owner_repo(url)
    path = f"{owner}/{repo}/blob/main/notebooks/{notebook}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}) "
            f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]"
            f"(https://kaggle.com/kernels/welcome?src=https://github.com/{path})")


def stamped_notebook(nb, url, name):
    """The notebook with its install cell and badge line set for `url` (no badges without one)."""
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    first_code.source = install_cell(url)
    head = nb.cells[0]
    lines = [line for line in head.source.split("\n") if "colab-badge.svg" not in line]
    if url:
        lines.insert(1, badges(url, name))
    head.source = "\n".join(lines)
    return nb


def stamped_readme(text, url, notebooks):
    """The README with its badge table (between the markers) made for `url`."""
    rows = [f"| `{p.stem}` | {badges(url, p.name)} |" for p in notebooks] if url else \
        ["| (no public repository set: `tools/set_repo_url.py URL`) | |"]
    block = "\n".join([BADGES_START, "| notebook | open it on a GPU |", "|---|---|", *rows, BADGES_END])
    if BADGES_START in text:
        return re.sub(re.escape(BADGES_START) + ".*?" + re.escape(BADGES_END), lambda _: block, text, flags=re.S)
    return text.replace("## The notebooks\n", "## The notebooks\n\n" + block + "\n", 1)


def notebooks(root=ROOT):
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def set_configured_url(url, root=ROOT):
    path = root / "pyproject.toml"
    text = path.read_text()
    line = f'repo_url = "{url}"'
    if "[tool.sdlib]" in text:
        text = re.sub(r'(?m)^repo_url = ".*"$', line, text)
    else:
        text += ("\n[tool.sdlib]\n# The course's public repository: tools/set_repo_url.py stamps it into the notebooks'\n"
                 f"# install cells and badges and the README (tests/test_repo_url.py checks they agree).\n{line}\n")
    path.write_text(text)


def main(argv=None, root=ROOT):
    argv = sys.argv[1:] if argv is None else argv
    url = argv[0] if argv else (configured_url(root) or origin_url(root))
    if url:
        owner, repo = owner_repo(url)
        url = f"https://github.com/{owner}/{repo}"
    set_configured_url(url, root)
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        nbformat.write(stamped_notebook(nb, url, path.name), path)
    readme = root / "README.md"
    readme.write_text(stamped_readme(readme.read_text(), url, notebooks(root)))
    print(f"stamped {url or '(no URL)'} into {len(notebooks(root))} notebooks and the README")


if __name__ == "__main__":
    main()
