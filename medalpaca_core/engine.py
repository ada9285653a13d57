"""The studio: ask one question of several variants and stream their answers side by side.

Variants that share a base model (the bare base and its LoRA adapters, in one precision) are
answered in that base's running batch (``scheduler``), which every other request for the base joins
too; groups with different bases run in parallel. A request naming a variant this machine cannot run is
refused before anything runs; a variant that fails to load gets an error answer of its own while the
others go on.
"""

from __future__ import annotations

import queue
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from .generation.answers import Answer, Prompt, Status, Unaskable
from .generation.decoding import Row
from .generation.scheduler import BatchScheduler, SchedulerConfig, Schedulers
from .generation.settings import PRESETS, GenerationSettings
from .models.loading import LoadError
from .models.manager import BaseKey, LoadedModel, ModelManager
from .models.memory import Estimate
from .models.registry import Registry, UnavailableVariantError, Variant, availability
from .models.remote import stream_remote
from .models.selection import (
    DEFAULT_COUNT,
    SpeedLog,
    default_variants,
    fresh_round,
    precision,
    unavailable_variants,
    variant_choices,
)
from .runtime.hosting import gpu
from .text.prompts import (
    DEFAULT_INSTRUCTION,
    VISITOR_LIMITS,
    InputLimits,
    PromptError,
    PromptParts,
    encode,
    fit_prompt,
    validate_parts,
)


@dataclass(frozen=True)
class Request:
    """One variant asked one prompt. ``raw``: the question is the model's whole input, already in the variant's
    template (the OpenAI API's completions); the answer is still cut at the template's markers. ``limits``: a
    visitor's input caps, unless an operator's own data is asked (an evaluation's questions)."""

    variant_id: str
    parts: PromptParts
    raw: bool = False
    limits: InputLimits = VISITOR_LIMITS


def fit_raw(template: str, text: str, tokenizer: Any, window: int, max_new_tokens: int) -> tuple[list[int], bool]:
    """The ids of a prompt given as text; one that leaves no room for the answer is refused, never cut."""
    ids = encode(template, text, tokenizer)
    if len(ids) > window - max_new_tokens:
        raise PromptError(
            f"The prompt is {len(ids):,} tokens; with {max_new_tokens} new tokens it does not fit the "
            f"model's context window of {window:,} tokens"
        )
    return ids, False


def with_prompts(rows: list[Row], loaded: LoadedModel, report: Callable[[Answer], None]) -> Callable[[Answer], None]:
    """``report`` for answers that carry the prompt their row was given (decoded once, from the row's ids)."""
    prompts = {
        row.variant_id: Prompt(loaded.tokenizer.decode(row.prompt_ids), len(row.prompt_ids), row.truncated)
        for row in rows
    }
    return lambda answer: report(replace(answer, prompt=prompts.get(answer.variant_id)))


