"""``KNOBS``, the one table of the settings a person chooses: every knob is a ``GenerationSettings`` field and
reaches the page, the CLI and the API by its row alone."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from medalpaca_core.cli import add_settings_arguments, settings_from_args
from medalpaca_core.generation.settings import KNOBS, GenerationSettings, SettingsError
from medalpaca_core.serving.openai_schema import ApiError, settings
from ui.views.common import SETTING_NAMES, settings_from

# a value inside every knob's range, other than its default, as the three surfaces send it
CHOSEN = {"temperature": 0.5, "top_p": 0.5, "top_k": 7, "max_new_tokens": 9, "seed": 3}


def test_every_knob_is_a_generation_setting():
    assert {knob.name for knob in KNOBS} <= {field.name for field in fields(GenerationSettings)}
    assert set(CHOSEN) == {knob.name for knob in KNOBS}


def test_every_knob_reaches_the_page_the_cli_and_the_api():
    expected = GenerationSettings(**CHOSEN)
    assert tuple(knob.name for knob in KNOBS) == SETTING_NAMES
    assert settings_from(CHOSEN) == expected
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    argv = [part for knob in KNOBS for part in (knob.option, str(CHOSEN[knob.name]))]
    assert settings_from_args(parser.parse_args(argv)) == expected
    assert settings({knob.api_field: CHOSEN[knob.name] for knob in KNOBS}, default_max_tokens=16) == expected


@pytest.mark.parametrize("knob", KNOBS, ids=lambda knob: knob.name)
def test_the_api_refuses_a_value_beyond_a_knob_naming_its_field(knob):
    with pytest.raises(ApiError, match=knob.api_field):
        settings({knob.api_field: knob.api_bounds[1] + 1}, default_max_tokens=16)


def test_settings_keep_seeds_in_range():
    assert GenerationSettings(seed=2**32 - 1).validated().seed == 2**32 - 1
    with pytest.raises(SettingsError, match="seed"):
        GenerationSettings(seed=-1).validated()
