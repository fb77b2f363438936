"""Which sender delivers to a destination of each kind: the one registry of them.

Every sender is ``send(context, action) -> Delivery`` (actions.Sender), in the module named
here. They are imported when first needed, so that a worker without a kind's optional
dependencies (aiosmtplib for e-mail) still delivers every other kind.
"""

from __future__ import annotations

import importlib
from typing import Final, cast

from refract.analytics.automations.actions import Sender
from refract.rules.config import DestinationKind

SENDERS: Final[dict[DestinationKind, str]] = {
    "webhook": "refract.analytics.automations.webhook",
    "slack": "refract.analytics.automations.slack",
    "teams": "refract.analytics.automations.teams",
    "email": "refract.analytics.automations.email",
    "hubspot": "refract.analytics.crm.actions",
    "salesforce": "refract.analytics.crm.actions",
}


def sender_for(kind: DestinationKind) -> Sender:
    """The sender of a destination kind; ImportError when its module cannot be loaded."""
    module = importlib.import_module(SENDERS[kind])
    return cast(Sender, module.send)
