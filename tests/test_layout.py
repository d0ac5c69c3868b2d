"""Size limits of the library's code (issue 23): no module over
:data:`MAX_MODULE_LINES` lines, no function over :data:`MAX_FUNCTION_LINES`
lines (from its ``def`` to its last line, less its docstring) unless a comment
with ``long:`` just above it or in its signature says why."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sarstack"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Functions allowed over the limit without a "long:" comment: none.
ALLOWED_LONG: set[str] = set()


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the function's last line, less its docstring."""
    assert node.end_lineno is not None
    n = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):  # fmt: skip
        assert first.end_lineno is not None
        n -= first.end_lineno - first.lineno + 1
    return n


def says_why(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``# ... long: ...`` comment in the comment block just above the function
    (its decorators included) or in its signature."""
    top = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # 1-based
    above = []
    k = top - 2  # 0-based index of the line above
    while k >= 0 and lines[k].strip().startswith("#"):
        above.append(lines[k])
        k -= 1
    signature = lines[node.lineno - 1 : node.body[0].lineno - 1]
    return any("#" in ln and "long:" in ln.split("#", 1)[1] for ln in above + signature)


def long_functions() -> list[str]:
    out = []
    for path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = function_lines(node)
            name = f"{path.relative_to(SRC).as_posix()}:{node.name}"
            if n > MAX_FUNCTION_LINES and name not in ALLOWED_LONG and not says_why(lines, node):
                out.append(f"{name} ({n} lines)")
    return out


def test_no_function_over_the_limit_without_a_reason():
    assert long_functions() == [], (
        f"functions over {MAX_FUNCTION_LINES} lines (split them, or say why with a"
        " '# long: ...' comment just above the def)"
    )


def test_no_module_over_the_limit():
    big = [f"{p.relative_to(SRC)} ({n})" for p in _modules()
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]  # fmt: skip
    assert big == []


def test_the_allowed_list_names_functions_that_exist():
    """An entry of :data:`ALLOWED_LONG` that no longer matches a function is stale."""
    names = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(f"{path.relative_to(SRC).as_posix()}:{node.name}")
    assert ALLOWED_LONG <= names


def test_the_check_counts_and_reads_reasons(tmp_path):
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES))
    src = f'def f():\n    """Doc\n    string."""\n{body}\n'
    tree = ast.parse(src)
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    assert function_lines(node) == MAX_FUNCTION_LINES + 1
    assert not says_why(src.splitlines(), node)
    why = "# long: one table, row by row\n" + src
    node = ast.parse(why).body[0]
    assert isinstance(node, ast.FunctionDef) and says_why(why.splitlines(), node)
    inline = src.replace("def f():", "def f():  # long: a kernel; a split costs speed")
    node = ast.parse(inline).body[0]
    assert isinstance(node, ast.FunctionDef) and says_why(inline.splitlines(), node)
