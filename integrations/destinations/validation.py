"""The checks of a destination's settings, shared by its services (and so by the API and
the admin), and the target rules checked again before every call.

`validate` reports every problem at once (InvalidDestination, 422): each with a pointer
(`/name`, `/adapter`, `/config/…`, `/credentials…`), a code and a hint — the adapter's own
config checks (`validate_config`), where it may point from its environment
(`target_problems`: in a sandbox only file and webhook adapters, at local targets; elsewhere
public https addresses and the configured file roots, integrations/egress.py) and the
credentials' (stored or named as a `DESTINATION_…` variable).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.models import Environment
from integrations import adapters
from integrations.adapters.base import ConfigProblem, TargetRefused
from integrations.destinations import credentials as credentials_store
from integrations.destinations.errors import InvalidDestination
from integrations.models import Destination


def _problem(pointer: str, code: str, message: str, hint: str) -> dict[str, str]:
    return {"pointer": pointer, "code": code, "message": message, "hint": hint}


def _problems_of(problems: Iterable[ConfigProblem], prefix: str) -> list[dict[str, str]]:
    return [p.as_error(prefix) for p in problems]


def validate(
    *,
    environment: Environment,
    name: str,
    adapter: str,
    config: Any,
    credentials: Any = None,
    credentials_env: str | None = None,
    has_stored_credentials: bool = False,
    exclude_id: int | None = None,
) -> None:
    """Raise InvalidInput listing every problem of a destination's settings at once."""
    errors: list[dict[str, str]] = []
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors.append(_problem("/name", "invalid_name", "A name has 1 to 100 characters.", "Use e.g. braze-eu."))
    elif (
        Destination.objects.filter(environment=environment, name=name)
        .exclude(pk__in=[exclude_id] if exclude_id is not None else [])
        .exists()
    ):
        errors.append(
            _problem(
                "/name",
                "name_taken",
                f"{environment.slug} already has a destination named {name!r}.",
                "Choose another name, or change the existing destination (PATCH /api/v1/destinations/{id}).",
            )
        )
    cls = adapters.get(adapter)
    if cls is None:
        errors.append(
            _problem(
                "/adapter",
                "unknown_adapter",
                f"There is no adapter {adapter!r}.",
                f"Use one of: {', '.join(adapters.names())}.",
            )
        )
    elif environment.is_sandbox and not cls.sandbox_allowed:
        errors.append(
            _problem(
                "/adapter",
                "sandbox_adapter_not_allowed",
                f"Sandbox destinations never reach a real vendor, so the {adapter} adapter is not available in "
                f"{environment.slug}.",
                f"In a sandbox use {' or '.join(adapters.sandbox_names())} pointed at a local target (a loopback "
                f"URL or a local directory); create the {adapter} destination in pilot or production.",
            )
        )
    if cls is not None:
        config_problems = cls.validate_config(config)
        errors.extend(_problems_of(config_problems, "/config"))
        if not config_problems and (cls.sandbox_allowed or not environment.is_sandbox):
            targets = cls.target_problems(cls.resolved(config), sandbox=environment.is_sandbox)
            errors.extend(_problems_of(targets, "/config"))
        if credentials is not None and credentials_env:
            errors.append(
                _problem(
                    "/credentials_env",
                    "credentials_twice",
                    "Send either `credentials` or `credentials_env`, not both.",
                    "Keep the one you use: stored (encrypted) credentials, or the name of an environment variable.",
                )
            )
        if credentials is not None:
            errors.extend(_problems_of(cls.validate_credentials(credentials), "/credentials"))
        if credentials_env:
            problem = credentials_store.env_name_problem(credentials_env)
            if problem:
                errors.append(
                    _problem(
                        "/credentials_env",
                        "invalid_credentials_env",
                        problem,
                        f"Name the variable {credentials_store.ENV_PREFIX}<SOMETHING>, set it in the web and worker "
                        "processes, and send that name.",
                    )
                )
        needs = any(cls.credential_keys.values())
        if needs and credentials is None and not credentials_env and not has_stored_credentials:
            errors.append(
                _problem(
                    "/credentials",
                    "credentials_required",
                    f"The {adapter} adapter needs credentials.",
                    cls._credentials_hint() + " Or send `credentials_env` naming an environment variable that holds "
                    "them.",
                )
            )
    if errors:
        raise InvalidDestination(f"The destination has {len(errors)} problem(s); nothing was saved.", errors=errors)


def target_guard(destination: Destination) -> None:
    """Before every call: the destination still points where its environment may send, even
    a row that predates the rules or was changed behind the services' back. (The adapters'
    HTTP client checks every connection as well: DNS may change after this.)"""
    sandbox = destination.environment.is_sandbox
    cls = adapters.get(destination.adapter)
    if cls is None:
        return  # adapters.build reports it
    if sandbox and not cls.sandbox_allowed:
        problems = [ConfigProblem("/adapter", "sandbox_adapter_not_allowed", "", "")]
    else:
        problems = cls.target_problems(cls.resolved(destination.config), sandbox=sandbox)
    if not problems:
        return
    if sandbox:
        raise TargetRefused(
            f"{destination.name} is a sandbox destination that does not point at a local target; nothing was sent.",
            hint="In a sandbox use the file adapter or a webhook at 127.0.0.1/localhost (PATCH its config).",
        )
    raise TargetRefused(
        f"{destination.name}: nothing was sent. {problems[0].message}",
        hint=f"{problems[0].hint} Then PATCH the destination's config.",
    )
