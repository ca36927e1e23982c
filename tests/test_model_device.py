"""Device and dtype of the transformers backend: resolution, config, CLI flags, and the load-time error.

The resolution functions are pure (they only ask torch what it sees), so availability is
monkeypatched to cover GPU machines on this CPU-only one. The load-time errors are real: this
machine has no CUDA, so asking for it must fail with a ``config`` error before any weights load.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from sqlr1.mcp_server.backends.device import resolve_device, resolve_dtype
from sqlr1.mcp_server.cli.main import build_parser, main, resolve_config
from sqlr1.mcp_server.core.config import ModelConfig, load_config
from sqlr1.mcp_server.core.errors import QueryFailed

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int, *, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def _error(spec: str) -> QueryFailed:
    with pytest.raises(QueryFailed) as exc:
        resolve_device(spec)
    return exc.value


# -- resolution ----------------------------------------------------------------------------


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 2, mps=True)
    assert resolve_device("auto") == "cuda"
    _gpus(monkeypatch, 0, mps=True)
    assert resolve_device("auto") == "mps"
    _gpus(monkeypatch, 0, mps=False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device() == "cpu"


def test_explicit_devices_checked_against_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 2)
    assert resolve_device("cpu") == "cpu"  # always allowed, even with GPUs present
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("CUDA:1") == "cuda:1"
    missing = _error("cuda:2")
    assert missing.error.kind == "config" and "cuda:2" in missing.error.message
    assert "2 CUDA device" in missing.error.message
    mps = _error("mps")
    assert mps.error.kind == "config" and "mps" in mps.error.message

    _gpus(monkeypatch, 0)
    for spec in ("cuda", "cuda:0"):
        err = _error(spec)
        assert err.error.kind == "config" and repr(spec) in err.error.message
        assert "CUDA is not available" in err.error.message


def test_malformed_device_is_a_config_error() -> None:
    for spec in ("gpu", "cuda1", "cuda:-1", ""):
        err = _error(spec)
        assert err.error.kind == "config" and repr(spec) in err.error.message


def test_this_machine_resolves_auto_to_what_torch_sees() -> None:
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto") == expected


def test_dtype_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    capability = {0: (9, 0), 1: (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability[i])
    assert resolve_dtype("auto", "cuda") is torch.bfloat16  # Hopper
    assert resolve_dtype("auto", "cuda:1") is torch.float16  # Turing: no bfloat16
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto", "mps") is torch.float16
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16  # explicit wins everywhere
    assert resolve_dtype("float32", "cuda") is torch.float32
    with pytest.raises(QueryFailed) as bad:
        resolve_dtype("int8", "cpu")
    assert bad.value.error.kind == "config" and "int8" in bad.value.error.message


# -- config and CLI ------------------------------------------------------------------------


def test_model_config_device_and_dtype(tmp_path: Path) -> None:
    assert (ModelConfig().device, ModelConfig().dtype) == ("auto", "auto")
    assert ModelConfig(device="cuda:1", dtype="float16").device == "cuda:1"
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text('[model]\ndevice = "cpu"\ndtype = "bfloat16"\n', encoding="utf-8")
    model = load_config(cfg).model
    assert (model.device, model.dtype) == ("cpu", "bfloat16")
    for line, key in (('device = "gpu"', "model.device"), ('dtype = "fp8"', "model.dtype")):
        cfg.write_text(f"[model]\n{line}\n", encoding="utf-8")
        with pytest.raises(QueryFailed) as exc:
            load_config(cfg)
        assert exc.value.error.kind == "config" and key in exc.value.error.message


def test_cli_flags_flow_into_model_config(tmp_path: Path) -> None:
    parser = build_parser(plugins=False)
    config = resolve_config(parser.parse_args(["--device", "CUDA:1", "--dtype", "float16", "dbs"]))
    assert (config.model.device, config.model.dtype) == ("cuda:1", "float16")
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text('[model]\ndevice = "cpu"\n', encoding="utf-8")
    from_file = resolve_config(parser.parse_args(["--config", str(cfg), "dbs"]))
    assert (from_file.model.device, from_file.model.dtype) == ("cpu", "auto")
    flag_wins = resolve_config(parser.parse_args(["--config", str(cfg), "--device", "auto", "dbs"]))
    assert flag_wins.model.device == "auto"


def test_cli_rejects_malformed_device(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser(plugins=False).parse_args(["--device", "gpu0", "dbs"])
    assert exc.value.code == 2
    assert "gpu0" in capsys.readouterr().err
    assert isinstance(build_parser(plugins=False).parse_args(["dbs"]), argparse.Namespace)


# -- load time on this machine -------------------------------------------------------------


@no_cuda
def test_cuda_request_without_cuda_fails_at_load_with_config_error() -> None:
    from sqlr1.mcp_server.backends import factory

    for device in ("cuda", "cuda:1"):
        with pytest.raises(QueryFailed) as exc:
            factory.load_backend(ModelConfig(model="bundled", device=device))
        assert exc.value.error.kind == "config"
        assert repr(device) in exc.value.error.message and "CUDA is not available" in exc.value.error.message
    assert not any(key[3].startswith("cuda") for key in factory._cache)  # nothing half-loaded is cached


@no_cuda
def test_cli_cuda_without_cuda_exits_2_naming_the_device(
    chinook_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--db", str(chinook_copy), "--device", "cuda", "generate", "How many artists are there?"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "config" in err and "'cuda'" in err and "Traceback" not in err


def test_ask_stdio_forwards_device_and_dtype_to_the_server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlr1.agent.cli import agent_source
    from sqlr1.agent.loop import Agent
    from sqlr1.agent.tools import StdioTarget

    # Only the target is wanted: connecting would start the subprocess.
    monkeypatch.setattr(Agent, "connect", lambda target, **kw: target)
    args = build_parser().parse_args(["--device", "cpu", "--dtype", "float32", "ask", "--stdio", "q?"])
    factory, _ = agent_source(args)
    target = factory()
    assert isinstance(target, StdioTarget) and target.args[-1] == "serve"
    argv = list(target.args)
    assert argv[argv.index("--device") + 1] == "cpu" and argv[argv.index("--dtype") + 1] == "float32"
