"""``auth-service diagnose``: the share of 401s, its reasons and a verdict, from logs or metrics."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from auth_service.diagnose import DiagnoseError, summarise_log, summarise_metrics
from auth_service.verdict import Verdict, advice, report, verdict_for

from .conftest import PASSWORD, Served, auth_service_command, cli_env, create_user

VALIDATE = "/api/v1/auth/validate"
TOP_CLIENT = "203.0.113.9"
TOP_PATH = "/orders"
ALLOWED_CLIENT = "192.0.2.50"
ALLOWED_PATH = "/home"
STAGES = {"missing_token": "token_extraction", "malformed_header": "token_extraction"}


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*auth_service_command(), "diagnose", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )


def log_line(message: str, **fields: str) -> str:
    record = {
        "time": "2025-05-01T12:00:00+0000",
        "level": "DEBUG",
        "logger": "auth_service.validate",
        "message": message,
        "request_id": "1bacda8942f5acb7",
        "method": "GET",
        "host": "app.example.com",
        **fields,
    }
    return json.dumps(record)


def allowed_line() -> str:
    return log_line(
        "allowed",
        auth_stage="policy",
        user="alice",
        token_cache="hit",
        path=ALLOWED_PATH,
        client_ip=ALLOWED_CLIENT,
    )


def refused_line(index: int, error_type: str | None = None) -> str:
    """The index-th refusal: half from TOP_CLIENT, two thirds on TOP_PATH, 3 in 4 missing_token."""
    error_type = error_type or ("missing_token" if index % 4 else "expired_token")
    return log_line(
        "refused",
        auth_stage=STAGES.get(error_type, "token_validation"),
        error_type=error_type,
        reason="some reason",
        path=TOP_PATH if index % 3 else "/admin",
        client_ip=TOP_CLIENT if index % 2 == 0 else f"198.51.100.{index % 5}",
    )


def decisions(allowed: int, refused: int, error_type: str | None = None) -> list[str]:
    lines = [allowed_line() for _ in range(allowed)]
    lines += [refused_line(i, error_type) for i in range(refused)]
    return lines


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def section(output: str, title: str) -> list[tuple[str, int]]:
    """The ``name count`` rows printed under ``title``."""
    lines = output.splitlines()
    rows = []
    for line in lines[lines.index(title) + 1 :]:
        if not line.startswith("  "):
            break
        name, count = line.split()[:2]
        rows.append((name, int(count)))
    return rows


# -- verdicts from log files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refused", "verdict", "status"),
    [(16, "normal", 0), (24, "elevated", 1), (32, "investigate", 2), (38, "critical", 3)],
    ids=["40%", "60%", "80%", "95%"],
)
def test_verdict_and_exit_status_from_a_log_file(
    tmp_path: Path, refused: int, verdict: str, status: int
) -> None:
    log = write_log(tmp_path / "auth.log", decisions(40 - refused, refused))
    result = run(str(log))
    assert result.returncode == status, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert out.splitlines()[-1] == f"verdict: {verdict}"
    assert "validate decisions: 40" in out
    assert f"401 rate: {refused / 40 * 100:.1f} % ({refused} of 40)" in out
    assert dict(section(out, "refusals by reason:")) == {
        "missing_token": refused - (refused + 3) // 4,
        "expired_token": (refused + 3) // 4,
    }
    clients = section(out, "top clients among refusals:")
    assert clients[0] == (TOP_CLIENT, (refused + 1) // 2)
    assert len(clients) <= 5
    paths = dict(section(out, "top paths among refusals:"))
    assert paths == {TOP_PATH: refused - (refused + 2) // 3, "/admin": (refused + 2) // 3}
    # Allowed requests are not refusals.
    assert ALLOWED_CLIENT not in out and ALLOWED_PATH not in out
    assert f"{verdict}: " in out and "likely (missing_token):" in out


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = [
        "INFO:     Started server process [4242]",
        "",
        "{not json",
        "[1, 2]",
        "42",
        json.dumps({"level": "INFO", "logger": "uvicorn.error", "message": "refused"}),
        log_line("something else"),
        *decisions(3, 1),
    ]
    log = tmp_path / "mixed.log"
    log.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe binary \x00 noise\n")
    result = run(str(log))
    assert result.returncode == 0, result.stderr
    assert "skipped 5 of 11 lines: not JSON objects" in result.stdout
    assert "validate decisions: 4" in result.stdout
    assert "401 rate: 25.0 % (1 of 4)" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: normal"


@pytest.mark.parametrize("content", ["", "plain text\n" + log_line("other", logger="x") + "\n"])
def test_no_decisions_is_normal(tmp_path: Path, content: str) -> None:
    log = tmp_path / "quiet.log"
    log.write_text(content)
    result = run(str(log))
    assert result.returncode == 0
    assert "no validate decisions found" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: normal"


def test_stdin(tmp_path: Path) -> None:
    result = run("-", stdin="\n".join(decisions(2, 38)) + "\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines()[0] == "source: stdin"
    assert "401 rate: 95.0 % (38 of 40)" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: critical"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("missing.log",), "cannot read missing.log"),
        ((".",), "cannot read ."),
        (("--url", "http://127.0.0.1:9"), "cannot reach http://127.0.0.1:9/metrics"),
    ],
    ids=["missing-file", "directory", "unreachable-url"],
)
def test_unreadable_input_is_a_one_line_error(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 4
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("auth-service: error: ")
    assert fragment in lines[0]


@pytest.mark.parametrize("args", [(), ("x.log", "--url", "http://127.0.0.1:9")])
def test_exactly_one_source(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2  # argparse's usage error
    assert "usage:" in result.stderr


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "verdict"),
    [
        (0.0, Verdict.NORMAL),
        (0.4999, Verdict.NORMAL),
        (0.5, Verdict.ELEVATED),
        (0.6999, Verdict.ELEVATED),
        (0.7, Verdict.INVESTIGATE),
        (0.9, Verdict.INVESTIGATE),
        (0.9001, Verdict.CRITICAL),
        (1.0, Verdict.CRITICAL),
    ],
)
def test_verdict_thresholds(share: float, verdict: Verdict) -> None:
    assert verdict_for(share) is verdict


def test_exit_statuses() -> None:
    assert [v.exit_status for v in Verdict] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("reason", "phrases"),
    [
        ("missing_token", ("no credential", "strips Authorization", "no session")),
        ("expired_token", ("refresh", "clocks")),
        ("invalid_token", ("issuer or audience", "rotation", "jwks.json")),
        ("revoked_token", ("logout", "disabled user", "user list")),
        ("malformed_header", ("client bug",)),
        ("token_too_long", ("AUTH_TOKEN_MAX_LENGTH",)),
        ("wrong_resource", ("another MCP server", "[[resources]] url", "X-Forwarded-Proto")),
        ("something_new", ("error_type",)),
    ],
)
def test_advice_follows_the_dominant_reason(reason: str, phrases: tuple[str, ...]) -> None:
    for verdict in Verdict:
        lines = advice(verdict, reason)
        assert 2 <= len(lines) <= 4
        assert lines[0].startswith(f"{verdict.value}: ")
        text = "\n".join(lines)
        assert all(phrase in text for phrase in phrases), text


def test_the_dominant_reason_chooses_the_advice(tmp_path: Path) -> None:
    lines = decisions(1, 10, "expired_token") + decisions(0, 3, "missing_token")
    summary = summarise_log(lines)
    assert summary.dominant_reason == "expired_token"
    out = report(summary, "test")
    assert "  likely (expired_token): " in "\n".join(out)
    assert out[-1] == "verdict: critical"


METRICS = """\
# HELP auth_validate_requests_total Validate decisions by outcome and reason.
# TYPE auth_validate_requests_total counter
auth_validate_requests_total{outcome="allowed",reason="ok"} 2.0
auth_validate_requests_total{outcome="error",reason="internal_error"} 0.0
auth_validate_requests_total{outcome="unauthorized",reason="missing_token"} 30.0
auth_validate_requests_total{outcome="unauthorized",reason="expired_token"} 8.0
auth_validate_requests_total{outcome="unauthorized",reason="revoked_token"} 0.0
# HELP auth_validate_requests_created Validate decisions by outcome and reason.
# TYPE auth_validate_requests_created gauge
auth_validate_requests_created{outcome="allowed",reason="ok"} 1.7e+09
"""


def test_metrics_text() -> None:
    summary = summarise_metrics(METRICS)
    assert dict(summary.outcomes) == {"allowed": 2, "unauthorized": 38}
    assert dict(summary.reasons) == {"missing_token": 30, "expired_token": 8}
    out = report(summary, "metrics")
    assert "401 rate: 95.0 % (38 of 40)" in out
    assert "top clients among refusals: not available from metrics" in out
    assert "top paths among refusals: not available from metrics" in out
    assert out[-1] == "verdict: critical"


def test_metrics_of_a_fresh_service_have_no_decisions() -> None:
    fresh = "\n".join(line for line in METRICS.splitlines() if not line.startswith("auth_"))
    summary = summarise_metrics(fresh + "\n")
    assert summary.decisions == 0
    assert report(summary, "metrics")[-2:] == ["no validate decisions found", "verdict: normal"]


@pytest.mark.parametrize(
    "text", ["# TYPE other_total counter\nother_total 1\n", "this is { not metrics\n"]
)
def test_metrics_without_ours_are_refused(text: str) -> None:
    with pytest.raises(DiagnoseError):
        summarise_metrics(text)


# -- a live service ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "refused", "verdict", "status"),
    [(2, 38, "critical", 3), (6, 4, "normal", 0)],
    ids=["95%", "40%"],
)
async def test_live_service_metrics_and_log(
    database_url: str,
    serve: Callable[..., Served],
    allowed: int,
    refused: int,
    verdict: str,
    status: int,
) -> None:
    await create_user(database_url, "alice")
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="DEBUG", AUTH_LOG_FORMAT="json")
    forwarded = {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=served.url) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        token = login.json()["access_token"]
        for _ in range(allowed):
            headers = {
                **forwarded,
                "Authorization": f"Bearer {token}",
                "X-Forwarded-For": ALLOWED_CLIENT,
                "X-Forwarded-Uri": ALLOWED_PATH,
            }
            assert (await http.get(VALIDATE, headers=headers)).status_code == 200
        for i in range(refused):
            headers = {
                **forwarded,
                "X-Forwarded-For": TOP_CLIENT if i % 2 == 0 else "198.51.100.7",
                "X-Forwarded-Uri": TOP_PATH if i % 3 else "/admin",
            }
            if i % 4 == 3:
                headers["Authorization"] = "Bearer abc.def.ghi"
            assert (await http.get(VALIDATE, headers=headers)).status_code == 401

    total = allowed + refused
    invalid = refused // 4
    from_metrics = run("--url", served.url)
    assert from_metrics.returncode == status, from_metrics.stderr
    out = from_metrics.stdout
    assert out.splitlines()[-1] == f"verdict: {verdict}"
    assert f"401 rate: {refused / total * 100:.1f} % ({refused} of {total})" in out
    assert dict(section(out, "refusals by reason:")) == {
        "missing_token": refused - invalid,
        "invalid_token": invalid,
    }
    assert "top clients among refusals: not available from metrics" in out

    # The same decisions from the service's own DEBUG log, with clients and paths.
    deadline = time.monotonic() + 5
    while summarise_log(served.log_text().splitlines()).decisions < total:
        assert time.monotonic() < deadline, served.log_text()
        time.sleep(0.05)
    from_log = run(str(served.log_path))
    assert from_log.returncode == status, from_log.stderr
    out = from_log.stdout
    assert out.splitlines()[-1] == f"verdict: {verdict}"
    assert f"validate decisions: {total}" in out
    assert section(out, "top clients among refusals:")[0] == (TOP_CLIENT, (refused + 1) // 2)
    assert dict(section(out, "top paths among refusals:")) == {
        TOP_PATH: refused - (refused + 2) // 3,
        "/admin": (refused + 2) // 3,
    }
    assert ALLOWED_CLIENT not in out
