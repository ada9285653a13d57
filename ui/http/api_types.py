"""The type of every value an API call sends, checked against its widget before anything else reads it.

The page can only send what its widgets hold; a script can send any JSON. Gradio converts what it
can (``"abc"`` into a number fails with a traceback, ``1.5`` tokens is rounded, ``true`` is the
number 1, a string where a list goes is iterated letter by letter), so each value is checked here
against the widget it stands for, and a wrong one is refused with a message naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gradio as gr

from medalpaca_core.text.visitor import brief


class FieldError(ValueError):
    """A value of the wrong type for its field; the message names the field."""


def field_names(parameter_names: Sequence[str | None], count: int) -> list[str]:
    """The names of an event's ``count`` inputs as gradio_client calls them: Gradio's own naming of the event
    (``BlockFunction.input_parameter_names``, which knows the handler's parameters and keyword inputs)."""
    return [
        parameter_names[i] if i < len(parameter_names) and parameter_names[i] else f"input {i + 1}"
        for i in range(count)
    ]


def describe(value: Any) -> str:
    """What was sent, briefly: its JSON type, and the value itself when it is short."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    kind = kinds.get(type(value), "null" if value is None else type(value).__name__)
    return kind if isinstance(value, (list, dict, type(None))) else f"{kind} ({brief(value)})"


def check_number(value: Any, name: str, whole: bool, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(f"{name} must be a number, not {describe(value)}")
    if not math.isfinite(value):
        raise FieldError(f"{name} must be a finite number, not {value}")
    if whole and value != int(value):
        raise FieldError(f"{name} must be a whole number, not {value}")


def check_range(value: Any, name: str, component: gr.Slider | gr.Number) -> None:
    """Within the widget's bounds, said with the field's name (Gradio's own check names no field)."""
    if value is None:
        return
    low, high = component.minimum, component.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {number(low)} and {number(high)}" if low is not None and high is not None else None
        bounds = bounds or (f"at least {number(low)}" if low is not None else f"at most {number(high)}")
        raise FieldError(f"{name} must be {bounds}, not {number(value)}")


def number(value: float) -> str:
    """``4,294,967,295``, ``0.05``, ``1e+40``: whole numbers in full up to 15 digits, others as short as exact."""
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def check_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise FieldError(f"{name} must be true or false, not {describe(value)}")


def check_text(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise FieldError(f"{name} must be text, not {describe(value)}")


def check_choices(value: Any, name: str, component: gr.components.Component) -> None:
    """One choice (text) or, for a multiple choice, a list of at most as many texts as there are choices."""
    multiple = isinstance(component, gr.CheckboxGroup) or getattr(component, "multiselect", False)
    if not multiple:
        check_text(value, name)
        return
    if value is None:
        return
    if not isinstance(value, list):
        raise FieldError(f"{name} must be a list of ids, not {describe(value)}")
    if len(value) > len(component.choices):
        raise FieldError(f"{name} holds {len(value):,} values; there are only {len(component.choices)} choices")
    for item in value:
        check_text(item, f"each of {name}")


def check_files(value: Any, name: str, component: gr.File) -> None:
    if value is None:
        return
    items = value if component.file_count != "single" else [value]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise FieldError(f"{name} must be {'a list of uploaded files' if len(items) != 1 else 'an uploaded file'}")


def is_whole(component: gr.Slider | gr.Number) -> bool:
    """A slider that steps by whole numbers from a whole number, or a number field of precision 0."""
    if isinstance(component, gr.Slider):
        return float(component.step).is_integer() and float(component.minimum).is_integer()
    return component.precision == 0


def check_value(component: Any, value: Any, name: str) -> None:
    """Refuse ``value`` if no page could send it for ``component``."""
    if isinstance(component, (gr.Slider, gr.Number)):
        check_number(value, name, is_whole(component), optional=isinstance(component, gr.Number))
        check_range(value, name, component)
    elif isinstance(component, gr.Checkbox):
        check_bool(value, name)
    elif isinstance(component, (gr.Dropdown, gr.Radio, gr.CheckboxGroup)):
        check_choices(value, name, component)
    elif isinstance(component, gr.Textbox):
        check_text(value, name)
    elif isinstance(component, gr.File):
        check_files(value, name, component)


def check_inputs(parameter_names: Sequence[str | None], components: list[Any], inputs: list[Any]) -> None:
    """Check every value a client sent for an event (stateful inputs are the server's own and skipped)."""
    names = field_names(parameter_names, len(components))
    for component, value, name in zip(components, inputs, names, strict=False):
        if not getattr(component, "stateful", False):
            check_value(component, value, name)
