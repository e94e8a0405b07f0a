"""Deployment files: the Dockerfile, docker-compose.yml, monitoring and Kubernetes manifests.

No container runtime or cluster is needed: the files are read as data and checked for what a
user would hit first (a service that cannot reach its database, a missing mount, a probe on the
wrong path, identity headers a client could forge). Built-in Kubernetes kinds are validated
strictly against the offline schemas of ``kubernetes-validate``; Traefik's CRDs have no schema
there, so their structure is checked by hand.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from auth_service.cache import IDENTITY_HEADERS as _IDENTITY
from auth_service.errors import ConfigurationError
from auth_service.key_encryption import parse_key_text

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "kubernetes"

# The oldest and a recent Kubernetes minor: manifests must be valid on both.
KUBERNETES_VERSIONS = ("1.29", "1.34")
TRAEFIK_API_VERSION = "traefik.io/v1alpha1"
TRAEFIK_KINDS = {"Middleware", "IngressRoute"}
# Every header auth-service sets on a 200 (the package's one list, and the request id).
# Traefik deletes the client's copy of each listed header before forwarding; one left out
# could be forged by any client.
IDENTITY_HEADERS = [
    *("-".join(part.title() for part in name.decode().split("-")) for name in _IDENTITY),
    "X-Request-Id",
]

Doc = dict[str, Any]


# -- helpers ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``$$``, as with the given environment."""
    env = env or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group("name"), match.group("default")
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}", substitute, value)


def environment(service: Doc) -> dict[str, str]:
    """A compose service's environment (list or mapping form), interpolated with defaults."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): interpolate(str(v)) for k, v in raw.items()}


def published_ports(service: Doc) -> set[tuple[int, int]]:
    """(host, container) pairs of a compose service's short-syntax ``ports``."""
    pairs = set()
    for entry in service.get("ports", []):
        host, container = str(entry).rsplit(":", 2)[-2:]
        pairs.add((int(host), int(container.split("/")[0])))
    return pairs


def bind_mounts(compose: Doc) -> list[tuple[str, str, str, str]]:
    """(service, local path, container path, options) of every short-syntax bind mount."""
    mounts = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target, *options = str(volume).split(":")
            if source.startswith((".", "/")):
                mounts.append((name, source, target, ",".join(options)))
    return mounts


