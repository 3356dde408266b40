"""Every emulator, by slug (the connector's slug). A new emulator is one line here."""

from __future__ import annotations

from inflow.sandbox import example, powerbi
from inflow.sandbox.emulator import Emulator

EMULATORS: dict[str, Emulator] = {
    "example": example.EMULATOR,
    "powerbi": powerbi.EMULATOR,
}
