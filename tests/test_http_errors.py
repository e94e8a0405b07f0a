"""The one error renderer (routes/errors.py): every JSON refusal in our shape, FastAPI's own
answers translated, and the shape of the package that keeps it so."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from .conftest import create_user, login

PACKAGE = Path(__file__).resolve().parent.parent / "auth_service"


def _our_shape(response: httpx.Response) -> dict[str, str]:
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "error_description", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"
    return body


@pytest.mark.parametrize(
    ("json", "field", "problem"),
    [
        ({"password": "x"}, "username", "field required"),
        ({"username": 5, "password": "x"}, "username", "input should be a valid string"),
        ({"username": "a", "password": ""}, "password", "at least 1 character"),
        ({"username": "a" * 129, "password": "x"}, "username", "at most 128 characters"),
    ],
)
async def test_a_field_that_does_not_fit_is_a_422_naming_it(
    client: httpx.AsyncClient, json: dict[str, object], field: str, problem: str
) -> None:
    response = await client.post("/api/v1/auth/login", json=json)
    assert response.status_code == 422
    body = _our_shape(response)
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith(f"{field}: ")
    assert problem in body["error_description"]
    assert "pydantic" not in response.text and "loc" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/login", "GET, HEAD, POST"),
        ("DELETE", "/logout", "GET, HEAD, POST"),
        ("GET", "/api/v1/auth/login", "POST"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
async def test_a_405_names_every_method_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert _our_shape(response)["error"] == "method_not_allowed"


async def test_unknown_paths_and_oversized_bodies_keep_our_shape(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/no/such/page")
    assert missing.status_code == 404 and _our_shape(missing)["error"] == "not_found"
    large = await client.post(
        "/api/v1/auth/refresh",
        content=b"{}" + b" " * 9000,
        headers={"content-type": "application/json"},
    )
    assert large.status_code == 413 and _our_shape(large)["error"] == "request_too_large"
    typed = await client.post(
        "/api/v1/auth/refresh", content=b"x", headers={"content-type": "text/plain"}
    )
    assert typed.status_code == 415 and _our_shape(typed)["error"] == "unsupported_media_type"


async def test_a_logout_with_a_token_still_refuses_a_body_of_the_wrong_shape(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The body is optional beside a Bearer token, but one that is sent must be valid."""
    await create_user(database_url, "alice")
    token = await login(client, "alice")
    bearer = {"authorization": f"Bearer {token}"}
    wrong = await client.post("/api/v1/auth/logout", json={"refresh_token": 5}, headers=bearer)
    assert wrong.status_code == 422
    assert _our_shape(wrong)["error_description"].startswith("refresh_token: ")
    still = await client.get("/api/v1/auth/validate", headers=bearer)
    assert still.status_code == 200  # the refused logout ended nothing
    ended = await client.post("/api/v1/auth/logout", headers=bearer)
    assert ended.status_code == 200 and ended.json() == {"status": "logged_out"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_route_imports_the_application_or_reads_its_state() -> None:
    """Routes reach the runtime through ``dependencies.get_runtime`` and never import the
    application module (which imports them): no cycle, one typed way in."""
    for module in sorted((PACKAGE / "routes").glob("*.py")):
        imports = _imports(module)
        assert "..app" not in imports and "auth_service.app" not in imports, module.name
        if module.name != "dependencies.py":
            assert "app.state" not in module.read_text(), module.name


def test_domain_modules_do_not_import_the_web_framework() -> None:
    for module in ("login.py", "runtime.py", "errors.py", "sessions.py", "policy.py"):
        imports = _imports(PACKAGE / module)
        assert not {i for i in imports if i.split(".")[0] in {"fastapi", "starlette"}}, module
