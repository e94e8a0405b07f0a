"""``auth-service trace-oauth`` end to end: the shipped Traefik routes in front of auth-service
and a real MCP server (tests/e2e/mcp_server.py), on split origins.

httpx resolves host names the system way, where ``*.localhost`` does not resolve, so the
shipped routers are moved to names that do: the auth host ``auth.demo.localhost`` becomes
``127.0.0.1`` and the protected host ``app.demo.localhost`` becomes ``localhost``, with its
``/mcp`` sent to the MCP server behind the same ``auth`` middleware. ``127.0.0.1/mcp`` is
protected too but is not a ``[[resources]]`` entry: the host an operator forgot.

One stack for the module (some 5 s to start); each trace registers its own client.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from auth_service.oauth.trace import STEPS, trace_oauth

from ..conftest import (
    PASSWORD,
    Served,
    cli_env,
    create_user,
    free_port,
    run_cli,
    start_served,
    stop_process,
)
from ..tls import LocalCA
from .conftest import _start_traefik, _wait_for_port, start_echo
from .test_oauth_proxies import _new_database


@dataclass
class TraceStack:
    port: int
    auth: Served
    scheme: str = "http"

    @property
    def mcp_url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}/mcp"

    @property
    def unlisted_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/mcp"


def _on_resolvable_names(mcp_port: int, ca: LocalCA | None = None) -> Any:
    def edit(dynamic: dict[str, Any]) -> None:
        http = dynamic["http"]
        routers = http["routers"]
        for router in routers.values():
            router["rule"] = (
                router["rule"]
                .replace("Host(`auth.demo.localhost`)", "Host(`127.0.0.1`)")
                .replace("Host(`app.demo.localhost`)", "Host(`localhost`)")
            )
        for name, host in (("mcp", "localhost"), ("mcp-unlisted", "127.0.0.1")):
            routers[name] = {
                "rule": f"Host(`{host}`) && PathPrefix(`/mcp`)",
                "entryPoints": ["web"],
                "middlewares": ["auth"],
                "service": "mcp",
            }
        http["services"]["mcp"] = {
            "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{mcp_port}"}]}
        }
        if ca is not None:  # every public router over TLS, with the test CA's certificate
            for router in routers.values():
                if "web" in router["entryPoints"]:
                    router["tls"] = {}
            dynamic["tls"] = {
                "certificates": [{"certFile": str(ca.cert_file), "keyFile": str(ca.key_file)}]
            }

    return edit


@contextmanager
def trace_stack(server_url: str, folder: Path, ca: LocalCA | None = None) -> Iterator[TraceStack]:
    """The stack of this module's docstring; over https with ``ca``'s certificate for
    ``localhost`` and ``127.0.0.1`` when given."""
    port = free_port()
    scheme = "https" if ca else "http"
    database = asyncio.run(_new_database(server_url))
    (folder / "auth.toml").write_text(
        f'[[resources]]\nurl = "{scheme}://localhost:{port}/mcp"\n'
        'name = "Demo MCP"\nscopes = ["mcp"]\n'
    )
    auth = start_served(
        folder,
        cli_env(
            AUTH_DATABASE_URL=database,
            AUTH_CONFIG=str(folder / "auth.toml"),
            AUTH_PUBLIC_URL=f"{scheme}://127.0.0.1:{port}",
            AUTH_COOKIE_SECURE="true" if ca else "false",
        ),
    )
    mcp_port = free_port()
    log = folder / "mcp.log"
    with log.open("wb") as out:
        mcp = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("mcp_server.py")),
                str(mcp_port),
                "--allow-host=localhost:*",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    echo, echo_port = start_echo(folder)
    proxy = None
    try:
        _wait_for_port(mcp_port, mcp, "the MCP server", log)
        proxy = _start_traefik(
            folder, port, auth.port, echo_port, _on_resolvable_names(mcp_port, ca)
        )
        stack = TraceStack(port, auth, scheme)
        verify = ssl.create_default_context(cafile=ca.ca_file) if ca else True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.post(stack.mcp_url, verify=verify).status_code != 404:
                    break
            except httpx.TransportError:  # Traefik has not loaded its certificate yet
                pass
            time.sleep(0.1)
        yield stack
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_process(echo)
        stop_process(mcp)
        auth.stop()


@pytest.fixture(scope="module")
def stack(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceStack]:
    with trace_stack(server_url, tmp_path_factory.mktemp("trace")) as stack:
        yield stack


class Wiretap:
    """Every secret that crossed the wire, read from the raw exchanges (before redaction)."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        form = parse_qs(request.content.decode(errors="replace"))
        for name in ("code", "code_verifier", "refresh_token", "token", "csrf_token"):
            if name in form:
                self.secrets[f"sent {name}"] = form[name][0]
        if request.headers.get("authorization"):
            self.secrets["sent bearer"] = request.headers["authorization"].split()[-1]
        location = parse_qs(urlsplit(response.headers.get("location", "")).query)
        if "code" in location:
            self.secrets["redirect code"] = location["code"][0]
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                for name in ("access_token", "refresh_token", "client_secret"):
                    if isinstance(body.get(name), str):
                        self.secrets[f"{name} #{len(self.secrets)}"] = body[name]
        for cookie in response.headers.get_list("set-cookie"):
            value = cookie.split(";")[0].partition("=")[2]
            if len(value) > 8:
                self.secrets[f"cookie #{len(self.secrets)}"] = value


