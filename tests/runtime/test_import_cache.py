"""The disk cache of transformers' import structure: the same answer as transformers' own scan, read back after."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medalpaca_core.runtime import import_cache

STRUCTURE = {
    frozenset(): {"models.llama.configuration_llama": {"LlamaConfig"}},
    frozenset({"torch"}): {"models.llama.modeling_llama": {"LlamaForCausalLM", "LlamaModel"}},
}


def refuse(*args):
    raise AssertionError("computed although the cache holds the answer")


def test_a_stored_structure_is_read_back_without_computing(tmp_path):
    path = tmp_path / "cache" / "imports.json"
    calls = []

    def compute(module_path, prefix=None):
        calls.append((module_path, prefix))
        return STRUCTURE

    assert import_cache.cached(compute, path)(Path("/x/models"), "models") == STRUCTURE
    assert calls == [(Path("/x/models"), "models")] and path.is_file()
    again = import_cache.cached(refuse, path)  # a new process: only the file
    assert again(Path("/x/models"), "models") == STRUCTURE
    assert again("/x/models", "models") == STRUCTURE, "a str and a Path spell one folder"
    with pytest.raises(AssertionError, match="computed"):
        again("/x/models", None)  # another prefix is another structure


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"/x/models|None": [[1, 2]]}'])
def test_a_broken_cache_is_computed_again(tmp_path, content):
    path = tmp_path / "imports.json"
    path.write_text(content, encoding="utf-8")
    assert import_cache.cached(lambda *_: STRUCTURE, path)("/x/models") == STRUCTURE


def test_an_unwritable_cache_still_answers(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert import_cache.cached(lambda *_: STRUCTURE, blocker / "sub" / "imports.json")("/x") == STRUCTURE


PROBE = """
import medalpaca_core, transformers
from transformers.utils import import_utils
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
assert LlamaForCausalLM.__name__ == "LlamaForCausalLM" and LlamaConfig().model_type == "llama"
print(import_utils.create_import_structure_from_path.cache_info().misses)
"""


def test_transformers_imports_through_the_cache(tmp_path):
    """The first process scans transformers' folders and stores them; the next one scans nothing."""
    env = {**os.environ, "MEDALPACA_HOME": str(tmp_path)}

    def scans() -> int:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    assert scans() > 500  # every model folder
    assert list((tmp_path / "cache").glob("transformers-*-imports.json"))
    assert scans() == 0
