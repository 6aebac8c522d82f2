"""One place holds the course's repository URL; every notebook and the README agree with it."""
import copy
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import set_repo_url as S  # noqa: E402


@pytest.mark.parametrize("path", S.notebooks(), ids=lambda p: p.name[:2])
def test_notebook_agrees_with_pyproject(path):
    nb = nbformat.read(path, as_version=4)
    expected = S.stamped_notebook(copy.deepcopy(nb), S.configured_url(), path.name)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert nb.cells[first_code].source == expected.cells[first_code].source, \
        "install cell differs from pyproject.toml's repo_url: run tools/set_repo_url.py"
    assert nb.cells[0].source == expected.cells[0].source, "badges differ: run tools/set_repo_url.py"


def test_readme_agrees_with_pyproject():
    text = (ROOT / "README.md").read_text()
    assert S.stamped_readme(text, S.configured_url(), S.notebooks()) == text


def test_stamping_a_url_writes_install_line_and_badges():
    url = "https://github.com/example-org/sd-deep-dive"
    path = S.notebooks()[0]
    nb = S.stamped_notebook(nbformat.read(path, as_version=4), url, path.name)
    install = next(c for c in nb.cells if c.cell_type == "code").source
    assert 'COURSE_REPO = os.environ.get("COURSE_REPO", "git+https://github.com/example-org/sd-deep-dive")' in install
    assert "%pip install -q {COURSE_REPO}" in install
    head = nb.cells[0].source.split("\n")
    assert head[0].startswith("# 00 ")
    assert "colab.research.google.com/github/example-org/sd-deep-dive/blob/main/notebooks/00_overview.ipynb" in head[1]
    assert "kaggle.com/kernels/welcome?src=https://github.com/example-org/sd-deep-dive/blob/main/notebooks/00_overview.ipynb" in head[1]
    again = S.stamped_notebook(copy.deepcopy(nb), url, path.name)  # stamping twice changes nothing
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
    readme = S.stamped_readme((ROOT / "README.md").read_text(), url, S.notebooks())
    assert readme.count("colab-badge.svg") == len(S.notebooks())
    assert S.owner_repo("git@github.com:example-org/sd-deep-dive.git") == ("example-org", "sd-deep-dive")
    with pytest.raises(SystemExit, match="not a GitHub repository URL"):
        S.owner_repo("https://gitlab.com/x/y")
