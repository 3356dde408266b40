"""Housekeeping: rows that can no longer be used are deleted, so tables stop growing forever.

Login session tokens (one per login) and finished OAuth authorization-code flows are kept by
nobody once they stop working. The scheduler calls
``purge_expired`` about once an hour (``inflow.sync.scheduler``); ``inflow purge`` does it now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from inflow.storage.models import ApiToken, OAuthState

# A finished OAuth flow is kept this long only so a connect that just failed can be looked into;
# ``claim_state`` refuses unknown, used and expired states with one answer, so nothing needs it.
OAUTH_STATE_KEPT = timedelta(hours=1)


def purge_expired(session: Session, now: datetime) -> dict[str, int]:
    """Delete expired login sessions and finished OAuth states; the number deleted of each.

    Session tokens go as soon as ``expires_at <= now``, with no grace period:
    authentication answers an expired token and an unknown one with the same 401 and the same
    message (``inflow.api.deps``: the row is refused when missing or expired, one branch), so
    deleting the row changes no answer. API tokens stay, expired or not: a user made them, lists
    them with their expiry and deletes them (an expired one is refused all the same). OAuth states
    go an hour after they expired or were used. Bulk ``DELETE ... WHERE`` statements, no rows
    loaded; the caller commits.

    The counts are keyed ``session`` and ``oauth_state``: no key says "token", because the log
    redactor masks any key containing that word.
    """
    connection = session.connection()
    counts: dict[str, int] = {}
    expired = delete(ApiToken).where(
        ApiToken.kind == "session", ApiToken.expires_at.is_not(None), ApiToken.expires_at <= now
    )
    counts["session"] = connection.execute(expired).rowcount
    before = now - OAUTH_STATE_KEPT
    finished = delete(OAuthState).where(
        or_(OAuthState.expires_at <= before, OAuthState.used_at <= before)
    )
    counts["oauth_state"] = connection.execute(finished).rowcount
    return counts
