"""``auth-service check-config``: validate a configuration file and list what it declares."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .command import CommandError, load_settings

if TYPE_CHECKING:
    from .command import Commands


def register(commands: Commands) -> None:
    check = commands.add_parser(
        "check-config", help="validate a configuration file, list its rules"
    )
    check.add_argument("file", nargs="?", help="the TOML file (default: AUTH_CONFIG)")
    check.set_defaults(func=check_config_command)


def check_config_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import load_config

    path = Path(args.file) if args.file else load_settings().config
    if path is None:
        raise CommandError("no file given and AUTH_CONFIG is not set")
    config = load_config(path)
    print(f"{path}: valid; {len(config.issuers)} issuer(s), {len(config.rules)} rule(s)")
    for issuer in config.issuers:
        print(
            f"issuer {issuer.issuer}  audience={issuer.audience}  "
            f"username={issuer.username_claim}  groups={issuer.groups_claim}"
        )
    for resource in config.resources:
        guarded = f"  rules={','.join(resource.rules)}" if resource.rules else ""
        print(f"resource {resource.url}  scopes={','.join(resource.scopes)}{guarded}")
    if config.rules:
        print("rules, in evaluation order (the first match decides):")
    for number, rule in enumerate(config.rules, 1):
        conditions = [
            f"host={rule.host}" if rule.host else "",
            f"path={rule.path}" + ("" if rule.case_sensitive else " (any case)"),
            f"methods={','.join(rule.methods)}" if rule.methods else "",
            f"groups={','.join(rule.groups)}" if rule.groups else "",
            f"scopes={','.join(rule.scopes)}" if rule.scopes else "",
        ]
        print(f"{number:3}. {rule.id:24} {rule.allow:14} {' '.join(c for c in conditions if c)}")
    print("otherwise: authenticated")
    return 0
