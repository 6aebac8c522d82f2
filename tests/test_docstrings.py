"""Every public function and class of the library says where it is taught (issue 28): its docstring
names a notebook ("Taught in notebooks/02, section 3.", or where the idea it serves is taught).
The factory (`sdlib.builtin`) and the old names (`sdlib._old_names`) are not part of it."""
import importlib
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "sdlib"
LEFT_OUT = ("sdlib.builtin", "sdlib._old_names")


def library_modules(root=ROOT):
    """The dotted name of every module under sdlib/, the factory and the old names left out."""
    names = (".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
             for p in sorted(root.rglob("*.py")))
    return [n for n in names if not any(n == skip or n.startswith(skip + ".") for skip in LEFT_OUT)]


def public_definitions(module):
    """(name, object) for every public function and class the module itself defines."""
    return [(name, obj) for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__]


def test_the_walk_finds_the_library():
    modules = library_modules()
    assert {"sdlib.processes", "sdlib.processes.vp", "sdlib.sampling.sampler", "sdlib.images"} <= set(modules)
    assert not any(m.startswith("sdlib.builtin") or m == "sdlib._old_names" for m in modules)


def test_every_public_function_and_class_names_the_notebook_that_teaches_it():
    missing, checked = [], 0
    for name in library_modules():
        module = importlib.import_module(name)
        for attr, obj in public_definitions(module):
            checked += 1
            if "notebooks/" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{name}.{attr}")
    assert checked > 150, f"only {checked} public definitions found: the walk missed modules"
    assert not missing, "no 'Taught in notebooks/NN' in the docstring of: " + ", ".join(missing)
