"""No import circle in sdlib, and no arrow from the library up into the factory (issues 27, 28): module A imports B (at the top or inside a function) and B,
directly or through others, imports A. Read from the source, not by importing it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "sdlib"


def import_graph(root=ROOT):
    """{module: {sdlib modules it imports}} from every `import` and `from ... import` in the tree."""
    files = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in root.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else (node.module or "")
                names = [f"{base}.{a.name}" for a in node.names] or [base]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    found.add(name)
        graph[module] = found
    return graph


def circles(graph):
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_sdlib_has_no_import_circle():
    graph = import_graph()
    assert "sdlib.models.builtin_files" in graph["sdlib.models.clip_tokenizer"]  # the graph sees relative imports
    assert circles(graph) == []


def test_the_library_does_not_import_the_factory():
    """Dependencies point one way: the factory (`sdlib.builtin`) uses the library, and no library
    module imports the factory (the package's front door, `sdlib/__init__`, opens it for users)."""
    graph = import_graph()
    library = [m for m in graph if not m.startswith("sdlib.builtin") and m not in ("sdlib", "sdlib._old_names")]
    up = {m: sorted(d for d in graph[m] if d.startswith("sdlib.builtin")) for m in library}
    assert {m: d for m, d in up.items() if d} == {}


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_readme_module_map_matches_the_tree():
    """Every library module is in the README's module map (a row may name several with a `*`),
    and every module the map names exists (or is an old name, `sdlib._old_names`)."""
    import fnmatch
    import re

    readme = (ROOT.parent / "README.md").read_text()
    section = readme[readme.index("## The library"):readme.index("### Where each formula lives")]
    named = set(re.findall(r"`(sdlib(?:\.[\w*]+)+)`", section))
    modules = {m for m in import_graph() if m != "sdlib" and not m.split(".")[-1].startswith("_")}
    packages = {m for m in modules if any(o.startswith(m + ".") for o in modules)}  # their modules are named
    library = {m for m in modules - packages if not m.startswith("sdlib.builtin")}
    missing = sorted(m for m in library if not any(fnmatch.fnmatch(m, n) for n in named))
    assert missing == []
    from sdlib._old_names import MOVED, SPLIT

    unknown = sorted(n for n in named if "*" not in n and n not in modules and n not in {**MOVED, **SPLIT})
    assert unknown == []
