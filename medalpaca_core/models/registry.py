"""The variant registry: every model the studio can run, and whether it can run here and now.

Variants come from ``assets/variants.yaml`` (the embedded offline variants and the paper's Hub
models) plus every adapter or model folder found in ``assets/adapters/`` and in the folder that
``finetune/`` writes to -- so a freshly trained variant shows up without editing anything.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ..runtime import hub
from ..runtime.paths import BUNDLED_ADAPTERS_DIR, REGISTRY_FILE, finetuned_dir
from ..text.prompts import check_template
from ..text.visitor import brief
from .default_model import DEFAULT_ALIAS, DEFAULT_HUB_ID, is_default_model, local_default_source
from .paper import load_paper_table

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8", "nf4")
DTYPES = ("auto", "float32", "bfloat16", "float16")
USER_REGISTRY_ENV = "MEDALPACA_VARIANTS"
VARIANT_FILE = "variant.json"  # optional metadata beside a discovered adapter or model


class RegistryError(ValueError):
    """A registry file or a variant entry that is not valid."""


class UnknownVariantError(KeyError):
    """A variant id the registry does not know; the message lists the valid ids."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnavailableVariantError(ValueError):
    """Variants the registry knows but this machine cannot run (not downloaded, no GPU, a missing package or key).

    Raised before any work starts: a request holding one is refused whole, rather than running the others and
    leaving an error where an answer should be."""

    def __init__(self, reasons: dict[str, str]):
        details = "; ".join(f"{ident} ({reason})" for ident, reason in reasons.items())
        super().__init__(f"Not available on this machine, so nothing was run: {details}")
        self.reasons = reasons


@dataclass(frozen=True)
class Variant:
    """One runnable model: a base, optionally a LoRA adapter on it, loaded in a given precision."""

    id: str
    label: str
    base: str
    adapter: str | None = None
    quantization: str = "none"
    dtype: str = "auto"
    template: str = "medalpaca"
    description: str = ""
    params: int | None = None  # parameter count, for memory estimates before anything is downloaded
    source: str = "registry"  # registry | bundled | finetuned
    reference: dict[str, float] = field(default_factory=dict)  # the paper's USMLE accuracies
    # A remote variant (medalpaca_core.models.remote): answered by the OpenAI-compatible server at ``endpoint``
    # (its /v1 URL) under the name ``model``, with the key in the environment variable ``api_key_env``.
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise RegistryError(f"Variant {self.id!r}: quantization must be one of {QUANTIZATIONS}")
        if self.dtype not in DTYPES:
            raise RegistryError(f"Variant {self.id!r}: dtype must be one of {DTYPES}")
        try:
            check_template(self.template)
        except ValueError as error:
            raise RegistryError(f"Variant {self.id!r}: {error}") from error
        if self.endpoint is not None and not str(self.endpoint).startswith(("http://", "https://")):
            raise RegistryError(f"Variant {self.id!r}: endpoint must be an http:// or https:// URL")
        if not 0 < float(self.timeout_s) <= 3600:
            raise RegistryError(f"Variant {self.id!r}: timeout_s must be between 0 and 3600 seconds")

    @property
    def remote(self) -> bool:
        return self.endpoint is not None

    @property
    def kind(self) -> str:
        """'LoRA' or 'full', with the quantization, for tables; 'remote' for a variant another server answers."""
        if self.remote:
            return "remote"
        kind = "LoRA" if self.adapter else "full"
        return kind if self.quantization == "none" else f"{kind}, {self.quantization}"


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str


