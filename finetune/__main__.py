"""``python -m finetune``: the command line, generated from the config dataclasses.

Every setting of ``config.py`` is a flag (``--learning-rate``, ``--lora-r``, ``--data``, ...), so the
file, the flags and the documentation cannot drift apart. Only the flags actually given override
the YAML file; bad input ends with exit status 2 and one line that says what to change.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from .config import ConfigError, DataConfig, FinetuneConfig, LoraSettings, TrainSettings, load_file, resolve, validate
from .data import DataError, write_validation
from .initial import StartError
from .resume import ResumeError
from .train import FinetuneError, run

# (YAML section, dataclass, flag prefix): section names become nested keys, flags stay flat.
SECTIONS = (
    ("", FinetuneConfig, ""),
    ("data", DataConfig, ""),
    ("lora", LoraSettings, "lora-"),
    ("train", TrainSettings, ""),
)
EXAMPLES = """examples:
  python -m finetune --config smol-lora                      # embedded base, bundled demo data, CPU
  python -m finetune --method lora --base @default --data assets/data/medalpaca_studio_demo.json --max-steps 20
  python -m finetune --config paper-lora --data medalpaca/medical_meadow_wikidoc:10000 --data my.jsonl
  accelerate launch --config_file finetune/configs/accelerate/ddp.yaml -m finetune --config paper-full
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finetune",
        description="Fine-tune a MedAlpaca variant: full, LoRA, or LoRA on an 8-bit base.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file, or the name of one in finetune/configs/ (e.g. smol-lora)")
    parser.add_argument(
        "--write-validation",
        metavar="FILE",
        help="write the run's validation records (its held-out split) as a JSON list to FILE and exit, for "
        "`python -m medalpaca_core perplexity --data FILE`",
    )
    for section, cls, prefix in SECTIONS:
        group = parser.add_argument_group(section or "run")
        hints = typing.get_type_hints(cls)
        for spec in fields(cls):
            kind = hints[spec.name]
            if is_dataclass(kind):
                continue
            kwargs: dict[str, Any] = {
                "dest": f"{section}.{spec.name}" if section else spec.name,
                "default": argparse.SUPPRESS,  # only given flags override the file
                "help": spec.metadata.get("help"),
                "choices": spec.metadata.get("choices"),
            }
            if kind is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif typing.get_origin(kind) is list:
                kwargs.update(nargs="+", action="extend", metavar=spec.metadata.get("metavar", "NAME"))
            else:
                kwargs.update(type=kind, metavar=None if kwargs["choices"] else spec.name.upper())
            group.add_argument(spec.metadata.get("flag") or f"--{prefix}{spec.name.replace('_', '-')}", **kwargs)
    return parser


def overrides_from(namespace: argparse.Namespace) -> dict[str, Any]:
    """Flat ``section.key`` destinations -> the nested mapping a YAML file would have."""
    nested: dict[str, Any] = {}
    for dest, value in vars(namespace).items():
        if dest in ("config", "write_validation"):
            continue
        section, _, key = dest.rpartition(".")
        (nested.setdefault(section, {}) if section else nested)[key] = value
    return nested


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        file_values = load_file(namespace.config) if namespace.config else {}
        config = resolve(file_values, overrides_from(namespace))
        if namespace.write_validation:
            count = write_validation(validate(config).data, namespace.write_validation)  # no train.run to check it
            print(f"{count:,} validation records written to {namespace.write_validation}")
            return 0
        result = run(config)
    except (ConfigError, DataError, FinetuneError, ResumeError, StartError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
