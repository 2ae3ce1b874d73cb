"""A shared cache of each user's permissions and roles, and of API tokens by their hash,
so that a governed request spends no query on them.

**One version for everything.** Any change to a token, an environment, a user, a role,
or a group's or user's permissions bumps one global version (signals below): at once,
and again when the transaction that made the change commits, so that a request that
read the old rows while the change was uncommitted cannot cache them under the new
version. Every cached entry carries the version it was loaded under and is used only
while that is still the version, so a change takes effect on the next request in every
process sharing the cache (Redis in production). With the in-process cache of
`make run`, each process sees its own bumps; that server runs one process.

The version starts at a random number (and starts again at one if Redis loses the key),
so a version is never reused: an entry from before a Redis restart cannot match.

**Tokens.** A token is cached with its user and environment, and the user's permissions
and roles, as one entry: pickled in Redis for every process, and in this process's
memory so that a warm request does not even fetch it (each request gets its own copy). An entry from memory is used only
after checking that the version is still current — in the same Redis step as the rate
limiter's count (governance/limits/throttling.py, `count_for_token`), so a warm token request
costs one Redis round trip and no query. Expiry by time is checked on every request from
the cached `expires_at`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import m2m_changed, post_delete, post_save

from governance.roles import ROLE_NAMES

VERSION_KEY = "mk:perm:version"
TTL_SECONDS = 300
# Tokens kept in this process's memory (least recently used dropped first).
LOCAL_TOKENS = 4096


# --- the version ------------------------------------------------------------------------


def current_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        # First use, or Redis lost the key: start from a number never used before.
        cache.add(VERSION_KEY, secrets.randbits(62), None)
        version = cache.get(VERSION_KEY)
    return int(version or 0)


def _incr() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.add(VERSION_KEY, secrets.randbits(62), None)


def bump(*args: Any, **kwargs: Any) -> None:
    """Invalidate every cached permission set and token: now, and after the commit."""
    _incr()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_incr, robust=True)


_version_keys: dict[tuple[Any, ...], str | None] = {}


def redis_version_key() -> str | None:
    """The Redis key of the version, when the cache is the Redis of the rate limiter
    (settings.REDIS_URL), so one Lua step can check it and count a request; else None."""
    url = settings.REDIS_URL
    if not url:
        return None
    config = settings.CACHES.get("default", {})
    location = config.get("LOCATION")
    setup = (
        url,
        config.get("BACKEND"),
        tuple(location) if isinstance(location, list | tuple) else location,
        config.get("KEY_PREFIX"),
        config.get("VERSION"),
        config.get("KEY_FUNCTION"),
    )
    if setup not in _version_keys:
        first = setup[2][0] if isinstance(setup[2], tuple) else setup[2]
        same_redis = str(setup[1] or "").startswith("django_redis.") and first == url
        _version_keys[setup] = str(cache.make_key(VERSION_KEY)) if same_redis else None
    return _version_keys[setup]


# --- users' permissions and roles ---------------------------------------------------------


def _user_key(user_id: int) -> str:
    return f"mk:perm:user:{user_id}"


def _load_user_rights(user: Any) -> tuple[set[str], list[str]]:
    perms = set(user.get_all_permissions()) if user.is_active else set()
    roles = sorted(name for name in user.groups.values_list("name", flat=True) if name in ROLE_NAMES)
    return perms, roles


def prime(user: Any) -> None:
    """Load the user's permissions and roles from the cache (or the database, once):
    one cache round trip."""
    if getattr(user, "_perm_cache", None) is not None and getattr(user, "_marketerapi_roles", None) is not None:
        return
    key = _user_key(user.pk)
    found = cache.get_many([VERSION_KEY, key])
    version = found.get(VERSION_KEY)
    if version is None:
        version = current_version()
    entry = found.get(key)
    if isinstance(entry, tuple) and len(entry) == 3 and entry[0] == int(version):
        _, perms, roles = entry
    else:
        # The version was read before the rows: a change committed meanwhile has bumped it.
        perms, roles = _load_user_rights(user)
        cache.set(key, (int(version), perms, roles), TTL_SECONDS)
    # ModelBackend reads `_perm_cache` first (django.contrib.auth.backends).
    user._perm_cache = set(perms)
    user._marketerapi_roles = list(roles)


# --- tokens ---------------------------------------------------------------------------------


def _token_key(key_hash: str) -> str:
    return f"mk:tok:{key_hash}"


_CONTAINERS = frozenset({dict, list, set})


def _copy_data(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _copy_data(item) for key, item in value.items()}
    if kind is list:
        return [_copy_data(item) for item in value]
    if kind is set:
        return set(value)
    return value


def copy_instance(instance: Any) -> Any:
    """A copy of a model instance, and of the instances in its related-object cache, that
    shares nothing mutable with the original: what unpickling it gives, faster
    (Model.__getstate__ copies the same state, one level less deep)."""
    clone = instance.__class__.__new__(instance.__class__)
    state = instance.__dict__.copy()
    for name, value in state.items():
        if type(value) in _CONTAINERS:
            state[name] = _copy_data(value)
    model_state = state["_state"] = ModelState()
    model_state.__dict__.update(instance._state.__dict__)
    model_state.fields_cache = {
        name: copy_instance(related) if isinstance(related, Model) else related
        for name, related in instance._state.fields_cache.items()
    }
    clone.__dict__.update(state)
    return clone


class _LocalTokens:
    """key_hash → (version, loaded at, token); thread-safe, bounded. The tokens kept here
    are never handed out: callers get copies."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, float, Any]] = OrderedDict()

    def get(self, key_hash: str) -> tuple[int, Any] | None:
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is None:
                return None
            version, loaded, token = entry
            if time.monotonic() - loaded > TTL_SECONDS:
                del self._entries[key_hash]
                return None
            self._entries.move_to_end(key_hash)
            return version, token

    def put(self, key_hash: str, version: int, token: Any) -> None:
        with self._lock:
            self._entries[key_hash] = (version, time.monotonic(), token)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def replace(self, key_hash: str, version: int, token: Any) -> None:
        """New content for an entry, keeping its age (the token's last_used_at moved)."""
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is not None and entry[0] == version:
                self._entries[key_hash] = (version, entry[1], token)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_local = _LocalTokens(LOCAL_TOKENS)


