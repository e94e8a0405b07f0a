"""``auth-service trace-oauth`` as an operator runs it: its lines, exit status and trace file.

Here against a stand-in for another authorization server whose issuer does not match (the
failure output); the whole flow against our own stack is tests/e2e/test_trace_oauth.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tls import DocumentServer

from .conftest import run_cli
from .test_oauth_trace_pieces import resource_document, serve_discovery, server_document

PASSWORD = "trace-password-never-printed"


@pytest.fixture
def mismatched() -> Iterator[str]:
    """A protected URL whose server metadata names another issuer (a trailing slash)."""
    server = DocumentServer(None).start()
    try:
        issuer = server.url("", host="127.0.0.1")
        yield serve_discovery(server, resource_document(server), server_document(issuer + "/"))
    finally:
        server.stop()


def test_a_failure_prints_the_step_its_fix_and_exits_1(mismatched: str, tmp_path: Path) -> None:
    trace_file = tmp_path / "trace.json"
    result = run_cli(
        "trace-oauth",
        "--server-url",
        mismatched,
        "--username",
        "alice",
        "--password-stdin",
        "--save-trace",
        str(trace_file),
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "ok   probe: 401, WWW-Authenticate: Bearer, resource_metadata present"
    assert lines[1].startswith("ok   resource_metadata: 200 JSON, resource matches the URL")
    assert lines[2].startswith("FAIL server_metadata: issuer ")
    assert lines[2].endswith("clients compare them byte for byte")
    assert lines[3].startswith("     fix: serve both documents from the same AUTH_PUBLIC_URL")
    assert lines[4].startswith("failed at server_metadata: issuer ")
    assert len(lines) == 5

    text = trace_file.read_text()
    assert PASSWORD not in text
    trace = json.loads(text)
    assert set(trace) == {"metadata", "sequence_summary", "trace_log"}
    metadata = trace["metadata"]
    assert metadata["tool"] == "auth-service trace-oauth"
    assert (metadata["server_url"], metadata["username"]) == (mismatched, "alice")
    assert (metadata["result"], metadata["failed_step"]) == ("failed", "server_metadata")
    assert metadata["started_at"].endswith("Z") and metadata["finished_at"].endswith("Z")
    summary = trace["sequence_summary"]
    assert [(s["step"], s["result"]) for s in summary] == [
        ("probe", "passed"),
        ("resource_metadata", "passed"),
        ("server_metadata", "failed"),
    ]
    assert summary[2]["fix"].startswith("serve both documents")
    log = trace["trace_log"]
    assert [(e["step"], e["request"]["method"], e["response"]["status"]) for e in log] == [
        ("probe", "POST", 401),
        ("resource_metadata", "GET", 200),
        ("server_metadata", "GET", 200),
    ]
    assert log[0]["request"]["body"].startswith('{"jsonrpc": "2.0"')
    assert "resource_metadata=" in log[0]["response"]["headers"]["www-authenticate"]


def test_quiet_prints_only_the_verdict(mismatched: str) -> None:
    result = run_cli(
        "trace-oauth",
        "--server-url",
        mismatched,
        "--username",
        "alice",
        "--password",
        PASSWORD,
        "--quiet",
    )
    assert result.returncode == 1
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("failed at server_metadata: ")


@pytest.mark.parametrize(
    "args",
    [
        ("--server-url", "mcp.example.com/mcp", "--username", "a", "--password", "p"),
        ("--server-url", "http://127.0.0.1:9/mcp", "--username", "a"),
        ("--server-url", "http://127.0.0.1:9/mcp", "--password", "p"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run_cli("trace-oauth", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
