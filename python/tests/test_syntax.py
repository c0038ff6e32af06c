"""The client must run in the Pythons of Maya, Houdini, Nuke and Blender:
Python 3.7 syntax and the standard library only."""

import ast
import os
import sys

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kiln")
SOURCES = sorted(os.path.join(PKG, n) for n in os.listdir(PKG) if n.endswith(".py"))


def newer_than_37(path):
    """Why the file is not Python 3.7, or None."""
    with open(path) as f:
        text = f.read()
    try:
        # Run by 3.7 itself, its own parser is the judge.
        kw = {"feature_version": (3, 7)} if sys.version_info >= (3, 8) else {}
        tree = ast.parse(text, path, **kw)
    except SyntaxError as e:
        return "%s:%s: %s" % (path, e.lineno, e.msg)
    for node in ast.walk(tree):
        # What 3.7's parser takes but its runtime refuses or misreads.
        if isinstance(node, ast.FormattedValue) and node.conversion == -1 and isinstance(
                node.value, ast.Name) and ("{%s=}" % node.value.id) in text:
            return "%s:%s: f-string `=` is 3.8" % (path, node.lineno)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                node.value.id in ("list", "dict", "tuple", "set", "type"):
            return "%s:%s: %s[...] is 3.9" % (path, node.lineno, node.value.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and any(
                isinstance(x, ast.Dict) for x in (node.left, node.right)):
            return "%s:%s: dict | dict is 3.9" % (path, node.lineno)
        if isinstance(node, ast.Match if hasattr(ast, "Match") else ()):
            return "%s:%s: match is 3.10" % (path, node.lineno)
    return None


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_sources_are_python_37(path):
    assert newer_than_37(path) is None


def test_the_guard_refuses_what_37_cannot_run(tmp_path):
    for code in ("if (n := 1): pass\n", "def f(a, /): pass\n", "x = list[str]\n",
                 "y = {} | {}\n", "z = 1\nprint(f'{z=}')\n"):
        p = tmp_path / "new.py"
        p.write_text(code)
        assert newer_than_37(str(p)), code


STDLIB = set(getattr(sys, "stdlib_module_names", ())) or {
    "ast", "datetime", "http", "json", "os", "random", "ssl", "time", "urllib", "uuid"}


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_sources_import_the_standard_library_only(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        for n in names:
            assert n.split(".")[0] in STDLIB, "%s imports %s" % (path, n)
