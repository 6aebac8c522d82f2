"""The project's set-up files agree with each other (conda is not available to test directly)."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def names(reqs):
    return {re.split(r"[<>=!;\[ ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_lists_the_same_packages():
    proj = pyproject()
    wanted = names(proj["dependencies"]) | names(sum(proj["optional-dependencies"].values(), []))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert names(p for p in pip if not p.startswith("-e")) == wanted
    assert "-e ." in pip


def test_constraints_pin_every_direct_dependency_and_the_torch_pair():
    proj = pyproject()
    direct = names(proj["dependencies"]) | names(sum(proj["optional-dependencies"].values(), []))
    lines = [l for l in (ROOT / "constraints.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert all("==" in l for l in lines)
    assert direct <= names(lines)
    assert 'torch==2.14.1; platform_machine == "x86_64"' in lines
    assert 'torchvision==0.29.1; platform_machine == "x86_64"' in lines


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./course.sh lab" in readme and "./course.sh test" in readme
    ci = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci == ["exec ./course.sh test"]
