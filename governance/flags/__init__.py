"""Feature flags (django-waffle) as governed configuration: `services` (every write: flags'
settings, adding and deleting flags, switches and samples, metadata), `selectors` (reads,
and the one reading of a flag for an actor), `rollout` (who has a flag, and what a change
does to that), `gates` (FlagRequired and @flag_required for views), `errors`.
docs/flags.md is the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from governance.actors import Actor


def require(actor: Actor, name: str) -> None:
    """`governance.flags.require(actor, "channel_sms")`: 403 `feature_disabled` ("ask an admin
    to turn on channel_sms for your team") unless the flag is on for the actor. See
    governance/flags/gates.py require_flag."""
    from governance.flags.gates import require_flag

    require_flag(actor, name)
