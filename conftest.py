"""Test-run wiring shared by tests/ and notebooks/ (collected from the repository root).

`./course.sh test` runs on pytest-xdist workers, one per core (`-n logical`). nbval runs a
notebook's cells in order in one kernel, so a notebook must go to one worker whole; a test file
goes whole too (its module fixtures, such as the built twins or the website, are built once). The
twin notebook runs are the exception: each is a long test of its own, spread over the workers.
Units start biggest first (xdist's `loadscopereorder`: most tests first), so the notebooks and the
big files go out early and the small files fill the gaps at the end.

(xdist's own `--dist loadgroup` cannot be used for this: it renames `item._nodeid`, which pytest 9.2
no longer reads, so its groups silently fall apart and the cells of a notebook scatter.)
"""
SPREAD = ("tests/test_notebooks_on_twins.py",)  # files whose tests are shared out one by one


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPREAD else path

    return WholeFiles(config, log)
