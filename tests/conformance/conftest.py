"""Fixtures of the conformance suite: the providers' official SDKs read the sandbox over real
HTTP, and Inflow syncs the same source against the same server in the same test.

The sandbox runs as a real server (uvicorn on a free loopback port, in a thread of the test
process): the SDKs speak HTTP to it exactly as to the vendor, through their documented base-URL
hooks, and its clock stands at the test's start (the pinned test clock), so the SDK, the sandbox
and Inflow's sync agree on "today" and on every value. The SDKs are test-only dependencies: no
module under src/ imports one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from inflow.http.client import HttpOptions
from inflow.sandbox import create_app
from inflow.storage.crypto import Vault
from inflow.sync.engine import EngineDeps
from tests.servers import free_port
from tests.sync.conftest import settings, vault  # noqa: F401 (fixtures, found by name)
from tests.sync.helpers import make_source, run_direct


class LiveSandbox:
    """The sandbox over loopback: its URL, its control routes, and Inflow syncs against it."""

    def __init__(
        self, url: str, factory: sessionmaker[Session], keys: Vault, moment: float
    ) -> None:
        self.url = url
        # the sandbox's day: its clock stands at `moment` (not the ticking test clock, which
        # may pass a midnight while the test runs)
        self.today = datetime.fromtimestamp(moment, UTC).date()
        self.http = httpx.Client(base_url=url, timeout=30)
        self.factory, self.vault = factory, keys
        self.app: FastAPI | None = None

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, slug: str, **body: Any) -> Any:
        """``POST /_sandbox/{slug}/config`` (``volume=…``, ``faults=…``, ``seed=…``)."""
        return self._ok(self.http.post(f"/_sandbox/{slug}/config", json=body))

    def credentials(self, slug: str) -> dict[str, Any]:
        """The emulator's entry of `/_sandbox/credentials`: `config`, a working source config
        (and `oauth`, its OAuth client, when it has one)."""
        entry: dict[str, Any] = self._ok(self.http.get("/_sandbox/credentials"))[slug]
        return entry

    def stats(self, slug: str) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{slug}/stats"))

    def deps(self) -> EngineDeps:
        """The sync engine's dependencies, over real HTTP to this server."""
        return EngineDeps(
            factory=self.factory, vault=self.vault, options=HttpOptions(allow_private_urls=True)
        )

    def sync(self, type_: str, config: dict[str, Any]) -> uuid.UUID:
        """A source of ``type_`` made with ``config`` and synced once (it must succeed)."""
        source_id = make_source(self.factory, self.vault, type_=type_, config=config)
        result = run_direct(self.deps(), source_id)
        assert result.status == "succeeded", result
        return source_id


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Where a test registers the SDK clients it made, closed when it ends (an SDK's session
    left open is a ResourceWarning, an error in this suite)."""
    with contextlib.ExitStack() as stack:
        yield stack


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@contextlib.contextmanager
def serve(app: FastAPI, scheme: str = "http", **ssl: str) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (TLS with ``ssl_certfile`` and
    ``ssl_keyfile``) in a thread, until the block ends; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
        **ssl,
    )
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the sandbox stopped before it listened"
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.01)
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live(factory: sessionmaker[Session], vault: Vault) -> Iterator[LiveSandbox]:  # noqa: F811
    """A fresh sandbox served over loopback HTTP for one test, its clock standing still at
    the test's start (the test clock's noon): what the SDK reads and what Inflow syncs a
    moment later are the same data."""
    moment = time.time()
    app = create_app(clock=lambda: moment)
    with serve(app) as url:
        sandbox = LiveSandbox(url, factory, vault, moment)
        sandbox.app = app
        try:
            yield sandbox
        finally:
            sandbox.http.close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key). OpenSSL checks it against the machine's
    real clock, not the test's, so it is valid for decades on either side."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "sandbox.crt", folder / "sandbox.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def live_tls(
    live: LiveSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    """The same sandbox (same state, same tokens) over HTTPS too, for clients that accept
    only https authorities (MSAL); yields its URL and the certificate to trust.

    requests lets `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` (set on our machines) win over a
    session's own `verify` (psf/requests#3829), so they are unset for the test."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = self_signed(tmp_path)
    assert live.app is not None
    with serve(live.app, "https", ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        yield url, cert