def _variant_from_mapping(entry: dict[str, Any], where: str) -> Variant:
    known = {f.name for f in fields(Variant)}
    unknown = set(entry) - known
    if unknown:
        raise RegistryError(f"{where}: unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
    missing = {"id", "label"} - set(entry) if entry.get("endpoint") else {"id", "label", "base"} - set(entry)
    if missing:
        raise RegistryError(f"{where}: missing keys {sorted(missing)}")
    entry = dict(entry)
    entry.setdefault("base", entry.get("model") or entry.get("endpoint"))  # a remote variant's base is its server's
    if entry.get("params") is not None:
        entry["params"] = int(float(entry["params"]))
    return Variant(**entry)


def read_registry_file(path: Path) -> list[Variant]:
    """Parse ``variants.yaml``: a mapping with a ``variants`` list."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RegistryError(f"Cannot read the variant registry {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("variants"), list):
        raise RegistryError(f"{path}: expected a mapping with a 'variants' list")
    try:
        return [_variant_from_mapping(e, f"{path}, variant #{n + 1}") for n, e in enumerate(document["variants"])]
    except (TypeError, ValueError) as error:
        if isinstance(error, RegistryError):
            raise
        raise RegistryError(f"{path}: {error}") from error


def merged(variants: list[Variant], overrides: list[Variant]) -> list[Variant]:
    """``variants`` with each of ``overrides`` in place of the variant of the same id, or added at the end."""
    by_id = {variant.id: variant for variant in overrides}
    kept = [by_id.pop(variant.id, variant) for variant in variants]
    return kept + list(by_id.values())


def user_registry_file() -> Path | None:
    """The user's own registry (MEDALPACA_VARIANTS), merged over assets/variants.yaml."""
    configured = os.environ.get(USER_REGISTRY_ENV)
    return Path(configured).expanduser() if configured else None


def _registry_base(name: str | None) -> str:
    """An adapter's recorded base as the registry writes it: the alias ``@default`` for any spelling of the default
    model (adapters record the portable ``DEFAULT_HUB_ID``, see ``finetune.config.portable_base``)."""
    if not name or is_default_model(name):
        return DEFAULT_ALIAS
    return name


def discover_folder(folder: Path, source: str, prefix: str = "") -> Variant | None:
    """A variant for an adapter folder (adapter_config.json) or a full model folder (config.json)."""
    meta: dict[str, Any] = {}
    if (folder / VARIANT_FILE).is_file():
        try:
            meta = json.loads((folder / VARIANT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("Ignoring unreadable %s: %s", folder / VARIANT_FILE, error)
    ident = prefix + folder.name
    if (folder / "adapter_config.json").is_file():
        try:
            adapter_config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            adapter_config = {}
        base = meta.get("base") or _registry_base(adapter_config.get("base_model_name_or_path"))
        adapter: str | None = str(folder)
    elif (folder / "config.json").is_file():
        base, adapter = str(folder), None
    else:
        return None
    try:
        return Variant(
            id=ident,
            label=meta.get("label", ident),
            base=base,
            adapter=adapter,
            quantization=meta.get("quantization", "none"),
            dtype=meta.get("dtype", "auto"),
            template=meta.get("template", "medalpaca"),
            description=meta.get("description", f"{'LoRA adapter' if adapter else 'Model'} in {folder}"),
            source=source,
        )
    except RegistryError as error:
        log.warning("Ignoring %s: %s", folder, error)
        return None


def discover(directory: Path, source: str, prefix: str = "") -> list[Variant]:
    if not directory.is_dir():
        return []
    folders = [f for f in sorted(directory.iterdir()) if f.is_dir() and not f.name.startswith(".")]  # .cache etc.
    found = (discover_folder(folder, source, prefix) for folder in folders)
    return [variant for variant in found if variant is not None]


def with_paper_references(variants: list[Variant]) -> list[Variant]:
    """Fill each variant's empty ``reference`` from the paper's table, kept once in ``assets/paper_usmle.yaml``."""
    table = load_paper_table()
    rows = [(variant, table.for_variant(variant.id)) for variant in variants]
    return [replace(v, reference=row.scores) if row and not v.reference else v for v, row in rows]


class Registry:
    """An ordered, id-indexed collection of variants."""

    def __init__(self, variants: list[Variant]):
        self._variants: dict[str, Variant] = {}
        for variant in variants:
            if variant.id in self._variants:
                log.warning("Duplicate variant id %r: keeping the first", variant.id)
                continue
            self._variants[variant.id] = variant

    @classmethod
    def load(
        cls,
        path: Path = REGISTRY_FILE,
        bundled_dir: Path = BUNDLED_ADAPTERS_DIR,
        finetuned: Path | None = None,
    ) -> Registry:
        """The registry file (with MEDALPACA_VARIANTS's entries over it), then bundled adapters, then the
        user's fine-tuned variants (``local/…``)."""
        variants = read_registry_file(path)
        user_file = user_registry_file()
        if user_file is not None:
            variants = merged(variants, read_registry_file(user_file))
        variants += discover(bundled_dir, "bundled")
        variants += discover(finetuned or finetuned_dir(), "finetuned", prefix="local/")
        return cls(with_paper_references(variants))

    def __iter__(self) -> Iterator[Variant]:
        return iter(self._variants.values())

    def __len__(self) -> int:
        return len(self._variants)

    def __contains__(self, ident: object) -> bool:
        return ident in self._variants

    def ids(self) -> list[str]:
        return list(self._variants)

    def get(self, ident: str) -> Variant:
        try:
            return self._variants[ident]
        except KeyError:
            valid = ", ".join(self._variants)
            raise UnknownVariantError(f"Unknown variant {brief(ident)}. Valid ids: {valid}") from None

    def add(self, variant: Variant) -> None:
        """Register one more variant (tests, and variants created while the app runs)."""
        self._variants[variant.id] = variant


def base_status(base: str) -> Availability:
    if base == DEFAULT_ALIAS:
        where = local_default_source()
        if where:
            return Availability(True, f"default model from {where}")
        return Availability(*hub.repo_status(DEFAULT_HUB_ID, "config.json"))
    if Path(base).expanduser().exists():
        ok = (Path(base).expanduser() / "config.json").is_file()
        return Availability(ok, f"local model {base}" if ok else f"{base} has no config.json")
    if not hub.looks_like_hub_id(base):
        return Availability(False, f"model folder {base} does not exist")
    return Availability(*hub.repo_status(base, "config.json"))


def adapter_status(adapter: str) -> Availability:
    path = Path(adapter).expanduser()
    if path.exists():
        missing = [n for n in ("adapter_config.json", "adapter_model.safetensors") if not (path / n).is_file()]
        if missing:
            return Availability(False, f"adapter folder {adapter} lacks {', '.join(missing)}")
        return Availability(True, f"local adapter {adapter}")
    if not hub.looks_like_hub_id(adapter):
        return Availability(False, f"adapter folder {adapter} does not exist")
    return Availability(*hub.repo_status(adapter, "adapter_config.json"))


def availability(variant: Variant) -> Availability:
    """Can ``variant`` be loaded here? Cheap: touches no weights and downloads nothing (nor asks a remote server:
    one that cannot answer says so in its column)."""
    if variant.remote:
        if variant.api_key_env and not os.environ.get(variant.api_key_env):
            return Availability(False, f"remote: the environment variable {variant.api_key_env} (its key) is not set")
        return Availability(True, f"remote: {variant.model or variant.base} at {variant.endpoint}")
    if variant.quantization != "none" and importlib.util.find_spec("bitsandbytes") is None:
        return Availability(False, f"{variant.quantization} needs the bitsandbytes package, which is not installed")
    status = base_status(variant.base)
    if not status.ok or not variant.adapter:
        return status
    adapter = adapter_status(variant.adapter)
    return adapter if not adapter.ok else Availability(True, f"{adapter.reason} on {status.reason}")
