"""Config field docstrings are what `ns-train ... --help` prints: one line each (evidence lives in docs/options.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nerfstudio_vvc"
MAX_CHARS = 120


def config_field_docstrings():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name.endswith("Config")):
                continue
            for field, doc in zip(node.body, node.body[1:]):
                if (
                    isinstance(field, ast.AnnAssign)
                    and isinstance(doc, ast.Expr)
                    and isinstance(doc.value, ast.Constant)
                    and isinstance(doc.value.value, str)
                ):
                    where = f"{path.relative_to(PACKAGE.parent)}:{doc.lineno} {node.name}.{field.target.id}"
                    yield where, doc.value.value


def test_config_field_docstrings_are_one_short_line():
    found = dict(config_field_docstrings())
    assert len(found) > 50  # the walk sees the package's configs
    bad = [f"{where} ({len(doc)} chars)" for where, doc in found.items() if "\n" in doc.strip() or len(doc) > MAX_CHARS]
    assert not bad, "config docstrings longer than one line:\n" + "\n".join(bad)
