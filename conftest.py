"""Test-run wiring shared by tests/ and notebooks/ (collected from the repository root).

`./course.sh test` runs on pytest-xdist workers, one per core (`-n logical`), each on one thread.
- What goes whole to one worker: a notebook (nbval runs its cells in order in one kernel) and a test
  file (its module fixtures, such as the built twins or the website, are built once). The twin
  notebook runs are the exception: each is a long test of its own, shared out one by one.
- In what order: longest first, so that no long unit starts when the others are nearly done and
  leaves the other cores idle (measured on 2 cores: notebook 07 alone takes 5 minutes). Notebooks
  by their run time (docs/notebook_times.json), then the twin runs, then the files known to be slow,
  then the rest as collected.

(xdist's own `--dist loadgroup` cannot group the cells: it renames `item._nodeid`, which pytest 9.2
no longer reads, so its groups silently fall apart and a notebook's cells scatter over the workers.)
"""
import json
from pathlib import Path

import pytest

SPREAD = ("tests/test_notebooks_on_twins.py",)  # files whose tests are shared out one by one
SLOW_FILES = ("tests/test_browser.py", "tests/test_colab_install.py", "tests/test_builtin_model.py",
              "tests/test_twins.py", "tests/test_guidance.py", "tests/test_sd3_sdxl_twins.py",
              "tests/test_sd3_builtin.py", "tests/test_sd3.py")  # > 30 s each, measured
NOTEBOOK_TIMES = Path(__file__).parent / "docs" / "notebook_times.json"


def _rank(item, times):
    """Sort key: smaller starts earlier."""
    path = item.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return (0, -times.get(Path(path).stem, 0))
    if path in SPREAD:
        return (1, 0)
    if path in SLOW_FILES:
        return (2, SLOW_FILES.index(path))
    return (3, 0)


def pytest_collection_modifyitems(items):
    times = json.loads(NOTEBOOK_TIMES.read_text()) if NOTEBOOK_TIMES.is_file() else {}
    items.sort(key=lambda item: _rank(item, times))  # stable: a notebook's cells keep their order


@pytest.hookimpl(optionalhook=True)  # known only while xdist is loaded (`-p no:xdist` runs without it)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPREAD else path

    config.option.loadscopereorder = False  # keep the order above (xdist would sort by test count)
    return WholeFiles(config, log)
