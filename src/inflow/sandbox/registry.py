"""Every emulator, by slug (the connector's slug). A new emulator is one line here."""

from __future__ import annotations

from inflow.sandbox import (
    aircall,
    custom,
    example,
    grafana,
    instagram,
    linkedin,
    looker_studio,
    microsoft_clarity,
    powerbi,
    ringcentral,
    twilio,
)
from inflow.sandbox.emulator import Emulator

EMULATORS: dict[str, Emulator] = {
    "aircall": aircall.EMULATOR,
    "custom": custom.EMULATOR,
    "example": example.EMULATOR,
    "grafana": grafana.EMULATOR,
    "instagram": instagram.EMULATOR,
    "linkedin": linkedin.EMULATOR,
    "looker_studio": looker_studio.EMULATOR,
    "microsoft_clarity": microsoft_clarity.EMULATOR,
    "powerbi": powerbi.EMULATOR,
    "ringcentral": ringcentral.EMULATOR,
    "twilio": twilio.EMULATOR,
}
