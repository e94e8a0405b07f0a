"""deploy/kubernetes as a cluster would run it: the kustomization rendered, the settings the
pods get, and a browser login with exactly those settings.

``render()`` does what ``kubectl kustomize`` does for this base (it lists resources and nothing
else); where kubectl is installed, a test checks that both agree.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from auth_service.app import create_app
from auth_service.settings import Settings

from .conftest import PASSWORD, TEST_KEK, create_user
from .readme import ROOT, section

K8S = ROOT / "deploy" / "kubernetes"
Doc = dict[str, Any]
# The settings without which no browser can log in (issue 17); the README may list more.
LOGIN_SETTINGS = {
    "AUTH_PUBLIC_URL",
    "AUTH_COOKIE_DOMAIN",
    "AUTH_ALLOWED_REDIRECT_DOMAINS",
    "AUTH_TRUSTED_PROXIES",
}


def load_all(name: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]


def render() -> list[Doc]:
    """The resources ``kubectl apply -k deploy/kubernetes`` creates."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unknown, f"render() does not know {sorted(unknown)}: teach it, or use kubectl"
    return [doc for name in kustomization["resources"] for doc in load_all(name)]


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def pod_environment(docs: list[Doc]) -> dict[str, str]:
    """The environment of the auth-service container, as the kubelet builds it: ``envFrom``
    first, then ``env`` (which wins). Secrets come from ``secret.example.yaml``, the template
    of the Secret the operator creates."""
    secrets = {
        d["metadata"]["name"]: d.get("stringData", {}) for d in load_all("secret.example.yaml")
    }
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    (container,) = find(docs, "Deployment", "auth-service")["spec"]["template"]["spec"][
        "containers"
    ]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = maps[ref["name"]][ref["key"]]
    return env


def route_host(route: Doc) -> str:
    """The host of a route's rules: ``Host(`h`)``, alone or narrowed to some paths (one host
    for all of them)."""
    hosts = set()
    for rule in [r["match"] for r in route["spec"]["routes"]]:
        match = re.match(r"Host\(`([^`]+)`\)(?:$| && )", rule)
        assert match, rule
        hosts.add(match.group(1))
    (host,) = hosts
    return host


def readme_settings() -> dict[str, str]:
    """The Kubernetes section's table: setting -> example value."""
    rows = re.findall(r"^\| `(AUTH_\w+)` \| `([^`]*)` \|", section("Kubernetes"), re.MULTILINE)
    return dict(rows)


@pytest.fixture
def pod_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """``Settings`` as a pod builds them from its environment."""
    for name in [n for n in os.environ if n.startswith("AUTH_")]:
        monkeypatch.delenv(name)
    for name, value in pod_environment(render()).items():
        monkeypatch.setenv(name, value)
    yield Settings()


def test_the_manifests_set_every_setting_the_readme_calls_required() -> None:
    documented = readme_settings()
    assert set(documented) >= LOGIN_SETTINGS
    env = pod_environment(render())
    for name, example in documented.items():
        assert env.get(name) == example, (
            f"{name}: README says {example!r}, pods get {env.get(name)!r}"
        )


def test_the_settings_agree_with_the_ingress_routes(pod_settings: Settings) -> None:
    docs = render()
    login_route = find(docs, "IngressRoute", "auth-service")
    login_host = route_host(login_route)
    public = urlsplit(pod_settings.public_url)
    assert public.hostname == login_host
    # Traefik serves the login host on websecure with TLS: the URL, and so the cookie, are secure.
    assert login_route["spec"]["entryPoints"] == ["websecure"] and "tls" in login_route["spec"]
    assert public.scheme == "https" and pod_settings.cookie_secure
    app_host = route_host(load_all("ingressroute.example.yaml")[0])
    domain = pod_settings.cookie_domain or ""
    for host in (login_host, app_host):  # one cookie for both
        assert host == domain or host.endswith("." + domain), host
    assert any(
        app_host == d or (d.startswith(".") and app_host.endswith(d))
        for d in pod_settings.allowed_redirect_domains
    )
    assert pod_settings.database_url is not None
    assert not any(n == ipaddress.ip_network("0.0.0.0/0") for n in pod_settings.trusted_proxies)


async def test_a_browser_logs_in_with_the_pods_settings(
    pod_settings: Settings, database_url: str
) -> None:
    """The whole login, with the rendered settings, from Traefik's pod address: the redirect
    names the login host, the form post is accepted, and the session reaches the app host."""
    await create_user(database_url, "alice", groups=("staff",))
    # The Secret's two values are placeholders: the test database and the tests' KEK instead.
    settings = pod_settings.model_copy(
        update={
            "database_url": SecretStr(database_url),
            "key_encryption_key": SecretStr(TEST_KEK),
        }
    )
    traefik_pod = str(next(settings.trusted_proxies[0].hosts()))
    app_host = route_host(load_all("ingressroute.example.yaml")[0])
    # Where browsers find the login page: the login IngressRoute, over TLS.
    login_origin = f"https://{route_host(find(render(), 'IngressRoute', 'auth-service'))}"
    original = f"https://{app_host}/orders?id=3"
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": app_host,
        "X-Forwarded-Uri": "/orders?id=3",
        "X-Forwarded-Method": "GET",
    }
    browser = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application, client=(traefik_pod, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=settings.public_url) as web:
            first = await web.get("/api/v1/auth/validate", headers={**forwarded, "Accept": browser})
            assert first.status_code == 302
            login = urlsplit(first.headers["location"])
            assert f"{login.scheme}://{login.netloc}{login.path}" == login_origin + "/login"
            assert parse_qs(login.query)["rd"] == [original]

            form = await web.get("/login", params={"rd": original}, headers={"Accept": browser})
            assert form.status_code == 200
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token
            posted = await web.post(
                "/login",
                headers={"Origin": login_origin, "Cookie": _cookies(form)},
                data={
                    "username": "alice",
                    "password": PASSWORD,
                    "csrf_token": token.group(1),
                    "rd": original,
                },
            )
            assert posted.status_code == 303, posted.text
            assert posted.headers["location"] == original
            session = [c for c in posted.headers.get_list("set-cookie") if "Max-Age=0" not in c]
            assert any(f"Domain={settings.cookie_domain}" in c and "Secure" in c for c in session)

            back = await web.get(
                "/api/v1/auth/validate", headers={**forwarded, "Cookie": _cookies(posted)}
            )
            assert back.status_code == 200, back.text
            assert back.headers["x-auth-user"] == "alice"


def _cookies(response: httpx.Response) -> str:
    """The cookies ``response`` set, as a browser sends them back."""
    pairs = [c.split(";", 1)[0] for c in response.headers.get_list("set-cookie")]
    return "; ".join(p for p in pairs if not p.endswith("="))


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubectl_renders_what_render_does() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    )
    by_kubectl = [d for d in yaml.safe_load_all(built.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(by_kubectl, key=key) == sorted(render(), key=key)
