"""Rate limits for Inflow's own routes, with the ``limits`` library.

Memory storage by default (one process); Redis when ``INFLOW_REDIS_URL`` is set, so every API
process shares one count. Over the limit → ``RateLimitExceededError`` carrying ``Retry-After``.
Redis unreachable → ``ServiceUnavailableError`` (503): never fail open, the limits guard login
against guessing. The one exception is the health check, which reports the outage itself.

Login (``LoginGuard``) is limited so that nobody can use the limits to lock the owner out:

| limit                                  | counts                     | over it                       |
|----------------------------------------|----------------------------|-------------------------------|
| per address (``rate_limit_login_ip``)  | every attempt, any account | 429 until the window moves    |
| per account and address                | failures (a success resets)| a wait doubling from          |
|                                        |                            | ``login_backoff_s`` after     |
|                                        |                            | ``login_free_failures``, up to|
|                                        |                            | ``login_backoff_max_s``       |
| per account (``rate_limit_login_account``) | failures from anywhere | 429, but only for addresses   |
|                                        |                            | that never signed in to it    |

So guesses from one address slow down that address alone; guesses from many addresses stop at
the account's ceiling for new addresses, while the addresses its owner signed in from (in the
last ``login_known_days``) keep their own, separate backoff.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItemPerSecond, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from inflow.errors import RateLimitExceededError
from inflow.http.ratelimit import REDIS_OPTIONS, store_errors


class Limiter:
    """Checks and counts hits of a limit string (``"5/minute"``) for a key."""

    def __init__(self, redis_url: str | None = None, namespace: str = "inflow") -> None:
        uri = redis_url if redis_url else "memory://"
        options = {"key_prefix": namespace, **REDIS_OPTIONS} if redis_url else {}
        self.redis_url = redis_url
        self.storage = cast(Storage, storage_from_string(uri, **options))  # a sync uri
        self._limiter = MovingWindowRateLimiter(self.storage)

    @property
    def shared(self) -> bool:
        """Whether the counts live in Redis (shared by every process) rather than in memory."""
        return bool(self.redis_url)

    def hit(self, limit: str, *keys: str) -> None:
        """Count one hit; raise ``RateLimitExceededError`` when the limit is already used up,
        ``ServiceUnavailableError`` when Redis does not answer."""
        item = parse(limit)
        with store_errors(self.redis_url):
            if self._limiter.hit(item, *keys):
                return
            reset_at, _remaining = self._limiter.get_window_stats(item, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitExceededError(
            f"too many requests: limit is {limit}; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def clear(self, limit: str, *keys: str) -> None:
        with store_errors(self.redis_url):
            self._limiter.clear(parse(limit), *keys)

    def reachable(self) -> bool:
        """Whether the store answers a ping (memory always does)."""
        return bool(self.storage.check())

    def reset(self) -> None:
        with store_errors(self.redis_url):
            self.storage.reset()


# Redis hands a moving window's timestamps back rounded to 14 digits (a tenth of a millisecond).
SLACK_S = 0.001


@dataclass(frozen=True)
class LoginPolicy:
    """The login limits (from ``Settings``)."""

    per_address: str = "20/minute"
    per_account: str = "100/hour"
    free_failures: int = 5
    backoff_s: float = 2.0
    backoff_max_s: int = 900
    known_days: int = 30


class LoginGuard:
    """Login limits per address, per account and address (with backoff), and per account."""

    def __init__(self, limiter: Limiter, policy: LoginPolicy) -> None:
        self.limiter = limiter
        self.policy = policy
        # The last failure's time, kept as the one entry of a moving window as long as the
        # longest wait: the window's timestamps are the API process's clock in both stores.
        self._last = RateLimitItemPerSecond(1, max(1, policy.backoff_max_s))

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        return f"login-fails/{email}/{address}", f"login-known/{email}/{address}"

    def wait_s(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row from one address for one account."""
        over = failures - self.policy.free_failures
        if over < 0:
            return 0.0
        return float(min(self.policy.backoff_max_s, self.policy.backoff_s * 2 ** min(over, 32)))

    def check(self, email: str, address: str) -> None:
        """Before the password is checked: ``RateLimitExceededError`` when this address must
        wait, for any account or for this one."""
        self.limiter.hit(self.policy.per_address, "login-ip", address)
        fails_key, known_key = self._keys(email, address)
        storage, strategy = self.limiter.storage, self.limiter._limiter
        with store_errors(self.limiter.redis_url):
            failures = storage.get(fails_key)
            wait = self.wait_s(failures)
            if wait:
                reset_at, remaining = strategy.get_window_stats(
                    self._last, "login-last", email, address
                )
                if remaining < self._last.amount:
                    until = reset_at - self._last.get_expiry() + wait
                    if until - time.time() > SLACK_S:
                        self._refuse(
                            f"{failures} failed logins to this account from your address",
                            math.ceil(until - time.time() - SLACK_S),
                        )
            if storage.get(known_key):
                return
            account = parse(self.policy.per_account)
            if not strategy.test(account, "login-account", email):
                reset_at, _ = strategy.get_window_stats(account, "login-account", email)
                # A window still counts an entry at its very end: retry the second after.
                self._refuse(
                    "too many failed logins to this account from addresses it was never "
                    "signed in from",
                    math.floor(reset_at - time.time() + SLACK_S) + 1,
                )

    def failed(self, email: str, address: str) -> None:
        """Count a wrong password (or an unknown email)."""
        fails_key, _ = self._keys(email, address)
        strategy = self.limiter._limiter
        with store_errors(self.limiter.redis_url):
            self.limiter.storage.incr(fails_key, 86_400)
            strategy.clear(self._last, "login-last", email, address)
            strategy.hit(self._last, "login-last", email, address)
            strategy.hit(parse(self.policy.per_account), "login-account", email)

    def succeeded(self, email: str, address: str) -> None:
        """A right password: this address starts afresh and is known to the account."""
        fails_key, known_key = self._keys(email, address)
        storage = self.limiter.storage
        with store_errors(self.limiter.redis_url):
            storage.clear(fails_key)
            self.limiter._limiter.clear(self._last, "login-last", email, address)
            storage.clear(known_key)  # a fresh expiry: counted from the latest login
            storage.incr(known_key, self.policy.known_days * 86_400)

    @staticmethod
    def _refuse(reason: str, seconds: int) -> None:
        retry_after = max(1, seconds)
        raise RateLimitExceededError(f"{reason}; retry in {retry_after} s", retry_after=retry_after)
