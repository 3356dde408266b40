"""The address the SSRF guard checked is the address connected to (issue 11.7: DNS rebinding).

Real sockets: servers on 127.0.0.1 and httpx's own transport with Inflow's network backend. Only
the resolver is swapped (a name → addresses function, the guard's test seam), as DNS is the one
process boundary the tests cannot own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from inflow import errors
from inflow.http.client import GuardedTransport, HttpOptions, Requester, build_client
from inflow.http.retry import RetryPolicy

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.215.14"  # a global address: passes the check (never connected to here)
BODY = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


@dataclass
class Loopback:
    """An HTTP server on 127.0.0.1 that records each connection and each request's Host."""

    port: int = 0
    connections: int = 0
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("host:"):
                self.hosts.append(line.split(":", 1)[1].strip())
        writer.write(OK)
        await writer.drain()
        writer.close()
        await writer.wait_closed()


async def serve(tls: ssl.SSLContext | None = None) -> tuple[Loopback, asyncio.Server]:
    loopback = Loopback()
    if tls is not None:

        def sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            loopback.server_names.append(name)

        tls.sni_callback = sni  # type: ignore[assignment]
    server = await asyncio.start_server(loopback.handle, "127.0.0.1", 0, ssl=tls)
    loopback.port = server.sockets[0].getsockname()[1]
    return loopback, server


@pytest.fixture
async def plain() -> AsyncIterator[Loopback]:
    loopback, server = await serve()
    async with server:
        yield loopback
    await server.wait_closed()


class Resolver:
    """Answers each lookup with the next of ``answers`` (the last one repeats)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


OPEN: list[Requester] = []


def requester(options: HttpOptions, transport: GuardedTransport | None = None) -> Requester:
    made = Requester(build_client(options, transport=transport), slug="acme", options=options)
    OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Every client a test made is closed (its pooled connection with it) before the next."""
    yield
    while OPEN:
        await OPEN.pop().client.aclose()


def options(resolver: Resolver, *, allow_private: bool = False) -> HttpOptions:
    return HttpOptions(
        resolver=resolver, allow_private_urls=allow_private, retry=RetryPolicy(attempts=3)
    )


async def test_a_name_rebound_to_loopback_after_the_check_never_reaches_it(plain):
    rebinding = Resolver([PUBLIC], ["127.0.0.1"])  # the check's answer, then the connection's
    client = requester(options(rebinding))

    with pytest.raises(errors.ConfigError, match=r"rebind\.test resolves to a private"):
        await client.get_json(f"https://rebind.test:{plain.port}/calls")

    # One lookup for the check, one for the connection, and no retry of a refused address.
    assert rebinding.asked == [("rebind.test", plain.port)] * 2
    assert plain.connections == 0


async def test_a_name_with_a_loopback_address_among_public_ones_is_refused(plain):
    mixed = Resolver([PUBLIC], [PUBLIC, "127.0.0.1"])
    client = requester(options(mixed))

    with pytest.raises(errors.ConfigError, match="private or reserved"):
        await client.get_json(f"https://mixed.test:{plain.port}/calls")

    assert plain.connections == 0


async def test_the_connection_goes_to_the_resolved_address_with_the_name_as_host(plain):
    """The control: the same server is reached when the resolver (not the system's DNS, which
    knows no ``pinned.test``) gives its address and private addresses are allowed."""
    pinned = Resolver(["127.0.0.1"])
    client = requester(options(pinned, allow_private=True))

    body = await client.get_json(f"http://api.pinned.test:{plain.port}/calls")

    assert body == {"ok": True}
    assert plain.connections == 1
    assert plain.hosts == [f"api.pinned.test:{plain.port}"]


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for ``name``: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # ten years each way: OpenSSL checks it against the wall clock, not the test clock
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


async def test_tls_keeps_the_name_for_sni_and_the_certificate_check(tmp_path):
    cert_file, key_file, pem = certificate(tmp_path, "api.pinned.test")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    trust = ssl.create_default_context(cadata=pem.decode())
    loopback, server = await serve(tls)
    pinned = Resolver(["127.0.0.1"])
    opts = options(pinned, allow_private=True)
    async with server:
        client = requester(opts, GuardedTransport(opts, verify=trust))

        body = await client.get_json(f"https://api.pinned.test:{loopback.port}/calls")
        await client.client.aclose()

    assert body == {"ok": True}
    assert loopback.server_names == ["api.pinned.test"]  # SNI: the name, not 127.0.0.1
    assert loopback.hosts == [f"api.pinned.test:{loopback.port}"]
    assert pinned.asked == [("api.pinned.test", loopback.port)]
