"""Every function, method and class of the project has a caller: code nobody calls is deleted, not kept for later.

A name counts as called when it appears in the project's sources (not the tests) anywhere besides its own
definition: a call, a reference handed to a framework (a Gradio handler, a transformers callback), a string.
A test alone is no caller: code that only a test runs does nothing for the app. The check is by name, so two
definitions of one name vouch for each other; it catches what is plainly dead.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

from tests.test_layers import project_sources

# methods a framework calls by their names, never the project's code
FRAMEWORK_HOOKS = {"on_train_begin", "on_step_begin", "on_step_end", "filter"}  # transformers callbacks, logging.Filter


def test_every_function_and_class_has_a_caller():
    sources = {path: path.read_text(encoding="utf-8") for path in project_sources().values()}
    mentions = Counter(word for text in sources.values() for word in re.findall(r"\w+", text))
    uncalled = [
        f"{path.name}:{node.lineno} {node.name}"
        for path, text in sources.items()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("__")
        and node.name not in FRAMEWORK_HOOKS
        and mentions[node.name] <= 1
    ]
    assert not uncalled, uncalled
