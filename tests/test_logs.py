"""Logs of a served process: JSON lines with request ids, quiet 401s at INFO, no secrets."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import jwt

from .conftest import PASSWORD, create_user

VALIDATE = "/api/v1/auth/validate"


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def wait_for_line(served: Any, predicate: Any, timeout: float = 5) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = json_lines(served.log_text())
        if any(predicate(r) for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


async def test_debug_lines_carry_request_id_stage_and_error_type(
    database_url: str, serve: Any
) -> None:
    await create_user(database_url, "alice")
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="DEBUG", AUTH_LOG_FORMAT="json")
    with httpx.Client(base_url=served.url) as http:
        login = http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        token = login.json()["access_token"]
        http.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong " + PASSWORD})
        answers = {
            "missing_token": http.get(VALIDATE),
            "malformed_header": http.get(VALIDATE, headers={"Authorization": "Basic Zm9vOmJhcg=="}),
            "invalid_token": http.get(VALIDATE, headers={"Authorization": "Bearer abc.def.ghi"}),
            "allowed": http.get(VALIDATE, headers={"Authorization": f"Bearer {token}"}),
        }
        expired_claims = jwt.decode(token, options={"verify_signature": False})
    assert answers["allowed"].status_code == 200

    last_id = answers["allowed"].headers["x-request-id"]
    records = wait_for_line(served, lambda r: r.get("request_id") == last_id)
    by_id = {r["request_id"]: r for r in records if r.get("logger") == "auth_service.validate"}
    for error_type, response in answers.items():
        record = by_id[response.headers["x-request-id"]]
        assert record["level"] == "DEBUG"
        if error_type == "allowed":
            assert record["auth_stage"] == "policy"
            assert "error_type" not in record
        else:
            assert record["error_type"] == error_type
            assert record["auth_stage"] in {"token_extraction", "token_validation"}
    assert (
        by_id[answers["missing_token"].headers["x-request-id"]]["auth_stage"] == "token_extraction"
    )
    assert (
        by_id[answers["invalid_token"].headers["x-request-id"]]["auth_stage"] == "token_validation"
    )
    assert all("request_id" in r for r in records)

    login_lines = [r for r in records if r.get("request_id") == login.headers["x-request-id"]]
    assert login_lines, "the login request logged nothing under its request id"

    text = served.log_text()
    assert PASSWORD not in text
    assert token not in text
    assert token.split(".")[2] not in text  # not even the signature
    assert expired_claims["jti"] not in text


async def test_expected_401s_stay_out_of_info_logs(database_url: str, serve: Any) -> None:
    await create_user(database_url, "alice")
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="INFO", AUTH_LOG_FORMAT="json")
    with httpx.Client(base_url=served.url) as http:
        for _ in range(20):
            assert http.get(VALIDATE).status_code == 401
            assert http.get(VALIDATE, headers={"Authorization": "Bearer x.y.z"}).status_code == 401
        marker = http.get("/health").headers["x-request-id"]
    time.sleep(0.3)
    records = json_lines(served.log_text())
    assert not [r for r in records if r.get("logger") == "auth_service.validate"]
    assert not [r for r in records if r["level"] in {"WARNING", "ERROR", "CRITICAL"}]
    assert marker  # the service answered throughout


async def test_text_format(database_url: str, serve: Any) -> None:
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="DEBUG", AUTH_LOG_FORMAT="text")
    response = httpx.get(served.url + VALIDATE)
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while f"[{request_id}]" not in served.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in served.log_text().splitlines() if f"[{request_id}]" in line)
    assert "DEBUG auth_service.validate" in line and "refused" in line


async def test_login_lines_name_the_client_behind_the_proxy_and_only_real_users(
    database_url: str, serve: Any
) -> None:
    """Issue 16, H2 and L7: behind a proxy, the client's address, not the proxy's; and a
    password typed into the username field appears nowhere."""
    await create_user(database_url, "alice")
    served = serve(AUTH_DATABASE_URL=database_url, AUTH_LOG_LEVEL="INFO", AUTH_LOG_FORMAT="json")
    typed = "Tr0ub4dor-and-3"  # shaped like a name: it is looked up, and found to be no one's
    with httpx.Client(base_url=served.url) as http:
        ids = [
            http.post(
                "/api/v1/auth/login",
                json={"username": name, "password": "wrong guess"},
                headers={"X-Forwarded-For": f"198.51.100.1, {client}"},  # 127.0.0.1: trusted
            ).headers["x-request-id"]
            for name, client in (("alice", "203.0.113.9"), (typed, "203.0.113.10"))
        ]
    records = wait_for_line(served, lambda r: r.get("request_id") == ids[1])
    alice, other = (
        next(r for r in records if r.get("request_id") == i and r["message"] == "login failed")
        for i in ids
    )
    assert (alice["user"], alice["client_ip"]) == ("alice", "203.0.113.9")
    assert other["client_ip"] == "203.0.113.10" and "user" not in other
    assert re.fullmatch(r"[0-9a-f]{12}", other["name_hash"])
    assert typed not in served.log_text() and typed.lower() not in served.log_text()
