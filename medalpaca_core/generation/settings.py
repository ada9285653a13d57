"""How to decode: ``GenerationSettings``, the ``PRESETS``, and ``KNOBS``: the settings a person chooses.

A value type the page, the CLI and the API build and the batch loop reads; no torch here. ``KNOBS`` is the
one table that names and bounds the chosen settings for all three (the page's widgets, the CLI's options,
the API's fields): a field added to ``GenerationSettings`` reaches them all through one row there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    """Generation settings out of range."""


MAX_SEED = 2**32 - 1  # torch.manual_seed overflows on larger seeds


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. ``temperature`` 0 means greedy; above 0 turns sampling on."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    min_new_tokens: int = 0  # answers never end sooner (benchmarks use it for fixed-length decodes)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def validated(self, max_new_tokens_limit: int = 2048) -> GenerationSettings:
        checks = [
            (1 <= self.max_new_tokens <= max_new_tokens_limit, f"max_new_tokens must be 1..{max_new_tokens_limit}"),
            (0 <= self.min_new_tokens <= self.max_new_tokens, "min_new_tokens must be 0..max_new_tokens"),
            (0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be 0 (off) or positive"),
            (0.5 <= self.repetition_penalty <= 2, "repetition_penalty must be between 0.5 and 2"),
            (self.seed is None or 0 <= self.seed <= MAX_SEED, f"seed must be 0..{MAX_SEED}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise SettingsError("Invalid generation settings: " + "; ".join(problems))
        return self

    def generate_kwargs(self, done: int = 0) -> dict[str, Any]:
        """Arguments for ``model.generate`` once ``done`` tokens are generated; sampling knobs only when sampling."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens - done, "do_sample": self.do_sample}
        if self.min_new_tokens > done:
            kwargs["min_new_tokens"] = self.min_new_tokens - done
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


PRESETS: dict[str, GenerationSettings] = {
    "greedy": GenerationSettings(max_new_tokens=128),
    # The paper's evaluation settings.
    "sampling": GenerationSettings(max_new_tokens=128, temperature=0.4, top_p=0.9, top_k=50),
}


@dataclass(frozen=True)
class Knob:
    """One setting a person chooses, as the page, the CLI and the API name and bound it.

    ``low``..``high`` is what the page's widget offers, and what the API accepts unless ``api_range`` widens
    it for other servers' clients; ``api_name`` is the OpenAI field (when it differs) and ``api_default`` the
    value a request that leaves it out gets (OpenAI's, which the page's defaults need not be). An ``optional``
    knob takes None too (the page's blank box).
    """

    name: str  # the GenerationSettings field: the page's keyword input, the CLI's --option
    kind: type[int] | type[float]
    low: float
    high: float
    step: float  # the page's widget
    label: str  # the page's widget
    api_name: str = ""
    api_default: float | None = None
    api_range: tuple[float, float] | None = None
    optional: bool = False

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def api_field(self) -> str:
        return self.api_name or self.name

    @property
    def api_bounds(self) -> tuple[float, float]:
        return self.api_range or (self.low, self.high)


# The chosen settings in the order the page and its API take them (gradio_client's positions).
KNOBS = (
    Knob("temperature", float, 0.0, 2.0, 0.05, "Temperature (0 = greedy)", api_default=1.0),
    Knob("top_p", float, 0.05, 1.0, 0.05, "top_p", api_default=1.0, api_range=(0.0, 1.0)),
    Knob("top_k", int, 0, 200, 1, "top_k (0 = off)", api_default=0, api_range=(-1, 1000)),  # vLLM's: -1 is off
    Knob("max_new_tokens", int, 1, 512, 1, "Max new tokens", api_name="max_tokens"),
    Knob("seed", int, 0, MAX_SEED, 1, "Seed (blank = random; only matters when sampling)", optional=True),
)
KNOB = {knob.name: knob for knob in KNOBS}
