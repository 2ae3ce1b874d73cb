"""The refusals of destinations, each with a stable code and a hint (docs/destinations.md).

Bad settings are one InvalidDestination listing every problem, each with a pointer into
the body (`/config/url`), a code of its own and a hint (destinations/validation.py).
"""

from __future__ import annotations

from marketerapi.problems import Conflict, InvalidInput, NotFound


class DestinationNotFound(NotFound):
    code = "destination_not_found"
    hint = "GET /api/v1/destinations/ lists the destinations of your token's environment."


class InvalidDestination(InvalidInput):
    code = "invalid_destination"
    title = "The destination's settings are not valid"
    hint = "Fix each entry in `errors` (its `hint` says how) and send the request again."


class PushNotFailed(Conflict):
    code = "push_not_failed"
    hint = "Discard the dead letter; the push is gone or already being handled."
