"""The course as a learner sees it, in a real browser: JupyterLab with its widgets, and the website.

The other tests run notebooks with nbclient/nbval and read the site's HTML with a parser; neither
renders anything, so a widget that only says "Error displaying widget", an explorer whose picture
never changes or a picture that does not load would pass them. Here Debian's chromium, driven by
playwright (no `playwright install`: the system browser), opens what `./course.sh lab` serves:
- two notebooks with an explorer (01, 03), Run > Run All Cells: each cell finishes with no error
  output, and moving one control of the explorer changes its picture;
- every other notebook as committed: it renders, its pictures load, no error output. nbval runs
  them top to bottom already; running them here too cost about 20 more minutes of one CI worker,
  so it is left to `SDLIB_BROWSER_RUN_ALL=1`, which runs every notebook;
- the committed notebooks, unexecuted: the explorers show their saved slider and picture;
- every page of the website (tools/build_site.py): pictures load, internal links answer;
- the worked answers (tools/answers.py), code and output, are closed until clicked, in JupyterLab
  and on the website.
JupyterLab serves copies of the notebooks with the quick settings (tools/execute_notebooks.py: QUICK_ENV's
SDLIB_TRAIN_STEPS and SDLIB_SAMPLE_STEPS, and the step counts written in cells capped by `quick_steps`,
as the twin runs do; outputs and widget states are the committed ones); running notebooks is most of
this file's time.
Screenshots go to a temporary folder; their paths are printed (-s). JupyterLab and chromium run with
folders of their own (config, settings, workspaces), autosave off: nothing of the user's is read or
changed, and nothing is saved to notebooks/. Deselect with `-m "not browser"`.
"""
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPLORERS = [nb for nb in NOTEBOOKS if "explorer(" in nb.read_text()]  # 01, 02, 03, 05, 09, 10, ...
# Run All here: two explorer notebooks, the quickest (01 48 s, 03 76 s), enough to show that the
# kernel drives a live explorer through the browser. The other explorers are the same ipywidgets
# `interact` over their own callback (tests/test_explore_*.py), their saved views are drawn below,
# and nbval runs every notebook; running all six here was 12 minutes of one CI worker.
LIVE = ("01_", "03_")
RUN_HERE = NOTEBOOKS if os.environ.get("SDLIB_BROWSER_RUN_ALL") == "1" else \
    [nb for nb in EXPLORERS if nb.name.startswith(LIVE)]
sys.path.insert(0, str(ROOT / "tools"))
import answers  # noqa: E402
import build_site  # noqa: E402
from execute_notebooks import ENV, QUICK_ENV, quick_copy  # noqa: E402  (the environment notebooks are executed in)

