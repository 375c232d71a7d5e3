"""The shape of the house (issue 16): loader files stay thin, core modules
stay small, functions stay short. Code lines are lines that are not blank,
comments or docstrings."""

import ast
import io
import pathlib
import tokenize

REPO = pathlib.Path(__file__).resolve().parents[2]
LOADER_DIRS = ("_modules", "_states", "_beacons", "_runners")
CORE = REPO / "_utils" / "saltext_conntrack"


def code_lines(path):
    """Line numbers holding code: no blank lines, comments or docstrings."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.get_docstring(
            node, clean=False
        ):
            first = node.body[0]
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.ENDMARKER:
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - docstrings


def loader_files():
    return sorted(p for d in LOADER_DIRS for p in (REPO / d).glob("*.py"))


def core_files():
    return sorted(CORE.rglob("*.py"))


def test_loader_files_hold_at_most_a_fifth_of_product_code():
    loaders = sum(len(code_lines(p)) for p in loader_files())
    core = sum(len(code_lines(p)) for p in core_files())
    share = loaders / (loaders + core)
    assert share <= 0.20, f"loader files hold {loaders} of {loaders + core} code lines ({share:.0%})"


def test_no_core_module_over_400_lines_and_no_product_file_over_700():
    for path in core_files():
        assert len(path.read_text().splitlines()) <= 400, path
    for path in loader_files():
        assert len(path.read_text().splitlines()) <= 700, path


def test_no_function_over_60_code_lines():
    long = []
    for path in [*loader_files(), *core_files()]:
        lines = code_lines(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = len([i for i in lines if node.lineno <= i <= node.end_lineno])
                if n > 60:
                    long.append(f"{path.relative_to(REPO)}:{node.name} ({n})")
    assert not long, long


def _imports_module(test_path, domain, module):
    """Whether the test module imports ``saltext_conntrack.<domain>.<module>`` itself."""
    dotted = f"saltext_conntrack.{domain}.{module}"
    for node in ast.walk(ast.parse(test_path.read_text())):
        if isinstance(node, ast.Import) and any(alias.name == dotted for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom):
            if node.module == dotted:
                return True
            if node.module == f"saltext_conntrack.{domain}" and any(a.name == module for a in node.names):
                return True
    return False


def test_every_core_module_has_its_own_unit_test_module():
    """``<domain>/<module>.py`` is tested by ``tests/unit/test_<domain>_<module>.py``, which imports it."""
    missing = []
    for path in core_files():
        if path.name in ("__init__.py", "__main__.py") or path.parent == CORE:
            continue
        domain, module = path.parent.name, path.stem
        test = REPO / "tests" / "unit" / f"test_{domain}_{module}.py"
        if not test.is_file():
            missing.append(f"{test.relative_to(REPO)} (no such file)")
        elif not _imports_module(test, domain, module):
            missing.append(f"{test.relative_to(REPO)} (does not import saltext_conntrack.{domain}.{module})")
    assert not missing, missing