def local_token(key_hash: str) -> tuple[Any, int] | None:
    """(a copy of the token, the version it was cached under) from this process's memory,
    or None. The caller must check that the version is still current (`is_current`, or
    the rate limiter's guarded step) before trusting it."""
    entry = _local.get(key_hash)
    if entry is None:
        return None
    version, token = entry
    return copy_instance(token), version


def is_current(version: int) -> bool:
    return current_version() == version


def load_token(key_hash: str) -> tuple[Any, int]:
    """(the token with its user — permissions and roles primed — and environment, the
    version) from Redis, or from the database (then cached). Raises ApiToken.DoesNotExist."""
    from governance.models import ApiToken

    key = _token_key(key_hash)
    found = cache.get_many([VERSION_KEY, key])
    version = found.get(VERSION_KEY)
    version = current_version() if version is None else int(version)
    entry = found.get(key)
    if isinstance(entry, tuple) and entry[0] == version and isinstance(entry[1], ApiToken):
        token = entry[1]
    else:
        # The version was read before the rows: a change committed meanwhile has bumped it.
        token = ApiToken.objects.select_related("user", "environment").get(key_hash=key_hash)
        perms, roles = _load_user_rights(token.user)
        # The caches Django's ModelBackend and governance.actors read on the user object.
        token.user._perm_cache = perms  # type: ignore[attr-defined]
        token.user._marketerapi_roles = roles  # type: ignore[attr-defined]
        cache.set(key, (version, token), TTL_SECONDS)
    _local.put(key_hash, version, copy_instance(token))
    return token, version


def token_used(key_hash: str, token: Any, version: int) -> None:
    """Remember in this process that the token's last_used_at moved."""
    _local.replace(key_hash, version, copy_instance(token))


def forget_local() -> None:
    """Drop this process's copies (tests)."""
    _local.clear()


# --- what invalidates ---------------------------------------------------------------------


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


def prime_from_database(user: Any) -> None:
    """`prime` without the cache: the user's permissions and roles read from the database,
    nothing written (the health endpoint while Redis is down, governance/access/auth.py)."""
    perms, roles = _load_user_rights(user)
    user._perm_cache = set(perms)
    user._marketerapi_roles = list(roles)
