"""The workflows adoption is measured on: how each starts and finishes in the audit trail,
and which request-log routes belong to it (for self-resolved errors).

Adding a workflow is one line: campaigns and exports are here already, with the action
names of PRODUCT.md; they count as soon as their services record those actions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workflow:
    name: str
    label: str
    # The audit target type (`app_label.model`) of the object the workflow is about.
    target_type: str
    # The audit actions that start and finish one instance, on the same target.
    start: str
    finish: str
    # Request-log routes (URL pattern names) of the workflow, by prefix: API and portal.
    route_prefixes: tuple[str, ...]


WORKFLOWS: tuple[Workflow, ...] = (
    Workflow(
        "audience", "Audience created → published", "audiences.audience", "audience.create", "audience.published",
        ("audience-", "portal-audiences:"),
    ),
    Workflow(
        "campaign", "Campaign created → activated", "campaigns.campaign", "campaign.create", "campaign.activated",
        ("campaign-", "portal-campaigns:"),
    ),
    Workflow(
        "export", "Export requested → downloaded", "audiences.export", "export.create", "export.download",
        ("export-", "portal-exports:"),
    ),
)  # fmt: skip

BY_NAME = {workflow.name: workflow for workflow in WORKFLOWS}


def workflow_of_route(route: str) -> Workflow | None:
    """The workflow a request-log route belongs to, or None."""
    for workflow in WORKFLOWS:
        if route.startswith(workflow.route_prefixes):
            return workflow
    return None
