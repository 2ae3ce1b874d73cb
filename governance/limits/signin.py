"""Sign-in throttling for the portal and the admin site: after SIGNIN_MAX_FAILURES wrong
passwords for one account, or from one address, within SIGNIN_LOCKOUT_SECONDS, further
attempts are refused for the rest of that window, even with the right password — so a
password cannot be guessed by trying (issue 12: 25 wrong passwords, then success).

Counters live in the cache (Redis in production, shared by every process; the in-memory
cache of `make run` counts per process). A successful sign-in clears the account's counter,
not the address's: an address that tried many accounts stays slowed down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache

from governance.actors import client_ip

logger = logging.getLogger("marketerapi.signin")

PREFIX = "mk:signin:"


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"{PREFIX}{kind}:{digest}"


def _keys(username: str, ip: str | None) -> list[str]:
    keys = [_key("user", username)] if username else []
    return keys + ([_key("ip", ip)] if ip else [])


def seconds_locked(username: str, ip: str | None) -> int:
    """How long sign-ins for this account or from this address are still refused (0: not)."""
    now = time.time()
    longest = 0.0
    for key in _keys(username, ip):
        entry = cache.get(key)
        if entry and entry.get("failures", 0) >= settings.SIGNIN_MAX_FAILURES:
            longest = max(longest, entry["until"] - now)
    return max(0, math.ceil(longest))


def record_failure(username: str, ip: str | None) -> None:
    now = time.time()
    window = settings.SIGNIN_LOCKOUT_SECONDS
    for key in _keys(username, ip):
        entry = cache.get(key) or {"failures": 0, "until": now + window}
        if entry["until"] <= now:
            entry = {"failures": 0, "until": now + window}
        entry["failures"] += 1
        if entry["failures"] >= settings.SIGNIN_MAX_FAILURES:
            # Locked: the window restarts at the failure that locked it.
            entry["until"] = now + window
            logger.warning("sign-in locked for %s after %s failures", key.rsplit(":", 2)[1], entry["failures"])
        cache.set(key, entry, timeout=math.ceil(entry["until"] - now) + 1)


def record_success(username: str) -> None:
    cache.delete(_key("user", username))


class ThrottledSignInForm(AuthenticationForm):
    """Django's sign-in form, refusing while the account or the address is locked out."""

    too_many_attempts = (
        "Too many failed sign-ins for this account or from this address. Try again in %(minutes)s minute(s), "
        "or ask an admin to reset your password."
    )

    locked_out = False

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        ip = client_ip(self.request) if self.request is not None else None
        locked = seconds_locked(username, ip)
        if locked:
            self.locked_out = True
            raise forms.ValidationError(
                self.too_many_attempts,
                code="too_many_attempts",
                params={"minutes": max(1, math.ceil(locked / 60))},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if any(getattr(e, "code", None) == "invalid_login" for e in error.error_list):
                record_failure(username, ip)
            raise
        record_success(username)
        return cleaned