def mount_target(compose: Doc, service: str, local: str) -> str:
    """Where ``local`` (a path as written in the compose file) appears in ``service``."""
    for name, source, target, _ in bind_mounts(compose):
        if name == service and source == local:
            return target
    raise AssertionError(f"{service} does not mount {local}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage (the image that runs)."""
    instructions = dockerfile_instructions()
    start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[start:]


def exec_form(args: str) -> list[str]:
    """The JSON (exec form) arguments of CMD / HEALTHCHECK CMD."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"not in exec (JSON) form, so signals would not reach the server: {args}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def resource(kind: str, name: str | None = None, *, path: Path | None = None) -> Doc:
    """The one manifest of ``kind`` (and ``name``) in ``path`` or in the kustomization."""
    paths = [path] if path else kustomization_resources()
    found = [
        doc
        for p in paths
        for doc in manifests(p)
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kustomization_resources() -> list[Path]:
    return [K8S_DIR / name for name in load_yaml(K8S_DIR / "kustomization.yaml")["resources"]]


def container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Doc = containers[0]
    return result


@pytest.fixture(scope="module")
def compose() -> Doc:
    data: Doc = load_yaml(COMPOSE_FILE)
    return data


# -- Dockerfile -------------------------------------------------------------------------------


def test_image_runs_the_server_on_all_interfaces() -> None:
    stage = final_stage()
    assert stage[0][1].split()[0] == "python:3.11-slim"
    cmds = [args for keyword, args in stage if keyword == "CMD"]
    assert cmds, "the image has no CMD"
    argv = exec_form(cmds[-1])
    assert argv[:2] == ["auth-service", "serve"]
    # The default host is 127.0.0.1: unreachable from the proxy's container.
    assert option(argv, "--host") == "0.0.0.0"  # noqa: S104
    exposed = {args.split("/")[0] for keyword, args in stage if keyword == "EXPOSE"}
    assert option(argv, "--port") in exposed
    # The command exists once the package is installed.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "auth-service" in pyproject["project"]["scripts"]


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    # Numeric, or Kubernetes' runAsNonRoot refuses to start a pod without runAsUser.
    assert uid.isdigit() and int(uid) != 0


def test_image_healthcheck_probes_liveness_on_the_served_port() -> None:
    stage = final_stage()
    checks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    _, _, command = checks[0].partition("CMD ")
    probe = " ".join(exec_form(command))
    port = option(exec_form(next(a for k, a in reversed(stage) if k == "CMD")), "--port")
    assert f"http://127.0.0.1:{port}/health/live" in probe
    assert "urllib" in probe  # the slim image has no curl or wget


def test_image_build_copies_what_pip_install_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {pyproject["project"]["readme"], "pyproject.toml"}
    needed |= set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied: set[str] = set()
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources = shlex.split(args)[:-1]
            copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    assert needed <= copied, f"not copied into the build: {sorted(needed - copied)}"
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for source in sorted(copied):
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        excluded = [p for p in ignored if fnmatch.fnmatch(source, p.rstrip("/"))]
        assert not excluded, f"COPY {source} is excluded by .dockerignore {excluded}"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    # The embedded database folder holds signing keys and password hashes.
    for path in (".auth-service", ".git", ".venv", ".env"):
        assert path in ignored


# -- docker-compose.yml -----------------------------------------------------------------------


def test_compose_services(compose: Doc) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "auth-service",
        "traefik",
        "whoami",
        "prometheus",
        "grafana",
    }
    assert compose["services"]["auth-service"]["build"] == "."


def test_compose_published_ports(compose: Doc) -> None:
    published = {
        name: published_ports(service)
        for name, service in compose["services"].items()
        if published_ports(service)
    }
    # PostgreSQL (with a development password) and auth-service itself stay unpublished:
    # the way in is Traefik on port 80.
    assert published == {
        "traefik": {(80, 80), (8081, 8080)},
        "prometheus": {(9090, 9090)},
        "grafana": {(3000, 3000)},
    }


def test_auth_service_reaches_the_compose_postgres(compose: Doc) -> None:
    services = compose["services"]
    url = urlsplit(environment(services["auth-service"])["AUTH_DATABASE_URL"])
    db = environment(services["postgres"])
    assert url.scheme in {"postgresql", "postgres"}
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == db["POSTGRES_USER"]
    assert url.password == db["POSTGRES_PASSWORD"]
    assert url.path == "/" + db["POSTGRES_DB"]
    # One variable sets both sides, so overriding it cannot break the connection.
    raw_url = str(services["auth-service"]["environment"]["AUTH_DATABASE_URL"])
    raw_password = str(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert raw_password.startswith("${AUTH_DB_PASSWORD:-")
    assert raw_password in raw_url
    overridden = interpolate(raw_url, {"AUTH_DB_PASSWORD": "from-the-shell"})
    assert urlsplit(overridden).password == "from-the-shell"


def test_auth_service_waits_for_a_healthy_postgres(compose: Doc) -> None:
    services = compose["services"]
    assert services["auth-service"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    probe = " ".join(services["auth-service"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/health/" in probe


def test_postgres_data_survives_restarts(compose: Doc) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    named = [v.split(":")[0] for v in volumes if v.endswith(":/var/lib/postgresql/data")]
    assert len(named) == 1 and named[0] in compose["volumes"]


def test_auth_service_demo_settings(compose: Doc) -> None:
    env = environment(compose["services"]["auth-service"])
    assert env["AUTH_PUBLIC_URL"] == "http://auth.demo.localhost"
    # The demo is plain HTTP: a Secure cookie would never come back.
    assert env["AUTH_COOKIE_SECURE"] == "false"
    # Browsers refuse a cookie for a single label such as "localhost" (a public suffix to
    # them); tests/browser/ signs in with these settings in Chromium.
    assert env["AUTH_COOKIE_DOMAIN"] == "demo.localhost"
    assert env["AUTH_ALLOWED_REDIRECT_DOMAINS"] == ".demo.localhost"
    assert env["AUTH_LOG_FORMAT"] == "json"


@pytest.mark.parametrize(
    ("service", "source", "target", "options"),
    bind_mounts(load_yaml(COMPOSE_FILE)),
    ids=lambda value: str(value),
)
def test_bind_mounted_paths_exist(service: str, source: str, target: str, options: str) -> None:
    # A missing file would be created by Docker as an empty directory, and the container
    # would fail with a confusing error.
    assert (ROOT / source).exists(), f"{service} mounts {source}, which does not exist"
    assert "ro" in options.split(","), f"{service} can write to {source}"


def test_traefik_reads_its_mounted_configuration(compose: Doc) -> None:
    assert compose["services"]["traefik"]["image"].startswith("traefik:v3.")
    targets = {
        source: mount_target(compose, "traefik", source)
        for source in ("./traefik/traefik.yml", "./traefik/dynamic.yml")
    }
    assert targets == {
        "./traefik/traefik.yml": "/etc/traefik/traefik.yml",
        "./traefik/dynamic.yml": "/etc/traefik/dynamic.yml",
    }


# -- monitoring -------------------------------------------------------------------------------


def test_prometheus_scrapes_auth_service(compose: Doc) -> None:
    config = load_yaml(ROOT / "monitoring" / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["auth-service"]
    assert job["scrape_interval"] == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {
        f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]
    }
    targets |= {t for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert targets == {"auth-service:8080"}
    assert "auth-service" in compose["services"]


def test_prometheus_loads_rules_from_the_mounted_folder(compose: Doc) -> None:
    config = load_yaml(ROOT / "monitoring" / "prometheus" / "prometheus.yml")
    folder = mount_target(compose, "prometheus", "./monitoring/prometheus/rules")
    assert config["rule_files"] == [f"{folder}/*.yml"]
    config_target = mount_target(compose, "prometheus", "./monitoring/prometheus/prometheus.yml")
    assert config_target == "/etc/prometheus/prometheus.yml"  # the image's default


def test_grafana_provisioning(compose: Doc) -> None:
    provisioning = ROOT / "monitoring" / "grafana" / "provisioning"
    assert mount_target(compose, "grafana", "./monitoring/grafana/provisioning") == (
        "/etc/grafana/provisioning"
    )
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"  # what dashboards reference
    assert source["url"] == "http://prometheus:9090"
    assert (9090, 9090) in published_ports(compose["services"]["prometheus"])

    (provider,) = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    dashboards = mount_target(compose, "grafana", "./monitoring/grafana/dashboards")
    assert provider["options"]["path"] == dashboards

    env = environment(compose["services"]["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"  # viewing, not editing


# -- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_is_valid(path: Path, version: str) -> None:
    docs = manifests(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert not doc["metadata"].get("namespace"), "namespace is chosen at apply time"
        if doc["kind"] in TRAEFIK_KINDS:
            assert doc["apiVersion"] == TRAEFIK_API_VERSION
            assert doc["metadata"]["name"]
            continue  # no schema offline: checked by the tests below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            pytest.fail(f"{path.name}: {doc['kind']} {where}: {e.message}")


def test_kustomization_lists_the_manifests_but_not_the_templates() -> None:
    listed = {p.name for p in kustomization_resources()}
    templates = {p.name for p in manifest_files() if p.name.endswith(".example.yaml")}
    assert templates == {"secret.example.yaml", "ingressroute.example.yaml"}
    assert listed == {p.name for p in manifest_files()} - templates
    kinds = {doc["kind"] for path in kustomization_resources() for doc in manifests(path)}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Middleware",
        "IngressRoute",
    }


def test_deployment_probes_and_replicas() -> None:
    deployment = resource("Deployment", "auth-service")
    assert deployment["spec"]["replicas"] >= 2
    main = container(deployment)
    # Validate answers from memory during a database outage: readiness must not need it.
    assert main["readinessProbe"]["httpGet"]["path"] == "/health/validate"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in main:
            assert main[probe]["httpGet"]["port"] in {*ports, *ports.values()}
    assert ports["http"] == 8080  # the image's CMD port


def test_deployment_runs_locked_down() -> None:
    deployment = resource("Deployment", "auth-service")
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    context = main["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True or context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    resources = main["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_deployment_configuration() -> None:
    deployment = resource("Deployment", "auth-service")
    env = {item["name"]: item for item in container(deployment)["env"]}
    # From the Secret that secret.example.yaml describes, never inline.
    secret = resource("Secret", path=K8S_DIR / "secret.example.yaml")
    ref = env["AUTH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] == "auth-service-database"
    assert ref["key"] == "url" and "url" in secret["stringData"]
    # The key-encryption key too: with an external database the service needs one.
    ref = env["AUTH_KEY_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    # The other settings come from the ConfigMap (tests/test_deploy_kubernetes.py).
    (source,) = container(deployment)["envFrom"]
    settings = resource("ConfigMap", source["configMapRef"]["name"])["data"]
    assert settings["AUTH_LOG_FORMAT"] == "json"
    assert settings["AUTH_TRUSTED_PROXIES"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == 8080


def test_secret_template_holds_no_credential() -> None:
    secret = resource("Secret", path=K8S_DIR / "secret.example.yaml")
    url = urlsplit(secret["stringData"]["url"])
    assert url.scheme == "postgresql"
    assert url.password == "CHANGE-ME"
    assert url.hostname and url.hostname.endswith(".example.internal")
    # A placeholder the service refuses, so that a copy applied unchanged cannot start.
    with pytest.raises(ConfigurationError):
        parse_key_text(secret["stringData"]["key-encryption-key"], "AUTH_KEY_ENCRYPTION_KEY")


def test_compose_gives_auth_service_a_key_encryption_key(compose: Doc) -> None:
    """Compose uses an external PostgreSQL: without a KEK auth-service would not start. The
    development default is a valid key, and the shell's AUTH_KEY_ENCRYPTION_KEY wins."""
    raw = str(compose["services"]["auth-service"]["environment"]["AUTH_KEY_ENCRYPTION_KEY"])
    assert raw.startswith("${AUTH_KEY_ENCRYPTION_KEY:-")
    parse_key_text(interpolate(raw), "AUTH_KEY_ENCRYPTION_KEY")
    assert interpolate(raw, {"AUTH_KEY_ENCRYPTION_KEY": "from-the-shell"}) == "from-the-shell"


def test_selectors_match_the_pods() -> None:
    deployment = resource("Deployment", "auth-service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    pdb = resource("PodDisruptionBudget", "auth-service")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # The budget leaves at least two replicas serving during a voluntary disruption.
    replicas = deployment["spec"]["replicas"]
    spec = pdb["spec"]
    assert spec.get("minAvailable", replicas - spec.get("maxUnavailable", replicas)) >= 2
    service = resource("Service", "auth-service")
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_service_port_reaches_the_container() -> None:
    service = resource("Service", "auth-service")
    ports = {p["name"]: p["containerPort"] for p in container(resource("Deployment"))["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    assert port["targetPort"] in {*ports, *ports.values()}


def test_middleware_forwards_to_validate_and_copies_identity_headers() -> None:
    middleware = resource("Middleware", "auth")
    forward = middleware["spec"]["forwardAuth"]
    address = urlsplit(forward["address"])
    service = resource("Service", "auth-service")
    host = address.hostname or ""
    assert host == service["metadata"]["name"] or host.startswith(service["metadata"]["name"] + ".")
    assert address.port == service["spec"]["ports"][0]["port"]
    assert address.path == "/api/v1/auth/validate"
    headers = forward["authResponseHeaders"]
    assert "X-Auth-User" in headers and "X-Auth-Groups" in headers
    missing = [h for h in IDENTITY_HEADERS if h not in headers]
    assert not missing, f"clients could forge {missing}"


def _headers_validate_reads() -> tuple[set[str], set[str]]:
    """The client's headers validate reads, and those only a trusted proxy may set."""
    from auth_service.routes.validate import _WANTED, CLIENT_HEADER_NAMES, PROXY_HEADER_NAMES

    assert set(_WANTED) == CLIENT_HEADER_NAMES | PROXY_HEADER_NAMES  # each read is one or other
    return {n.decode() for n in CLIENT_HEADER_NAMES}, {n.decode() for n in PROXY_HEADER_NAMES}


@pytest.mark.parametrize("where", ["traefik/dynamic.yml", "deploy/kubernetes/middleware.yaml"])
def test_traefik_sends_validate_every_client_header_it_reads(where: str) -> None:
    """authRequestHeaders filters what reaches validate: a header validate reads but the
    filter drops would silently stop working behind Traefik (cookies, browser redirects); a
    header only a proxy may set (X-Request-Id) would come from the client (issue 16, L1)."""
    if where.startswith("traefik"):
        forward = load_yaml(ROOT / where)["http"]["middlewares"]["auth"]["forwardAuth"]
    else:
        forward = resource("Middleware", "auth")["spec"]["forwardAuth"]
    sent = {h.lower() for h in forward["authRequestHeaders"]}
    client_headers, proxy_headers = _headers_validate_reads()
    assert sent == client_headers
    assert not sent & proxy_headers


def routes(ingress_route: Doc) -> list[Doc]:
    result: list[Doc] = ingress_route["spec"]["routes"]
    for route in result:
        assert route["kind"] == "Rule"
        assert re.match(r"Host\(`[^`]+`\)", route["match"]), route["match"]
        assert route["services"] and all(s["name"] and s["port"] for s in route["services"])
    return result


def test_login_host_routes_to_auth_service() -> None:
    service = resource("Service", "auth-service")
    (route,) = routes(resource("IngressRoute", "auth-service"))
    (backend,) = route["services"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"] == service["spec"]["ports"][0]["port"]
    # The login page itself must not sit behind the gate it serves; a client's X-Request-Id
    # must not reach it (issue 16, L1).
    names = [m["name"] for m in route.get("middlewares", [])]
    assert "auth" not in names
    stripping = resource("Middleware", "no-client-request-id")["spec"]["headers"]
    assert names == ["no-client-request-id"]
    assert stripping == {"customRequestHeaders": {"X-Request-Id": ""}}


def test_login_host_routes_what_the_compose_stack_routes() -> None:
    """The login host routes only the login pages, the JSON auth API and the JWKS (issue 16,
    L6), by the same rule as traefik/dynamic.yml, which the end-to-end tests run."""
    (route,) = routes(resource("IngressRoute", "auth-service"))
    compose_rule = load_yaml(ROOT / "traefik" / "dynamic.yml")["http"]["routers"]["auth"]["rule"]
    assert route["match"].replace("auth.example.com", "auth.demo.localhost") == compose_rule
    for internal in ("/metrics", "/health", "/openapi.json", "/api/v1/auth/validate"):
        assert f"`{internal}`" not in compose_rule


def test_example_app_route_is_protected_by_the_middleware() -> None:
    """Every route of the example site is gated, but for its protected-resource metadata,
    routed by the same rule as traefik/dynamic.yml's (which the end-to-end tests run)."""
    middleware = resource("Middleware", "auth")
    app = resource("IngressRoute", path=K8S_DIR / "ingressroute.example.yaml")
    assert app["apiVersion"] == TRAEFIK_API_VERSION
    metadata, *gated = routes(app)
    compose = load_yaml(ROOT / "traefik" / "dynamic.yml")["http"]["routers"]
    shipped = compose["app-resource-metadata"]
    assert metadata["match"].replace("app.example.com", "app.demo.localhost") == shipped["rule"]
    assert metadata["priority"] == shipped["priority"]
    assert [m["name"] for m in metadata["middlewares"]] == ["no-client-request-id"]
    assert gated
    for route in gated:
        names = [m["name"] for m in route.get("middlewares", [])]
        assert middleware["metadata"]["name"] in names