pytestmark = pytest.mark.browser  # one worker runs the whole file: conftest.py sends files whole

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
RUN_TIMEOUT_S = 600  # one notebook's Run All Cells (05, before its step counts were capped, took over 300 s in CI)
# JupyterLab settings for the test: no autosave (the notebooks are run, never saved); every cell
# rendered (the default windowing leaves cells out of the page until scrolled to); no news pop-up.
LAB_SETTINGS = {"@jupyterlab/docmanager-extension/plugin": {"autosave": False},
                "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
# JupyterLab renders an error output as text on stderr (the output's data holds both
# application/vnd.jupyter.error and .stderr, and only .stderr has a renderer): a stderr output
# with a traceback. Exceptions in an explorer's callback show the same way in its output area.
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
PROMPTS = ".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt"  # [N]: ran, [*]: running or queued, [ ]: not run


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install playwright (no `playwright install`)")
    home = tmp_path_factory.mktemp("chromium")  # its config and crash-report folders, not the user's
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True,
                                    env={**os.environ, "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home)})
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """shots(page_or_element, name): save a screenshot, print its path."""
    folder = tmp_path_factory.mktemp("screenshots")

    def shoot(target, name):
        path = folder / f"{name}.png"
        target.screenshot(path=path)
        print(f"screenshot: {path}")
        return path
    return shoot


def die_with_parent():
    """In the server's process (Linux): SIGTERM when pytest ends, even killed before its teardown."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab started by `./course.sh lab`, and the REST calls the tests need."""

    def __init__(self, url, token):
        self.url, self.token = url, token

    def api(self, path, method="GET"):
        req = urllib.request.Request(f"{self.url}/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self, name):
        return next((s["kernel"]["execution_state"] for s in self.api("api/sessions") if s["path"] == name), None)

    def shut_down(self, name):
        for s in self.api("api/sessions"):
            if s["path"] == name:
                self.api(f"api/sessions/{s['id']}", method="DELETE")


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):  # browser first: without chromium, skip before starting anything
    home = tmp_path_factory.mktemp("jupyter")
    for plugin, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, **ENV, **QUICK_ENV,
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    served = home / "notebooks"  # quick copies: the step counts written in cells capped, as the twin runs do
    served.mkdir()
    for path in NOTEBOOKS:
        nbformat.write(quick_copy(nbformat.read(path, as_version=4)), served / path.name)
    port, token = free_port(), secrets.token_hex(16)
    cmd = ["./course.sh", "lab", str(served), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              preexec_fn=die_with_parent if sys.platform == "linux" else None)
    lab = Lab(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + 300  # setup() may reinstall first if pyproject.toml changed
        while True:
            assert server.poll() is None, f"./course.sh lab exited: {(home / 'lab.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"JupyterLab did not answer: {(home / 'lab.log').read_text()[-3000:]}"
            try:
                lab.api("api/status")
                break
            except OSError:
                time.sleep(0.5)
        yield lab
    finally:  # the whole process group; the server shuts its kernels down on SIGTERM
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def open_notebook(browser, lab):
    """open_notebook(path): a page with the notebook open in JupyterLab, every cell rendered.
    Afterwards the page is closed unsaved and the kernel shut down."""
    opened = []

    def open_(path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        opened.append((page, path.name))
        page.goto(f"{lab.url}/lab/tree/{path.name}?reset&token={lab.token}")  # reset: no other tab
        nb = nbformat.read(path, as_version=4)
        page.wait_for_function(f"document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length == {len(nb.cells)}",
                               timeout=120_000)
        # JupyterLab applies the saved collapsed headings after the cells exist: on a busy machine a
        # check made in between sees an answer open. Wait until each answer shows "+ N cells hidden".
        n_answers = len(answers.answer_sections(nb))
        page.wait_for_function("document.querySelectorAll('.jp-NotebookPanel .jp-showHiddenCellsButton').length"
                               f" >= {n_answers}", timeout=60_000)
        return page
    yield open_
    for page, name in opened:
        page.close()
        lab.shut_down(name)


def menu(page, top, item):
    page.locator(".lm-MenuBar-itemLabel").get_by_text(top, exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def open_answers(page):
    """Open every closed worked answer (a collapsed "Answer" heading), as a learner clicking each."""
    closed = page.locator(".jp-NotebookPanel .jp-showHiddenCellsButton")  # "+ N cells hidden"
    for _ in range(closed.count()):
        closed.first.click()


def tracebacks(page):
    return page.locator(STDERR).filter(has_text="Traceback")


def assert_no_error_shown(page, where):
    errors = tracebacks(page)
    assert errors.count() == 0, f"{where}: error output: {errors.first.inner_text()[-2000:]}"
    assert page.get_by_text("Error displaying widget").count() == 0, f"{where}: Error displaying widget"


def run_all_cells(page, lab, name, timeout_s):
    """Run > Run All Cells; wait until no cell is running or queued and the kernel is idle (twice
    in a row, a second apart). Returns the code cells' prompts: [N]: ran, [*]: running or queued,
    [ ]: not run (after an error, Run All stops and the cells below stay so)."""
    menu(page, "Run", "Run All Cells")
    start, settled = time.monotonic(), 0
    while settled < 2:
        time.sleep(1)
        prompts = [p.strip() for p in page.locator(PROMPTS).all_text_contents()]
        busy = "[*]:" in prompts or lab.kernel_state(name) != "idle"
        settled = 0 if busy else settled + 1
        assert time.monotonic() - start < timeout_s, f"{name}: still running after {timeout_s} s: {prompts}"
    print(f"{name}: Run All Cells took {time.monotonic() - start:.0f} s")
    return prompts


def wait_until_idle(lab, name, timeout_s):
    start = time.monotonic()
    while lab.kernel_state(name) != "idle":
        assert time.monotonic() - start < timeout_s, f"{name}: the kernel stayed busy for {timeout_s} s"
        time.sleep(0.5)


def picture(explorer):
    """The src of the explorer's picture (the first image in its output area)."""
    return explorer.locator(".widget-output img").first.get_attribute("src", timeout=60_000)


@pytest.mark.parametrize("path", RUN_HERE, ids=[nb.stem[:2] for nb in RUN_HERE])
def test_notebook_runs_in_jupyterlab_without_errors(lab, open_notebook, shots, path):
    page = open_notebook(path)
    open_answers(page)  # the worked answers run too
    menu(page, "View", "Expand All Code")
    menu(page, "Edit", "Clear Outputs of All Cells")  # so that every prompt reads [ ]: before the run
    prompts = run_all_cells(page, lab, path.name, RUN_TIMEOUT_S)
    page.locator(".jp-NotebookPanel .jp-CodeCell").last.scroll_into_view_if_needed()
    shots(page, f"{path.stem}_run")
    assert_no_error_shown(page, path.name)
    n_code = sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)
    assert len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), \
        f"{path.name}: not every cell ran: {prompts}"
    if path not in EXPLORERS:
        return
    # The explorer: one step of its first slider (keyboard, as a learner may) redraws its picture.
    explorer = page.locator(".widget-interact").first
    explorer.scroll_into_view_if_needed()
    before = picture(explorer)
    shots(explorer, f"{path.stem}_explorer_before")
    explorer.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, before]) => { const img = el.querySelector('.widget-output img');"
                           " return img !== null && img.getAttribute('src') !== before; }",
                           arg=[explorer.element_handle(), before], timeout=120_000, polling=250)
    wait_until_idle(lab, path.name, 60)
    shots(explorer, f"{path.stem}_explorer_after")
    assert picture(explorer) != before
    assert_no_error_shown(page, f"{path.name}, after moving the explorer's slider")


NOT_RUN_HERE = [nb for nb in NOTEBOOKS if nb not in RUN_HERE]


@pytest.mark.parametrize("path", NOT_RUN_HERE, ids=[nb.stem[:2] for nb in NOT_RUN_HERE])
def test_committed_notebook_renders_in_jupyterlab(open_notebook, shots, path):
    """A notebook as committed: every cell drawn, every picture loaded, no error output."""
    page = open_notebook(path)
    open_answers(page)
    menu(page, "View", "Expand All Code")
    images = page.locator(".jp-NotebookPanel .jp-OutputArea-output img")
    n_png = sum("image/png" in o.get("data", {}) for c in nbformat.read(path, as_version=4).cells
                if c.cell_type == "code" for o in c.outputs)
    assert images.count() >= n_png > 0, f"{path.name}: {images.count()} pictures drawn of {n_png}"
    assert images.evaluate_all("imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth > 0,"
                               " () => false)))").count(False) == 0, f"{path.name}: a picture did not load"
    page.locator(".jp-NotebookPanel .jp-CodeCell").last.scroll_into_view_if_needed()
    shots(page, f"{path.stem}_committed")
    assert_no_error_shown(page, path.name)


@pytest.mark.parametrize("path", EXPLORERS, ids=[nb.stem[:2] for nb in EXPLORERS])
def test_committed_notebook_shows_its_explorer_unexecuted(open_notebook, shots, path):
    """The widget state saved in the notebook (metadata.widgets) draws the explorer before anything
    has run: its sliders and its picture. JupyterLab renders widgets only in a trusted notebook (an
    untrusted one shows the text "interactive(children=...)"), so `./course.sh lab` trusts them."""
    page = open_notebook(path)
    explorer, as_text = page.locator(".widget-interact"), page.get_by_text("interactive(children")
    explorer.or_(as_text).first.wait_for(timeout=60_000)  # the widget manager waits for the kernel
    if explorer.count() == 0:  # on a busy machine the text can show before the saved state is drawn
        page.wait_for_timeout(20_000)
    assert as_text.count() == 0, f"{path.name}: the explorer is shown as text: is the notebook trusted?"
    assert explorer.count() == 1
    explorer.scroll_into_view_if_needed()
    assert explorer.locator(".widget-slider").count() >= 1
    img = explorer.locator(".widget-output img").first
    img.wait_for(timeout=30_000)
    assert img.evaluate("img => img.complete && img.naturalWidth > 0")
    shots(explorer, f"{path.stem}_unexecuted_explorer")
    assert_no_error_shown(page, path.name)


def _answer_with_output():
    """(notebook, answers.answer_sections) of the first notebook with an answer that has printed output."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        sections = answers.answer_sections(nb)
        if any(nb.cells[j].cell_type == "code" and nb.cells[j].outputs for _, body in sections for j in body):
            return path, nb, sections
    pytest.fail("no notebook has a worked answer with output")


def test_answers_are_closed_in_jupyterlab_until_clicked(open_notebook, shots):
    """Opened as committed: each "Answer" heading shows, with "+ N cells hidden" under it, its cells
    (code and output) do not; a click on "+ N cells hidden" shows them."""
    path, nb, sections = _answer_with_output()
    page = open_notebook(path)
    cells = page.locator(".jp-NotebookPanel .jp-Cell")
    for i, body in sections:
        assert cells.nth(i).is_visible(), f"{path.name}: answer heading cell {i} not shown"
        shown = [j for j in body if cells.nth(j).is_visible()]
        assert not shown, f"{path.name}: cells {shown} of the answer at cell {i} are shown before a click"
    i, body = next((i, body) for i, body in sections if any(nb.cells[j].cell_type == "code" for j in body))
    cells.nth(i).scroll_into_view_if_needed()
    shots(cells.nth(i), f"{path.stem}_answer_closed")
    cells.nth(i).locator(".jp-showHiddenCellsButton").click()
    j = next(j for j in body if nb.cells[j].cell_type == "code")
    cells.nth(j).locator(".jp-OutputArea-output").first.wait_for(state="visible", timeout=10_000)
    assert all(cells.nth(k).is_visible() for k in body), f"{path.name}: the answer at cell {i} did not open"
    shots(cells.nth(j), f"{path.stem}_answer_open")


def test_jupyterlab_saves_widget_state_with_the_notebook(lab):
    """ipywidgets' saveState is on in the course's JupyterLab. Off (its default), a notebook run and
    saved in JupyterLab keeps the committed widget state while its outputs name the new widgets:
    reopened, the explorers read "Error displaying widget: model not found"."""
    settings = lab.api("lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin")
    default = settings["schema"]["properties"]["saveState"]["default"]  # with the course's overrides
    assert settings["settings"].get("saveState", default) is True, \
        "saveState is off: ./course.sh lab should turn it on (in .venv/share/jupyter/lab/settings/overrides.d)"


# --- the website -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    """The site built as `./course.sh site` builds it, served over HTTP on 127.0.0.1."""
    site = build_site.build(tmp_path_factory.mktemp("site") / "site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sorted(p.relative_to(site).as_posix()
                                                               for p in site.rglob("*.html"))
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_site_pages_show_every_picture_and_link_to_pages_that_exist(browser, site_url, shots):
    """Each page in chromium: every <img> loaded (naturalWidth > 0), every internal link answers 200,
    no script error, no console error, no failed request to the site. Requests to other hosts (the
    notebook pages' require.js, MathJax and widget manager from CDNs) are blocked: this machine is
    offline, and what they draw is not the site's."""
    base, pages = site_url
    assert "index.html" in pages and len(pages) == len(NOTEBOOKS) + 2
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    blocked, problems, link_status = set(), [], {}

    def block(route):
        blocked.add(urlparse(route.request.url).netloc)
        route.abort()
    context.route(re.compile("^(?!" + re.escape(base) + "/)"), block)
    context.on("console", lambda m: problems.append(f"console: {m.text}")
               if m.type == "error" and "net::ERR_FAILED" not in m.text else None)  # ERR_FAILED: blocked
    context.on("weberror", lambda e: problems.append(f"script error: {e.error}"))
    context.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    for name in pages:
        page = context.new_page()
        page.goto(f"{base}/{name}", wait_until="load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.src.slice(0, 60),"
                                                  " i.complete && i.naturalWidth > 0])")
        assert all(ok for _, ok in images), f"{name}: pictures not loaded: {[s for s, ok in images if not ok]}"
        links = {urldefrag(a).url for a in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")}
        for link in sorted(links - set(link_status)):
            if link.startswith(base + "/"):
                link_status[link] = page.request.get(link).status
        bad = {link: link_status[link] for link in links if link_status.get(link, 200) != 200}
        assert not bad, f"{name} links to pages that do not answer: {bad}"
        shots(page, "site_" + name.replace("/", "_").removesuffix(".html"))
        print(f"{name}: {len(images)} pictures loaded, {len(links)} links")
        page.close()
    context.close()
    assert not problems, problems
    print(f"internal links checked: {len(link_status)}; requests blocked to: {sorted(blocked)}")


def test_site_answers_are_closed_until_clicked(browser, site_url, shots):
    """On a notebook's page each worked answer is a closed <details>: its code and output are not
    shown until its summary is clicked."""
    path, nb, sections = _answer_with_output()
    base, _ = site_url
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.route(re.compile("^(?!" + re.escape(base) + "/)"), lambda route: route.abort())
    page.goto(f"{base}/notebooks/{path.stem}.html", wait_until="load")
    blocks = page.locator("details.answer")
    assert blocks.count() == len(sections)
    assert blocks.evaluate_all("ds => ds.filter(d => d.open).length") == 0
    k = next(k for k, (_, body) in enumerate(sections) if any(nb.cells[j].cell_type == "code" for j in body))
    output = blocks.nth(k).locator(".jp-OutputArea-output").first
    assert not output.is_visible()
    blocks.nth(k).locator("summary").click()
    output.wait_for(state="visible", timeout=5_000)
    shots(blocks.nth(k), f"site_{path.stem}_answer_open")
    page.close()
