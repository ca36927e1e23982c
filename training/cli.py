"""``sqlr1 train sft|grpo|export|plot``: the thin command layer over ``training.trainers``/``export``.

Registered through the ``sqlr1.commands`` entry point (``mcp_server.cli.main`` never imports training).
Exit codes: 0 success, 2 configuration errors (unknown keys, missing files), 1 a failed run.
For several processes or GPUs, run the same command under accelerate::

    accelerate launch --config_file training/accelerate/ddp.yaml -m sqlr1.training.cli sft --config sft.toml
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = ["main", "register"]

PRESETS = Path(__file__).parent / "configs"


def _err(message: str) -> None:
    print(f"sqlr1 train: {message}", file=sys.stderr)


def _config_path(value: str) -> Path:
    p = Path(value)
    if not p.is_file() and (PRESETS / value).is_file():
        return PRESETS / value  # a preset name, e.g. "sft_smollm2_cpu.toml"
    return p


def cmd_sft(args: argparse.Namespace) -> int:
    from sqlr1.training.config import load_sft_config
    from sqlr1.training.trainers import run_sft

    cfg = _apply_settings(load_sft_config(_config_path(args.config)), args)
    _apply_overrides(cfg, args)
    result = run_sft(cfg)
    print(f"SFT done: {result.steps} steps → {result.final_dir}")
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    from sqlr1.training.config import load_grpo_config
    from sqlr1.training.trainers import run_grpo

    cfg = _apply_settings(load_grpo_config(_config_path(args.config)), args)
    _apply_overrides(cfg, args)
    result = run_grpo(cfg)
    print(f"GRPO done: {result.steps} steps → {result.final_dir}")
    return 0


def _setting(text: str) -> tuple[list[str], Any]:
    """``section.key=VALUE`` with a TOML value (``4``, ``1e-5``, ``true``, ``["a"]``); a bare word is text."""
    key, sep, value = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not sep or len(path) < 2:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, got {text!r}")
    try:
        parsed: Any = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path, parsed


def _apply_settings(cfg: Any, args: argparse.Namespace) -> Any:
    """The config with ``--set`` values applied and validated again (a bad key or value is a
    ``config`` error naming it)."""
    if not getattr(args, "set", None):
        return cfg
    from pydantic import ValidationError

    data = cfg.model_dump()
    for path, value in args.set:
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise QueryFailed.of("config", f"--set {'.'.join(path)}: no section {part!r}")
            node = node[part]
        node[path[-1]] = value
    try:
        return type(cfg).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise QueryFailed.of("config", f"--set: {problems}") from exc


def _apply_overrides(cfg: Any, args: argparse.Namespace) -> None:
    if args.output_dir:
        cfg.train.output_dir = str(Path(args.output_dir).resolve())
    if args.max_steps is not None:
        cfg.train.max_steps = args.max_steps
    if args.limit is not None:
        cfg.data.limit = args.limit
    if args.max_minutes is not None:
        cfg.train.max_minutes = args.max_minutes
    if args.init_from:
        cfg.model.init_from = str(Path(args.init_from).resolve())
    if args.base:
        from sqlr1.training.config import resolve_path

        cfg.model.base = args.base if args.base == "bundled" else resolve_path(args.base, model_ok=True)
    if args.no_resume:
        cfg.train.resume = False


def _metric(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), float(value)


def cmd_export(args: argparse.Namespace) -> int:
    from sqlr1.training.export import export_checkpoint

    out = export_checkpoint(
        args.run,
        args.out,
        checkpoint=args.checkpoint,
        merge=args.merge,
        extra_metrics=dict(args.metric or []),
        notes=args.notes or "",
        dtype=args.dtype,
    )
    print(f"exported → {out} (serve it with: sqlr1 serve --model {out})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from sqlr1.training.plot import replot

    out = replot(args.run)
    if out is None:
        _err(f"{args.run}: no checkpoint-N/trainer_state.json with logged metrics")
        return 1
    print(out)
    return 0


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        try:
            return int(fn(args))
        except QueryFailed as exc:
            _err(str(exc))
            return 2
        except FileNotFoundError as exc:
            _err(str(exc))
            return 2
        except ValueError as exc:
            _err(str(exc))
            return 1

    return run


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML file, or a preset name from training/configs/")
    p.add_argument("--output-dir", help="override train.output_dir")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--limit", type=int, help="override data.limit")
    p.add_argument(
        "--max-minutes", type=float, help="override train.max_minutes (stop and save after this long)"
    )
    p.add_argument("--init-from", help="override model.init_from (e.g. the SFT run's final/ folder)")
    p.add_argument("--base", help="override model.base (a model name such as bundled, a path, a hub id)")
    p.add_argument("--no-resume", action="store_true", help="start over even when checkpoints exist")
    p.add_argument(
        "--set",
        action="append",
        type=_setting,
        metavar="SECTION.KEY=VALUE",
        help="override any key of the file, e.g. --set grpo.num_generations=4 (repeatable; TOML values)",
    )


def register(subparsers: Any) -> None:
    """Entry point: add ``train`` with its ``sft``, ``grpo``, ``export`` and ``plot`` subcommands."""
    p = subparsers.add_parser(
        "train",
        help="SFT / GRPO training with the SQL-R1 reward, and checkpoint export",
        description="Train with TRL (SFT cold start, GRPO with the SQL-R1 reward) and export a checkpoint "
        "that `sqlr1 serve --model DIR` loads. Presets: "
        + ", ".join(sorted(x.name for x in PRESETS.glob("*.toml"))),
    )
    sub = p.add_subparsers(dest="train_command", required=True)
    s = sub.add_parser("sft", help="supervised cold start")
    _add_run_flags(s)
    s.set_defaults(handler=_guarded(cmd_sft))
    g = sub.add_parser("grpo", help="GRPO with the four SQL-R1 reward components")
    _add_run_flags(g)
    g.set_defaults(handler=_guarded(cmd_grpo))
    e = sub.add_parser("export", help="write a servable folder with its manifest")
    e.add_argument("run", help="the run folder (train.output_dir)")
    e.add_argument("--out", required=True, help="destination folder")
    e.add_argument("--checkpoint", help="checkpoint-N to export (default: final/, else the last)")
    e.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights")
    e.add_argument("--metric", action="append", type=_metric, metavar="NAME=VALUE", help="a measured metric")
    e.add_argument("--notes", help="free text for the manifest")
    e.add_argument(
        "--dtype",
        choices=["keep", "bf16", "fp16", "fp32"],
        default="keep",
        help="store the adapter's weights in this type (bf16 halves an fp32 LoRA)",
    )
    e.set_defaults(handler=_guarded(cmd_export))
    pl = sub.add_parser("plot", help="re-draw a run's training curves")
    pl.add_argument("run")
    pl.set_defaults(handler=_guarded(cmd_plot))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sqlr1.training.cli sft --config ...`` (what ``accelerate launch -m`` runs)."""
    parser = argparse.ArgumentParser(prog="sqlr1")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(argv if argv is not None else sys.argv[1:])])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
