"""notifier: localized deadline announcements by email and push, in scheduled waves.

The public surface: load a campaign, plan it, import an audience, dispatch due messages.
"""

from notifier.campaign import Campaign, Deadline, Delivery, Wave, load_campaign, parse_campaign
from notifier.config import Settings, load_settings
from notifier.errors import (
    AudienceError,
    CampaignError,
    CampaignStateError,
    ConfigError,
    DeliveryError,
    NotifierError,
    UserError,
)
from notifier.planner import PlannedSend, RecipientPlan, ZonePlan, plan_recipient, plan_zone

__version__ = "0.1.0"

__all__ = [
    "AudienceError",
    "Campaign",
    "CampaignError",
    "CampaignStateError",
    "ConfigError",
    "Deadline",
    "Delivery",
    "DeliveryError",
    "NotifierError",
    "PlannedSend",
    "RecipientPlan",
    "Settings",
    "UserError",
    "Wave",
    "ZonePlan",
    "__version__",
    "load_campaign",
    "load_settings",
    "parse_campaign",
    "plan_recipient",
    "plan_zone",
]
