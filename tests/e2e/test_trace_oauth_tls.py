"""``auth-service trace-oauth`` over https, against a certificate that a private CA signed: the
stack of ``test_trace_oauth.py`` (the shipped Traefik routes, auth-service, a real MCP server)
with TLS on Traefik's public entry point, for ``localhost`` and ``127.0.0.1``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_service.oauth.trace import STEPS

from ..conftest import PASSWORD, run_cli
from ..tls import LocalCA, make_local_ca
from .test_trace_oauth import TraceStack, trace_stack

UNTRUSTED_FIX = (
    "     fix: the server's certificate is not trusted here: if a private CA signed it, pass "
    "that CA's certificate with --ca-file (MCP clients need it in their trust store too)"
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"), ("localhost",), ("127.0.0.1",))


@pytest.fixture(scope="module")
def stack(
    server_url: str, tmp_path_factory: pytest.TempPathFactory, ca: LocalCA
) -> Iterator[TraceStack]:
    with trace_stack(server_url, tmp_path_factory.mktemp("trace-tls"), ca) as stack:
        yield stack


def trace(stack: TraceStack, *extra: str) -> list[str]:
    result = run_cli(
        "trace-oauth",
        "--server-url",
        stack.mcp_url,
        "--username",
        "alice",
        "--password-stdin",
        *extra,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == (1 if "FAIL" in result.stdout else 0), result.stderr
    return result.stdout.splitlines()


def test_a_private_cas_certificate_fails_the_first_step_with_the_fix(stack: TraceStack) -> None:
    lines = trace(stack)
    assert lines[0].startswith(f"FAIL probe: POST {stack.mcp_url}: ConnectError: ")
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert lines[1] == UNTRUSTED_FIX
    assert lines[2].startswith("failed at probe: ")


def test_with_the_ca_file_every_step_passes_over_https(stack: TraceStack, ca: LocalCA) -> None:
    lines = trace(stack, "--ca-file", str(ca.ca_file))
    assert [line.split(":")[0] for line in lines[: len(STEPS)]] == [f"ok   {s}" for s in STEPS]
    assert lines[len(STEPS)] == f"passed: an MCP client can sign in to {stack.mcp_url}"
    assert "endpoints https or loopback" in lines[STEPS.index("server_metadata")]


def test_a_ca_file_that_holds_no_certificate_is_a_usage_error(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path, problem in ((not_pem, "cannot read"), (tmp_path / "missing.pem", "no such file")):
        result = run_cli(
            "trace-oauth",
            "--server-url",
            "https://localhost:1/mcp",
            "--username",
            "alice",
            "--password",
            PASSWORD,
            "--ca-file",
            str(path),
        )
        assert result.returncode == 2
        assert result.stdout == ""
        assert f"argument --ca-file: {problem}" in result.stderr