async def test_every_step_passes_and_the_trace_holds_no_secret(stack: TraceStack) -> None:
    # alice exists in the module's database (_new_database).
    tap = Wiretap()
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=10, event_hooks={"response": [tap]}
    ) as http:
        result = await trace_oauth(stack.mcp_url, "alice", PASSWORD, http=http)
    failed = result.failed_step
    assert failed is None, (failed.step, failed.problem, failed.fix)
    assert [s.step for s in result.steps] == list(STEPS)
    checks = {s.step: s.checks for s in result.steps}
    assert "resource matches the URL" in checks["resource_metadata"]
    assert "aud = resource, iss = issuer" in checks["token"]
    assert checks["resource_request"][0].startswith("200 from the server")
    assert checks["revoke"] == ("200", "the revoked refresh token is refused (400 invalid_grant)")
    assert result.client_id is not None and result.client_id.startswith("oc_")

    document = json.dumps(result.document())
    # Everything the tap saw: password, PKCE verifier, code, CSRF tokens, access and refresh
    # tokens (the first pair and the rotated one), session cookies.
    names = " ".join(tap.secrets)
    for wanted in ("code_verifier", "redirect code", "csrf_token", "access_token", "cookie"):
        assert wanted in names, names
    for name, value in {**tap.secrets, "password": PASSWORD}.items():
        assert value not in document, f"the trace holds the {name}"
    assert document.count("[redacted]") > 10
    log = result.document()["trace_log"]
    # Every step but the callback (which reads the redirect) made requests, all logged.
    assert {entry["step"] for entry in log} == set(STEPS) - {"callback"}
    assert all(entry["response"]["status"] for entry in log)


def test_the_command_passes_and_writes_its_trace(stack: TraceStack, tmp_path: Path) -> None:
    trace_file = tmp_path / "trace.json"
    result = run_cli(
        "trace-oauth",
        "--server-url",
        stack.mcp_url,
        "--username",
        "bob",
        "--password-stdin",
        "--save-trace",
        str(trace_file),
        stdin=PASSWORD + "\n",
    )
    # bob does not exist: the trace stops at the sign-in with the fix.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL login: sign-in answered" in result.stdout
    assert "     fix: check --username and --password" in result.stdout

    asyncio.run(create_user(stack.auth.env["AUTH_DATABASE_URL"], "bob"))
    result = run_cli(
        "trace-oauth",
        "--server-url",
        stack.mcp_url,
        "--username",
        "bob",
        "--password-stdin",
        "--save-trace",
        str(trace_file),
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[: len(STEPS)]] == [f"ok   {s}" for s in STEPS]
    assert lines[len(STEPS)] == f"passed: an MCP client can sign in to {stack.mcp_url}"
    assert lines[-1].startswith("note: the client registered for this trace remains;")
    client_id = lines[-1].rsplit(" ", 1)[-1]
    trace = json.loads(trace_file.read_text())
    assert trace["metadata"]["result"] == "passed"
    assert trace["metadata"]["failed_step"] is None
    assert [s["result"] for s in trace["sequence_summary"]] == ["passed"] * len(STEPS)
    assert PASSWORD not in trace_file.read_text()
    # The note's command works.
    removed = run_cli(
        "client", "remove", client_id, AUTH_DATABASE_URL=stack.auth.env["AUTH_DATABASE_URL"]
    )
    assert removed.returncode == 0, removed.stderr


def test_a_protected_url_that_is_no_resource_fails_the_probe(stack: TraceStack) -> None:
    result = run_cli(
        "trace-oauth",
        "--server-url",
        stack.unlisted_url,
        "--username",
        "alice",
        "--password",
        PASSWORD,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL probe: the 401 names no absolute resource_metadata URL",
        "     fix: route /.well-known/oauth-protected-resource (and the path form) of this host "
        "to auth-service without the auth check, and make "
        f"{stack.unlisted_url} a resource ([[resources]] url)",
        "failed at probe: the 401 names no absolute resource_metadata URL",
    ]
