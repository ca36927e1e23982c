"""The official MCP clients against ``sqlr1 serve`` over stdio and streamable HTTP: 0 errors, 0 warnings.

Two clients nobody on the project wrote, installed from the npm registry by scripts/setup_node_clients.sh
(pinned in tests/node/package-lock.json):

* the TypeScript SDK client (``@modelcontextprotocol/sdk``) through tests/node/sdk_client.mjs, which
  discovers every tool, prompt, resource and resource template from the server's list results, uses each,
  and asks completions for every prompt argument and template variable (the SDK validates every
  ``structuredContent`` against the tool's output schema);
* the MCP Inspector CLI (``@modelcontextprotocol/inspector --cli``, on the Node 22 it needs): ``--strict``
  schema portability check of ``tools/list``, then every tool, prompt and resource it lists (its CLI has
  no completion method: completions are the SDK client's part).

``generate_sql`` runs the real generation path against a scripted model behind an OpenAI-compatible
server (tests/serve_fixtures.py), so the calls stay fast.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import unavailable
from serve_fixtures import MODEL_SQL, REPO, HttpServer, child_env, http_server, scripted_model, write_config

from sqlr1.mcp_server.core.errors import QueryError

NODE_DIR = REPO / "tests" / "node"
NODE = NODE_DIR / "node_modules" / ".bin" / "node"
INSPECTOR = (
    NODE_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build"
)
SDK_CLIENT = NODE_DIR / "sdk_client.mjs"
TOOL_ERROR_EXIT = 5  # the Inspector CLI's exit status for an isError result

# Argument values by name, for every tool, prompt and template argument the server declares; an argument
# not here gets a completion or a value made from its schema (see sdk_client.mjs).
SAMPLES: dict[str, Any] = {
    "database": "chinook",
    "sql": "SELECT Name FROM Artist WHERE ArtistId = 1",
    "query": "SELECT Name FROM Artist WHERE ArtistId = 1",
    "question": "How many artists are there?",
    "table": "Artist",
    "tables": ["Artist"],
    "column": "Name",
    "text": "AC/DC",
    "limit": 3,
    "max_rows": 5,
    "num_candidates": 1,
}
REFUSALS = [
    {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "UPDATE Artist SET Name = 'x'"}}
]


@dataclass(frozen=True)
class Served:
    config: Path
    http: HttpServer
    model_calls: list[Any]
    errlog: Path  # stderr of the stdio servers the Inspector starts

    def stdio_command(self) -> list[str]:
        return [sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--config", str(self.config), "serve"]


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The pinned clients, installed by the project's set-up (a no-op when already there)."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup_node_clients.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        unavailable(f"the official MCP clients could not be installed: {proc.stderr.strip()[-2000:]}")
    return NODE


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, node_clients: Path) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("official-clients")
    database = tmp / "chinook.sqlite"
    database.write_bytes((REPO / "examples" / "chinook.sqlite").read_bytes())
    with scripted_model() as (model_url, backend):
        config = write_config(tmp / "sqlr1.toml", database, model_url)
        with http_server(config) as server:
            yield Served(config, server, backend.calls, tmp / "stdio-servers.log")


def _node_env(home: Path) -> dict[str, str]:
    env = child_env()
    env["PATH"] = f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)  # the Inspector keeps its catalog and storage under ~/.mcp-inspector
    return env


def run_sdk_client(served: Served, transport: str, tmp_path: Path) -> dict[str, Any]:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"samples": SAMPLES, "refusals": REFUSALS}), encoding="utf-8")
    target = ["--http", served.http.url] if transport == "http" else ["--stdio", *served.stdio_command()]
    proc = subprocess.run(
        [str(NODE), str(SDK_CLIENT), str(plan), *target],
        cwd=str(REPO),
        env=_node_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


@pytest.fixture(scope="module")
def http_summary(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_sdk_client(served, "http", tmp_path_factory.mktemp("sdk-http"))


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_sdk_client_uses_everything_without_errors_or_warnings(
    served: Served, transport: str, tmp_path: Path, http_summary: dict[str, Any]
) -> None:
    summary = http_summary if transport == "http" else run_sdk_client(served, "stdio", tmp_path)
    assert summary["errors"] == [] and summary["warnings"] == [], json.dumps(summary, indent=1)[:6000]
    assert summary["server"]["name"] == "sqlr1"
    tools = {t["name"]: t for t in summary["tools"]}
    assert {"execute_sql", "validate_sql", "describe_schema", "generate_sql"} <= set(tools)
    for tool in tools.values():
        assert tool["isError"] is False, tool
        assert tool["structured"] == tool["hasOutputSchema"], tool
    assert tools["execute_sql"]["structuredContent"]["rows"] == [["AC/DC"]]
    generated = tools["generate_sql"]
    assert generated["structuredContent"]["sql"] == MODEL_SQL and generated["progress"] > 0
    assert served.model_calls, "generate_sql did not reach the model server"
    refusal = summary["refusals"][0]
    assert summary["refusals"] == [
        {"name": "execute_sql", "isError": True, "text": refusal["text"], "structuredContent": ANY}
    ]
    assert "blocked" in refusal["text"]
    # the refusal as data, through the TypeScript SDK's validation of results against the output schema
    error = QueryError.model_validate(refusal["structuredContent"])
    assert error.kind == "blocked" and error.rule and error.message in refusal["text"]
    for read in summary["resources"] + summary["templates"]:
        assert read["contents"] and read["contents"] >= 1, read
    for prompt in summary["prompts"]:
        assert prompt["messages"] and prompt["messages"] >= 1, prompt


def test_sdk_client_sees_the_features_ides_look_for(http_summary: dict[str, Any]) -> None:
    """Prompts, concrete resources, completions that know the catalog, logging and tool titles."""
    summary = http_summary
    caps = summary["capabilities"]
    assert {"tools", "prompts", "resources", "completions", "logging"} <= set(caps), caps
    assert summary["prompts"], "prompts/list is empty"
    assert summary["resources"], "resources/list is empty"
    assert all(t["title"] for t in summary["tools"]), [t["name"] for t in summary["tools"] if not t["title"]]
    found: dict[str, set[str]] = {}
    for c in summary["completions"]:
        found.setdefault(c["argument"], set()).update(c["values"])
    assert "chinook" in found.get("database", set()), found
    if "table" in found:
        assert "Artist" in found["table"], found
    if "column" in found:
        assert "Name" in found["column"], found


# --------------------------------------------------------------------------- the MCP Inspector CLI


@dataclass(frozen=True)
class InspectorRun:
    args: list[str]
    returncode: int
    envelope: dict[str, Any]
    stderr: str

    def problem(self) -> str:
        return f"{shlex.join(self.args)}\n-> exit {self.returncode}\n{self.stderr[-3000:]}"


def _inspector(served: Served, transport: str, home: Path, *args: str) -> InspectorRun:
    """One ``mcp-inspector --cli --format json ARGS`` run against ``sqlr1 serve`` (stdio or HTTP)."""
    if transport == "stdio":
        # The Inspector starts the real server; its stderr goes to a log so the Inspector's own stderr
        # (warnings, errors) is all that is left to check.
        quiet = f'exec "$@" 2>>{shlex.quote(str(served.errlog))}'
        env = f"PYTHONPATH={child_env()['PYTHONPATH']}"
        target = ["-e", env, "--", "sh", "-c", quiet, "sqlr1", *served.stdio_command()]
    else:
        target = ["--server-url", served.http.url]
    # A stdio server starts within the default 15 s connect timeout on an idle machine, not always on a
    # busy one: allow more (requests keep the Inspector's default timeout).
    cmd = [str(NODE), str(INSPECTOR / "index.js"), "--cli", "--format", "json", "--connect-timeout", "90000"]
    cmd += [*args, *target]
    proc = subprocess.run(
        cmd, cwd=str(REPO), env=_node_env(home), capture_output=True, text=True, timeout=120, check=False
    )
    out = proc.stdout.strip()
    return InspectorRun(list(args), proc.returncode, json.loads(out) if out else {}, proc.stderr)


def _check_clean(run: InspectorRun) -> dict[str, Any]:
    """No error, no warning: exit 0, nothing on stderr, no schema findings; returns the result."""
    assert run.returncode == 0 and run.stderr.strip() == "", run.problem()
    assert not run.envelope.get("schemaFindings"), json.dumps(run.envelope["schemaFindings"], indent=1)
    result: dict[str, Any] = run.envelope["result"]
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transport", "era"), [("stdio", "legacy"), ("http", "legacy"), ("http", "modern")], ids=str
)
def test_inspector_cli_strict_uses_everything_cleanly(
    served: Served, transport: str, era: str, http_summary: dict[str, Any], tmp_path: Path
) -> None:
    """Arguments come from the SDK client's run (same discovery); the lists are the Inspector's own."""

    def inspect(*args: str) -> InspectorRun:
        return _inspector(served, transport, tmp_path, "--protocol-era", era, *args)

    init = _check_clean(inspect("--method", "initialize"))
    caps = init["capabilities"]
    tools = _check_clean(inspect("--method", "tools/list", "--strict"))["tools"]
    assert {t["name"] for t in tools} == {t["name"] for t in http_summary["tools"]}
    arguments = {t["name"]: t["arguments"] for t in http_summary["tools"]}
    calls: list[list[str]] = [
        [
            "--method",
            "tools/call",
            "--tool-name",
            t["name"],
            "--tool-args-json",
            json.dumps(arguments[t["name"]]),
        ]
        for t in tools
    ]
    full = era == "legacy"  # the 2026-07-28 revision: the handshake, the strict list and every tool
    if full and caps.get("prompts"):
        prompts = _check_clean(inspect("--method", "prompts/list"))["prompts"]
        assert {p["name"] for p in prompts} == {p["name"] for p in http_summary["prompts"]}
        chosen = {p["name"]: p["arguments"] for p in http_summary["prompts"]}
        for p in prompts:
            pairs = [f"{k}={v}" for k, v in chosen[p["name"]].items()]
            calls.append(
                [
                    "--method",
                    "prompts/get",
                    "--prompt-name",
                    p["name"],
                    *(["--prompt-args", *pairs] if pairs else []),
                ]
            )
    if full and caps.get("resources"):
        resources = _check_clean(inspect("--method", "resources/list"))["resources"]
        assert {r["uri"] for r in resources} == {r["uri"] for r in http_summary["resources"]}
        templates = _check_clean(inspect("--method", "resources/templates/list"))["resourceTemplates"]
        assert {t["uriTemplate"] for t in templates} == {t["uriTemplate"] for t in http_summary["templates"]}
        # Over stdio each Inspector run starts a server (seconds): there it reads the first listed
        # resource and one of each template (HTTP reads them all; the SDK client reads all on both).
        listed = [r["uri"] for r in resources]
        uris = (listed if transport == "http" else listed[:1]) + [t["uri"] for t in http_summary["templates"]]
        calls += [["--method", "resources/read", "--uri", uri] for uri in uris]
    if full and caps.get("logging"):
        calls.append(["--method", "logging/setLevel", "--log-level", "info"])

    with ThreadPoolExecutor(max_workers=2 if transport == "stdio" else 4) as pool:
        runs = list(pool.map(lambda args: inspect(*args), calls))
    for run in runs:
        result = _check_clean(run)
        if "tools/call" in run.args:
            assert result["isError"] is False, run.problem()
        if "resources/read" in run.args:
            assert result["contents"], run.problem()
        if "prompts/get" in run.args:
            assert result["messages"], run.problem()

    refusal = REFUSALS[0]
    refused = inspect(
        "--method",
        "tools/call",
        "--tool-name",
        str(refusal["name"]),
        "--tool-args-json",
        json.dumps(refusal["arguments"]),
    )
    assert refused.returncode == TOOL_ERROR_EXIT, refused.problem()
    assert refused.envelope["result"]["isError"] is True
    assert "blocked" in refused.envelope["result"]["content"][0]["text"]
    assert QueryError.model_validate(refused.envelope["result"]["structuredContent"]).kind == "blocked"
