"""The governance admin for platform engineers (docs/admin.md), one module per area:
environments, access (tokens, service accounts), approvals (policies, requests), limits
(quotas), flags (waffle's flags, switches and samples, with their metadata), people
(users, roles and teams) and audit (the trail, read-only). Importing this package
registers them all (Django's admin autodiscovery imports `governance.admin`).

Nothing here writes a governed object by itself. Every change goes through a service with
the signed-in person as actor through the `admin` door, in the object's environment (or,
for objects without one, the environment the person switched to, default sandbox): the
policy engine decides and the service writes the audit event. The forms run the same
validators as the services, so a bad value is refused on its field with the sentence the
service would raise; what a form cannot foresee (a refusal by the policy, a race) comes
back as an error message and nothing is saved.
"""

from governance.admin import access, approvals, audit, environments, flags, limits, metrics, people  # noqa: F401
