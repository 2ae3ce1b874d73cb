"""The product's own capability flags: their names, for the code that checks them.

The data migration governance/0006_capability_flags creates them (with their owner and
description in FlagMeta): on for everyone in a sandbox (`on_in_sandbox`), and in other
environments on for the teams an admin adds as the flag's groups (or a percentage, or
everyone). A service checks one through its policy row (`Action(..., flag=EXPORTS_PII)`),
or, when the capability depends on the input (the channel of a campaign), with
`governance.flags.require(actor, CHANNEL_SMS)`.
"""

from __future__ import annotations

CHANNEL_SMS = "channel_sms"
CHANNEL_PUSH = "channel_push"
EXPORTS_PII = "exports_pii"
CAMPAIGN_SCHEDULING = "campaign_scheduling"
DESTINATION_PAYLOAD_PREVIEW = "destination_payload_preview"

CAPABILITY_FLAGS = (CHANNEL_SMS, CHANNEL_PUSH, EXPORTS_PII, CAMPAIGN_SCHEDULING, DESTINATION_PAYLOAD_PREVIEW)

# The flag a campaign's channel needs (email needs none).
CHANNEL_FLAGS = {"sms": CHANNEL_SMS, "push": CHANNEL_PUSH}
