"""What the README states about the rest of the repository, checked against it: the command
line, the configuration-error example, the docker-compose and Kubernetes values, the
benchmark figures, and the metric labels that monitoring/README.md lists.

Each statement is parsed out of the README and compared with the file or program it
describes, so that either side changing alone fails here.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import yaml

from auth_service.cli import build_parser

from .conftest import auth_service_command, cli_env
from .readme import README, ROOT, fenced_blocks, section

RESULTS = ROOT / "bench" / "RESULTS.md"
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


# -- the command line -------------------------------------------------------------------------


def readme_synopses() -> dict[tuple[str, ...], str]:
    """README "Command line": the command words of each line -> the rest of its synopsis."""
    (block,) = [body for _, body in fenced_blocks(section("Command line"))]
    synopses = {}
    for line in block.splitlines():
        words = line.split("#")[0].split()
        assert words[0] == "auth-service", line
        command = tuple(w for w in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", w))
        synopses[command] = " ".join(words[1 + len(command) :])
    return synopses


def leaf_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command the program has, by its words."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[words] = parser
        for action in subs:
            for name, child in action.choices.items():
                walk(child, (*words, name))

    walk(build_parser(), ())
    return found


def test_the_readme_lists_every_command_with_its_options() -> None:
    synopses = readme_synopses()
    parsers = leaf_parsers()
    assert set(synopses) == set(parsers)
    for command, parser in parsers.items():
        flags = {
            flag
            for action in parser._actions
            for flag in action.option_strings
            if flag.startswith("--") and flag != "--help"
        }
        written = set(re.findall(r"--[a-z][a-z-]*", synopses[command]))
        assert written == flags, f"auth-service {' '.join(command)}: README {written}, {flags}"


def test_exclusive_choices_are_written_as_such() -> None:
    """``(A | B)`` for one of them required, ``[A | B]`` for at most one."""
    synopses = readme_synopses()
    for command, parser in leaf_parsers().items():
        for group in parser._mutually_exclusive_groups:
            members = [
                a.option_strings[0] if a.option_strings else a.metavar for a in group._group_actions
            ]
            opening, closing = ("(", ")") if group.required else ("[", "]")
            brackets = re.findall(rf"\{opening}([^{closing}]*)\{closing}", synopses[command])
            assert any(
                all(re.search(rf"(^|[\s|]){re.escape(str(m))}\b", b) for m in members) and "|" in b
                for b in brackets
            ), f"auth-service {' '.join(command)}: {members} in {synopses[command]}"
            # The program's own usage line says the same.
            usage = parser.format_usage()
            assert opening + " | ".join(str(m) for m in members) in usage.replace(" | - |", " |")


def test_the_configuration_error_example_is_what_the_program_prints(tmp_path: Path) -> None:
    """The README's two example rules and a third with a misspelt ``allow``: its line."""
    text = section("External issuers and access rules")
    (example,) = [line for line in text.splitlines() if line.startswith("auth-service: error:")]
    (toml,) = [body for language, body in fenced_blocks(text) if language == "toml"]
    rules = toml[toml.index("[[rules]]") :]
    assert rules.count("[[rules]]") == 2
    (tmp_path / "auth.toml").write_text(rules + '\n[[rules]]\nid = "third"\nallow = "everyone"\n')
    checked = subprocess.run(
        [*auth_service_command(), "check-config", "auth.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert checked.returncode == 1
    assert checked.stderr.strip() == example


# -- docker-compose and Kubernetes ------------------------------------------------------------


def test_the_compose_walkthrough_matches_the_files() -> None:
    text = section("The whole stack with docker-compose")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for service in re.findall(r"docker compose exec (\S+)", text):
        assert service in services, service
    env = services["auth-service"]["environment"]
    dynamic = (ROOT / "traefik" / "dynamic.yml").read_text()
    for host in set(re.findall(r"http://([a-z0-9.-]+)", text)):
        assert f"Host(`{host}`)" in dynamic, f"Traefik routes no {host}"
    login = re.search(r"login at (http://[a-z0-9.-]+)/login", text)
    assert login and env["AUTH_PUBLIC_URL"] == login.group(1)
    upstream = re.search(r"a demo upstream\s.*?\(`([a-z0-9.-]+)`\)", text, re.DOTALL)
    assert upstream and f"Host(`{upstream.group(1)}`)" in dynamic
    for name in ("PostgreSQL", "Traefik", "Prometheus", "Grafana"):
        assert name.lower() in services or (name == "PostgreSQL" and "postgres" in services)


def test_the_kubernetes_description_matches_the_manifests() -> None:
    text = " ".join(section("Kubernetes").split())
    k8s = ROOT / "deploy" / "kubernetes"
    docs = [
        doc
        for path in k8s.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("metadata")
    ]
    by_kind = {
        doc["kind"]: doc for doc in docs if not doc["metadata"]["name"].startswith("example")
    }
    deployment = by_kind["Deployment"]
    replicas = re.search(r"a Deployment of (\w+) replicas", text)
    assert replicas and NUMBERS[replicas.group(1)] == deployment["spec"]["replicas"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probes = dict(re.findall(r"(readiness|liveness) on `([^`]+)`", text))
    assert probes == {
        "readiness": container["readinessProbe"]["httpGet"]["path"],
        "liveness": container["livenessProbe"]["httpGet"]["path"],
    }
    secret = re.search(r"Secret `([^`]+)`", text)
    refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e]
    assert (
        secret
        and secret.group(1) in refs
        and secret.group(1) == by_kind["Secret"]["metadata"]["name"]
    )
    config_map = re.search(r"ConfigMap `([^`]+)`", text)
    assert config_map
    assert {"configMapRef": {"name": config_map.group(1)}} in container["envFrom"]
    assert f"kubectl rollout restart deployment/{deployment['metadata']['name']}" in text
    assert "kubectl apply -k deploy/kubernetes" in text and (k8s / "kustomization.yaml").exists()


# -- figures ----------------------------------------------------------------------------------

_FIGURE = re.compile(r"(\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?)(x| ms| MiB| bytes)\b")


def _measured_text() -> str:
    """bench/RESULTS.md without its requirements (">= 0.8x"): only what was measured."""
    return re.sub(r"(>=|<=|<|>)\s*\d[\d.,]*\s*(x|ms|MiB)?", "", RESULTS.read_text())


def test_figures_quoted_in_the_readme_are_the_recorded_ones() -> None:
    measured = _measured_text()
    results = RESULTS.read_text()
    quoted = section("Benchmarks") + section("Tokens")
    figures = _FIGURE.findall(quoted)
    assert len(figures) >= 8, figures
    for number, unit in figures:
        following = quoted[quoted.index(number + unit) + len(number + unit) :][:8]
        if following.startswith(" target"):  # a requirement, quoted as one
            assert f">= {number}{unit}" in results, number + unit
        elif unit == " bytes" or number.isdigit():
            assert re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d.,])", measured), number
        else:
            assert number + unit in measured, f"{number}{unit} is not in bench/RESULTS.md"


