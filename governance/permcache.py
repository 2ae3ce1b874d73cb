"""A shared cache of each user's permissions and roles, and of API tokens by their hash,
so a governed request does not spend four queries on them.

Entries are keyed by a global version that any change to users' roles, groups' or
users' permissions bumps (signals below), so a change takes effect on the next request
in every process sharing the cache (Redis in production). With the in-process cache of
`make run`, each process sees its own bumps; that server runs one process.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save

from governance.roles import ROLE_NAMES

VERSION_KEY = "mk:perm:version"
TTL_SECONDS = 300


def _key(user_id: int, version: int) -> str:
    return f"mk:perm:{version}:{user_id}"


def prime(user: Any) -> None:
    """Load the user's permissions and roles from the cache (or the database, once)."""
    if getattr(user, "_perm_cache", None) is not None and getattr(user, "_marketerapi_roles", None) is not None:
        return
    version = cache.get(VERSION_KEY) or 0
    key = _key(user.pk, version)
    cached = cache.get(key)
    if cached is None:
        perms = set(user.get_all_permissions()) if user.is_active else set()
        roles = sorted(name for name in user.groups.values_list("name", flat=True) if name in ROLE_NAMES)
        cached = (perms, roles)
        cache.set(key, cached, TTL_SECONDS)
    perms, roles = cached
    # ModelBackend reads `_perm_cache` first (django.contrib.auth.backends).
    user._perm_cache = set(perms)
    user._marketerapi_roles = list(roles)


def _token_key(key_hash: str) -> str:
    return f"mk:tok:{cache.get(VERSION_KEY) or 0}:{key_hash}"


def cached_token(key_hash: str) -> Any:
    """The token (with its user and environment) as last loaded, or None. Any change to a
    token, an environment, a user or a role bumps the version, so revocation, a changed
    expiry or a deactivated owner apply on the next request; expiry by time is checked on
    every request from the cached `expires_at`."""
    return cache.get(_token_key(key_hash))


def cache_token(key_hash: str, token: Any) -> None:
    cache.set(_token_key(key_hash), token, TTL_SECONDS)


def bump(*args: Any, **kwargs: Any) -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 1, None)


def _on_user_saved(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    # Signing in updates last_login only; that changes no right.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    bump()


def _on_token_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    bump()


def connect() -> None:
    from governance.models import ApiToken, Environment

    post_save.connect(_on_token_saved, sender=ApiToken, dispatch_uid="permcache.save.ApiToken")
    post_delete.connect(bump, sender=ApiToken, dispatch_uid="permcache.delete.ApiToken")
    post_save.connect(bump, sender=Environment, dispatch_uid="permcache.save.Environment")
    m2m_changed.connect(bump, sender=User.groups.through, dispatch_uid="permcache.user_groups")
    m2m_changed.connect(bump, sender=User.user_permissions.through, dispatch_uid="permcache.user_perms")
    m2m_changed.connect(bump, sender=Group.permissions.through, dispatch_uid="permcache.group_perms")
    for model in (Group, Permission):
        post_save.connect(bump, sender=model, dispatch_uid=f"permcache.save.{model.__name__}")
        post_delete.connect(bump, sender=model, dispatch_uid=f"permcache.delete.{model.__name__}")
    post_save.connect(_on_user_saved, sender=User, dispatch_uid="permcache.save.User")
    post_delete.connect(bump, sender=User, dispatch_uid="permcache.delete.User")