class Studio:
    """Registry + model manager + batched streaming: the one door the app, the CLI, evaluation and the
    benchmarks use. Nothing outside this module reads ``registry`` or ``manager``: what callers need of
    them (a variant, grouping by base, a model checked for availability, estimates) is asked here, so
    each rule (e.g. "check availability before loading") is written once."""

    def __init__(
        self,
        registry: Registry | None = None,
        manager: ModelManager | None = None,
        scheduling: SchedulerConfig | None = None,
    ):
        self.registry = registry or Registry.load()
        self.manager = manager or ModelManager()
        self.schedulers = Schedulers(scheduling)
        self.speeds = SpeedLog()  # decode speeds its answers measured, shown beside slow variants in a picker

    def variant(self, variant_id: str) -> Variant:
        """The registered variant; an UnknownVariantError lists the known ids."""
        return self.registry.get(variant_id)

    def knows(self, variant_id: str) -> bool:
        return variant_id in self.registry

    def variants(self) -> list[Variant]:
        return list(self.registry)

    def acquire(self, variant: Variant) -> tuple[LoadedModel, str]:
        """The loaded model and adapter name of ``variant``; a LoadError says why it is not available."""
        if variant.remote:
            raise LoadError(f"{variant.id} is a remote variant: its server answers it, nothing is loaded here")
        status = availability(variant)
        if not status.ok:
            raise LoadError(f"{variant.id} is unavailable: {status.reason}")
        return self.manager.acquire(variant)

    def base_key(self, variant: Variant) -> BaseKey:
        """The base model ``variant`` runs on: variants with equal keys share one loaded model (and a batch)."""
        return self.manager.key_for(variant)

    def group_by_base(self, variant_ids: Iterable[str]) -> list[list[str]]:
        """The ids, grouped by the base they share (order kept): each group is answered in one batch. A remote
        variant is a group of its own: its server batches."""
        groups: dict[BaseKey | tuple[str, str], list[str]] = {}
        for variant_id in variant_ids:
            variant = self.variant(variant_id)
            key = ("remote", variant.id) if variant.remote else self.base_key(variant)
            groups.setdefault(key, []).append(variant_id)
        return list(groups.values())

    def estimate(self, variant: Variant) -> Estimate | None:
        """Parameters and memory ``variant`` would take, without loading it (None when unknown)."""
        return self.manager.estimate_for(variant)

    def scheduler(self, variant: Variant) -> BatchScheduler:
        """The running batch of ``variant``'s base (loading it first), e.g. to watch its steps."""
        return self.schedulers.of(self.acquire(variant)[0])

    def loaded_base(self, variant: Variant) -> LoadedModel | None:
        """The base ``variant`` runs on if it is loaded now, else None."""
        key = self.base_key(variant)
        return next((model for model in self.manager.loaded() if model.key == key), None)

    def default_variants(self, count: int = DEFAULT_COUNT) -> list[str]:
        """What a first comparison should ask (see ``selection``)."""
        return default_variants(self.registry, self.manager, count)

    def fresh_round(self, count: int, rng: random.Random) -> list[str]:
        """``count`` fast variants drawn at random, for an arena's next round (see ``selection``)."""
        return fresh_round(self.registry, self.manager, count, rng)

    def precision(self, variant_id: str) -> str:
        """'bf16', 'fp32', 'int8', 'nf4' or 'remote': how the variant's weights are held here."""
        return precision(self.variant(variant_id), self.manager.device)

    def choices(self) -> list[tuple[str, str]]:
        """(label, id) pairs for a variant picker, with the speeds its answers measured so far."""
        return variant_choices(self.registry, self.manager, self.speeds)

    def unavailable(self) -> dict[str, str]:
        """Id -> reason of every variant this machine cannot run (a picker lists them apart)."""
        return unavailable_variants(self.registry)

    def require_available(self, variant_ids: Iterable[str]) -> None:
        """Refuse, before any work, unknown ids (UnknownVariantError) and variants this machine cannot run
        (UnavailableVariantError, naming each with its reason)."""
        statuses = {ident: availability(self.variant(ident)) for ident in variant_ids}
        reasons = {ident: status.reason for ident, status in statuses.items() if not status.ok}
        if reasons:
            raise UnavailableVariantError(reasons)

    def stream(
        self,
        variant_ids: Iterable[str],
        question: str,
        context: str = "",
        settings: GenerationSettings | None = None,
        cancel: threading.Event | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        response_prefix: str = "",
    ) -> Iterator[dict[str, Answer]]:
        """Ask every variant the same question; yield all answers each time one of them grows."""
        parts = PromptParts(question, context, instruction, response_prefix)
        return self.stream_requests([Request(v, parts) for v in dict.fromkeys(variant_ids)], settings, cancel)

    def chat(
        self,
        variant_id: str,
        history: list[tuple[str, str]],
        message: str,
        settings: GenerationSettings | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[Answer]:
        """One chat turn with one variant, earlier turns included in the prompt."""
        parts = PromptParts(message, history=tuple((user, bot) for user, bot in history))
        for answers in self.stream_requests([Request(variant_id, parts)], settings, cancel):
            yield answers[variant_id]

    def ask(self, *args: Any, **kwargs: Any) -> dict[str, Answer]:
        """The final answers of ``stream`` (which takes the same arguments), without streaming."""
        return deque(self.stream(*args, **kwargs), maxlen=1)[0]

    def stream_requests(
        self, requests: list[Request], settings: GenerationSettings | None = None, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Answer]]:
        """Validate everything up front (bad input raises), then stream."""
        if not requests:
            raise PromptError("No variant selected: pick at least one model variant")
        settings = (settings or PRESETS["greedy"]).validated()
        variants = {request.variant_id: self.variant(request.variant_id) for request in requests}
        self.require_available(variants)
        for request in requests:
            validate_parts(request.parts, request.limits)
        # on a ZeroGPU Space the whole run, its threads included, happens in the GPU worker; elsewhere a no-op
        return gpu(self._stream)(requests, variants, settings, cancel or threading.Event())

    def _stream(
        self,
        requests: list[Request],
        variants: dict[str, Variant],
        settings: GenerationSettings,
        cancel: threading.Event,
    ) -> Iterator[dict[str, Answer]]:
        """One thread per base group loads its models and generates; each reports every answer into one queue."""
        answers = {request.variant_id: Answer(request.variant_id) for request in requests}
        by_id = {request.variant_id: request for request in requests}
        groups = [[by_id[variant_id] for variant_id in ids] for ids in self.group_by_base(by_id)]
        updates: queue.Queue[Answer | None] = queue.Queue()
        workers = [
            threading.Thread(
                target=self._run_group,
                args=(group, variants, settings, cancel, updates),
                name="medalpaca-generate",
                daemon=True,
            )
            for group in groups
        ]
        for worker in workers:
            worker.start()
        yield dict(answers)
        finished_groups = 0
        try:
            while finished_groups < len(workers):
                changed = False
                for update in latest(updates):
                    if update is None:
                        finished_groups += 1
                    else:
                        answers[update.variant_id], changed = update, True
                if changed:
                    yield dict(answers)
        finally:
            self.speeds.record(answers.values())  # the finished ones: a stream left early measured those too
            if finished_groups < len(workers):
                # The consumer left early (Stop, a closed stream, a client gone): the workers stop at their next
                # token, or skip generating once a load in progress ends. Not joined: Gradio closes streams on its
                # event loop, which a join would block for as long as a model takes to load.
                cancel.set()

    def _run_group(
        self,
        group: list[Request],
        variants: dict[str, Variant],
        settings: GenerationSettings,
        cancel: threading.Event,
        updates: queue.Queue,
    ) -> None:
        """Load one base (and its adapters), then answer the group in the base's running batch (this thread waits
        for it); or ask a remote server."""
        try:
            if variants[group[0].variant_id].remote:
                for request in group:
                    for answer in stream_remote(
                        variants[request.variant_id], request.parts, request.raw, settings, cancel
                    ):
                        updates.put(answer)
                return
            loaded, rows = self._prepare_rows(group, variants, settings, updates)
            if rows and not cancel.is_set():
                self.schedulers.of(loaded).run(rows, settings, cancel, with_prompts(rows, loaded, updates.put))
        except Exception as error:  # a failed batch fails its rows, not the other groups
            for request in group:
                updates.put(Answer(request.variant_id, status=Status.ERROR, error=f"{type(error).__name__}: {error}"))
        finally:
            updates.put(None)

    def _prepare_rows(
        self, group: list[Request], variants: dict[str, Variant], settings: GenerationSettings, updates: queue.Queue
    ) -> tuple[LoadedModel | None, list[Row]]:
        loaded, rows = None, []
        for request in group:
            variant = variants[request.variant_id]
            try:
                updates.put(Answer(variant.id, status=Status.LOADING))
                loaded, adapter = self.acquire(variant)
                fit = fit_raw if request.raw else fit_prompt
                prompt = request.parts.question if request.raw else request.parts
                ids, truncated = fit(
                    variant.template, prompt, loaded.tokenizer, loaded.context_window, settings.max_new_tokens
                )
            except Exception as error:  # this variant fails; the rest of its group goes on
                why = Unaskable(error) if isinstance(error, PromptError) else str(error)  # the prompt's fault: too long
                updates.put(Answer(variant.id, status=Status.ERROR, error=why))
                continue
            rows.append(Row(variant.id, ids, adapter, variant.template, truncated))
        return loaded, rows


def latest(updates: queue.Queue) -> Iterator[Any]:
    """The next update (waiting for it), then every one queued meanwhile: a consumer slower than the tokens
    (a page that shows ten updates a second, a client on a slow link) gets the latest state, never a backlog."""
    yield updates.get()
    while True:
        try:
            yield updates.get_nowait()
        except queue.Empty:
            return