def test_the_readme_says_which_targets_were_missed() -> None:
    """A target RESULTS.md marks FAIL is not presented as met."""
    results = RESULTS.read_text()
    benchmarks = " ".join(section("Benchmarks").split())
    for line in results.splitlines():
        failed = re.match(r"\d+\. through Traefik\s+(\d\.\d+x)", line)
        if failed and line.rstrip().endswith("FAIL"):
            assert f"{failed.group(1)} of nginx `return 200`, short of" in benchmarks


# -- metric labels ----------------------------------------------------------------------------


def test_monitoring_readme_lists_every_login_outcome() -> None:
    readme_row = re.search(
        r"`auth_login_attempts_total` \| `outcome` \(([^)]*)\)", README.read_text()
    )
    assert readme_row
    outcomes = set(re.findall(r"`(\w+)`", readme_row.group(1)))
    code = "".join(path.read_text() for path in (ROOT / "auth_service").rglob("*.py"))
    assert set(re.findall(r'LOGIN_ATTEMPTS\.labels\("(\w+)"\)', code)) <= outcomes
    monitoring = (ROOT / "monitoring" / "README.md").read_text()
    panel = re.search(
        r"\| Login failures \|.*auth_login_attempts_total.*\(([^)]*)\) \|$",
        monitoring,
        re.MULTILINE,
    )
    assert panel
    assert {o.strip() for o in panel.group(1).split(",")} == outcomes
