"""``inflow``: each command is a thin call into a service."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inflow import __version__
from inflow.errors import (
    BadRequestError,
    ConflictError,
    InflowError,
    NotFoundError,
    ValidationFailedError,
)
from inflow.logging import configure_logging
from inflow.settings import Settings, get_settings
from inflow.storage.db import (
    apply_job_schema,
    create_db_engine,
    make_session_factory,
    session_scope,
    upgrade,
)
from inflow.storage.models import Backfill, DataSource

if TYPE_CHECKING:
    from inflow.sync.engine import EngineDeps

app = typer.Typer(help="Inflow: a self-hosted data integration hub.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="The credential vault's keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
sources_app = typer.Typer(help="Data sources.", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (users_app, "users"),
    (tokens_app, "tokens"),
    (keys_app, "keys"),
    (audit_app, "audit"),
    (sources_app, "sources"),
):
    app.add_typer(sub, name=name)

console = Console()
# Errors go to stderr (stdout may be a token a script captures), unwrapped and markup-free.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)
DEMO_ADMIN = "admin@inflow.local"


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


def _runtime(migrate: bool = True) -> Runtime:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = create_db_engine(settings.resolved_database_url)
    if migrate:  # quietly: the command's own output is what its user reads
        logging.getLogger("alembic").setLevel(logging.WARNING)
        upgrade(engine)
    return Runtime(settings, engine, make_session_factory(engine))


# Exit codes (``inflow sources test|fetch|sync`` and ``demo``; every command exits 1 on an error):
EXIT_FAILED = 1  # the test, fetch or sync ran and failed (or any other error)
EXIT_USAGE = 2  # invalid input: a malformed id or date, a bad range (typer's usage errors too)
EXIT_NOT_FOUND = 3  # no such data source (or test)
EXIT_CONFLICT = 4  # a sync of the source is already queued or running; the demo's port is busy
EXIT_CODES = (
    "Exit codes: 0 done; 1 failed (the test, fetch or sync ran and failed); 2 invalid input "
    "(malformed id or date, bad range); 3 no such source or test; 4 a sync already queued "
    "or running; 130 interrupted (Ctrl-C)."
)
OPTION_OF = {
    "startDate": "--from",
    "endDate": "--to",
    "from": "--from",
    "to": "--to",
    "linkToTests": "--experiment",
}


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=code)


def _error(exc: InflowError) -> typer.Exit:
    """One line for an error the services raise, with the exit code of its kind."""
    code = EXIT_FAILED
    message = exc.message
    if isinstance(exc, NotFoundError):
        code = EXIT_NOT_FOUND
    elif isinstance(exc, ConflictError):
        code = EXIT_CONFLICT
    elif isinstance(exc, ValidationFailedError | BadRequestError):
        code = EXIT_USAGE
    if isinstance(exc, ValidationFailedError) and exc.errors:
        message = "; ".join(
            f"{OPTION_OF.get(e.field.split('.')[0], e.field)}: {e.message}" for e in exc.errors
        )
    return _fail(message, code)


def _invalid(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """One line per bad field, e.g. ``password: String should have at least 8 characters``;
    ``names`` gives a field its option's name (``startDate`` → ``--from``)."""
    if names is None:
        return "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'input'}: {err['msg']}"
            for err in exc.errors()
        )
    return "; ".join(
        f"{names.get(str(err['loc'][0]), str(err['loc'][0])) if err['loc'] else 'input'}: "
        f"{err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the API (and web UI) against INFLOW_DATABASE_URL."""
    from inflow.api.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    # access_log=False: RequestContextMiddleware logs each request (with its id, without the
    # query string, which can carry codes and tokens).
    api = create_app(settings, scheduler=True)
    freeze_heap()
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )


def freeze_heap() -> None:
    """Keep the objects of the started app (modules, routes, schemas, models: ~230,000) out of
    the cyclic garbage collector's passes: a full pass over them stops every request thread for
    100-200 ms on these machines, which was most of the API's p99 under load
    (BENCHMARKS.md). What a request allocates is still collected as before."""
    gc.collect()
    gc.freeze()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, taken before anything else: ``OSError`` when the port is busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@app.command(epilog="Exit codes: 0 stopped; 1 failed; 4 the port is busy (nothing was changed).")
def demo(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """The embedded default: SQLite in the data dir, the sandbox, a demo admin, demo data.
    The server's log (each request too) goes to demo.log in the data dir."""
    from inflow.api.app import create_app
    from inflow.api.services import accounts
    from inflow.api.services import demo as demo_data
    from inflow.sandbox import create_app as create_sandbox
    from inflow.storage.files import private_dir, private_file

    try:  # first: a busy port (another demo?) is refused before any data is touched
        sock = _bind(host, port)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise _fail(
            f"{host}:{port} is already in use ({reason}): another Inflow may be running there; "
            "stop it or choose another port (inflow demo --port 8010, make demo PORT=8010)",
            EXIT_CONFLICT,
        ) from None
    settings = get_settings().model_copy(update={"allow_private_urls": True})
    log_file = settings.data_dir / "demo.log"
    private_dir(settings.data_dir)
    private_file(log_file)  # request paths and server messages: the owner's eyes only
    configure_logging(settings.log_level, "json", file=log_file)
    fastapi_app = create_app(settings, scheduler=True)
    fastapi_app.mount("/sandbox", create_sandbox())
    password = secrets.token_urlsafe(12)
    with session_scope(fastapi_app.state.session_factory) as session:
        admin = accounts.get_user_by_email(session, email=DEMO_ADMIN)
        if admin is None:
            admin = accounts.create_user(session, email=DEMO_ADMIN, password=password, role="admin")
        else:
            accounts.set_password(session, user=admin, password=password)
        admin_id = admin.id
    url = f"http://{host}:{port}"
    freeze_heap()
    server = uvicorn.Server(
        uvicorn.Config(fastapi_app, host=host, port=port, log_config=None, access_log=False)
    )
    stopped = threading.Event()

    def announce_and_seed() -> None:
        try:
            demo_data.wait_until_up(url)
        except RuntimeError:
            return  # the server did not start; its log says why
        console.print(f"\n[bold]Inflow {__version__}[/bold] demo on [link={url}/]{url}/[/link]")
        console.print(f"  login    : {DEMO_ADMIN}  /  {password}")
        console.print(f"  API docs : {url}/docs")
        console.print(f"  sandbox  : {url}/sandbox/_sandbox/credentials")
        console.print(f"  data dir : {settings.data_dir}")
        console.print(f"  log      : {log_file} (requests and server messages)\n")
        ids = demo_data.seed_and_sync(
            url,
            fastapi_app.state.session_factory,
            fastapi_app.state.vault,
            fastapi_app.state.worker,
            admin_id,
        )
        console.print(f"syncing {len(ids)} demo source(s) from the sandbox; Ctrl-C stops\n")
        watch_demo(fastapi_app.state.session_factory, ids, stopped)

    seeder = threading.Thread(target=announce_and_seed, name="demo-seed", daemon=True)
    seeder.start()
    try:
        server.run(sockets=[sock])
    finally:
        stopped.set()
        seeder.join(timeout=2)


def watch_demo(
    factory: sessionmaker[Session], ids: list[uuid.UUID], stopped: threading.Event
) -> None:
    """The demo's syncs: a live table in a terminal, else a line as each sync ends."""
    from rich.live import Live

    from inflow.api.services.demo import latest_runs
    from inflow.api.services.sources import shown_type
    from inflow.cli.views import runs_table

    def rows() -> list[tuple[DataSource, str, Any]]:
        return [(s, shown_type(s.type), r) for s, r in latest_runs(factory, ids)]

    if console.is_terminal:
        with Live(runs_table(rows()), console=console, refresh_per_second=2) as live:
            while not stopped.wait(1.0):
                live.update(runs_table(rows()))
        return
    told: set[uuid.UUID] = set()
    while not stopped.wait(1.0):
        for source, type_, run in rows():
            if run is None or run.finished_at is None or run.id in told:
                continue
            told.add(run.id)
            error = (run.error or {}).get("message")
            console.print(
                f"  {source.name} ({type_}): sync {run.status}, {run.created} created, "
                f"{run.updated} updated" + (f": {error}" if error else "")
            )


@app.command()
def worker(
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, help="Syncs at a time (a sync mostly waits on its provider: see bench/scale)."
        ),
    ] = 8,
    once: Annotated[bool, typer.Option("--once", help="Stop when nothing is queued.")] = False,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds running syncs may go on after SIGTERM.")
    ] = 8.0,
) -> None:
    """Distributed mode: run syncs, webhook re-reads and housekeeping (start any number, on
    any machines). On PostgreSQL they are procrastinate jobs, scheduled syncs included (no
    `inflow scheduler` needed). SIGTERM or Ctrl-C lets running syncs end for a few seconds,
    then hands them back (interrupted; the next worker resumes them from the checkpoint)."""
    import asyncio

    from inflow.api.app import engine_deps
    from inflow.storage.crypto import KeyRing, Vault
    from inflow.sync.jobs import distributed, run_jobs_worker
    from inflow.sync.worker import run_worker, until_stopped

    rt = _runtime()
    deps = engine_deps(rt.settings, rt.factory, Vault.from_keyring(KeyRing(rt.settings)))
    url = rt.settings.resolved_database_url
    if distributed(rt.settings):
        apply_job_schema(rt.engine)
        console.print(f"worker running procrastinate jobs ({concurrency} syncs at a time)")
        asyncio.run(
            until_stopped(
                run_jobs_worker(deps, url, concurrency=concurrency, once=once, grace_s=grace)
            )
        )
        rt.engine.dispose()
        console.print("worker stopped")
        return
    ran = asyncio.run(until_stopped(run_worker(deps, concurrency=concurrency, once=once)))
    rt.engine.dispose()
    console.print("worker stopped" + (f" after {ran} run(s)" if ran is not None else ""))


@app.command()
def scheduler(
    tick: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 30.0,
) -> None:
    """Distributed mode: enqueue scheduled syncs for the workers (run one of these). SIGTERM or
    Ctrl-C stops it between checks. On PostgreSQL the workers schedule syncs themselves;
    this command only hands them due runs sooner."""
    import asyncio

    from inflow.sync.jobs import JobQueue, distributed
    from inflow.sync.scheduler import run_scheduler
    from inflow.sync.worker import until_stopped

    rt = _runtime()
    jobs = JobQueue(rt.settings.resolved_database_url) if distributed(rt.settings) else None
    if jobs is not None:
        apply_job_schema(rt.engine)

    def submit(run_id: uuid.UUID) -> None:
        if jobs is not None:
            jobs.submit_run(rt.factory, run_id)

    console.print("scheduler running; runs are queued for `inflow worker`")
    asyncio.run(until_stopped(run_scheduler(rt.factory, submit, tick_s=tick)))
    if jobs is not None:
        jobs.close()
    rt.engine.dispose()
    console.print("scheduler stopped")


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
) -> None:
    """The provider emulators alone (each provider's API under /<type>)."""
    from inflow.sandbox import create_app as create_sandbox

    console.print(f"sandbox on http://{host}:{port}  (credentials: /_sandbox/credentials)")
    uvicorn.run(create_sandbox(), host=host, port=port, log_config=None, access_log=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    rt = _runtime(migrate=False)
    upgrade(rt.engine)
    apply_job_schema(rt.engine)  # the job queue of the distributed mode (PostgreSQL only)
    console.print("database is up to date")


@users_app.command("create")
def users_create(
    email: str,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="At least 8 characters.")
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
) -> None:
    """Create a user."""
    from inflow.api.schemas import UserCreate
    from inflow.api.services import accounts
    from inflow.storage.audit import append_event

    try:
        body = UserCreate(email=email, password=password, role="admin" if admin else "member")
    except ValidationError as exc:
        raise _fail(_invalid(exc)) from exc
    rt = _runtime()
    try:
        with session_scope(rt.factory) as session:
            user = accounts.create_user(
                session, email=body.email, password=body.password, role=body.role
            )
            append_event(
                session,
                action="user.create",
                outcome="success",
                actor="cli",
                target=f"users:{user.id}",
                details={"email": user.email, "role": user.role},
            )
    except ConflictError as exc:
        raise _fail(exc.message) from exc
    console.print(f"created {user.role} {user.email} ({user.id})")


@tokens_app.command("create")
def tokens_create(
    email: str, name: Annotated[str, typer.Option(help="A label for the token.")] = "cli"
) -> None:
    """Print a new API token for a user (shown once)."""
    from inflow.api.services import accounts
    from inflow.storage.audit import append_event

    rt = _runtime()
    with session_scope(rt.factory) as session:
        user = accounts.get_user_by_email(session, email=email)
        if user is None:
            raise _fail(f"no user with email {email}")
        row, token = accounts.issue_token(session, user=user, name=name)
        append_event(
            session,
            action="token.create",
            outcome="success",
            actor=f"cli:{user.email}",
            target=f"api_tokens:{row.id}",
            details={"name": name},
        )
    print(token)  # plain stdout, so scripts can capture it


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored credential under a new key (safe to interrupt and rerun)."""
    from inflow.errors import VaultError
    from inflow.storage.audit import append_event
    from inflow.storage.crypto import KeyRing
    from inflow.storage.keys import rotate_keys

    rt = _runtime()
    keyring = KeyRing(rt.settings)
    try:
        report = rotate_keys(rt.factory, keyring)
    except VaultError as exc:
        with session_scope(rt.factory) as session:
            append_event(
                session,
                action="keys.rotate",
                outcome="failure",
                actor="cli",
                details={"error": exc.message},
            )
        raise _fail(exc.message) from exc
    with session_scope(rt.factory) as session:
        append_event(
            session,
            action="keys.rotate",
            outcome="success",
            actor="cli",
            details={
                "rows": report.rows,
                "reencrypted": report.reencrypted,
                "resumed": report.resumed,
            },
        )
    verb = "finished the pending rotation" if report.resumed else "rotated to a new key"
    console.print(f"{verb}: {report.reencrypted} values in {report.rows} sources re-encrypted")
    if keyring.from_env:
        console.print("now remove the old key(s) from INFLOW_SECRET_KEY, keeping only the first")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain from the first event to the last."""
    from inflow.storage.audit import verify_chain

    rt = _runtime()
    with rt.factory() as session:
        report = verify_chain(session)
    if not report.ok:
        where = f" at event {report.event_id}" if report.event_id is not None else ""
        raise _fail(f"audit chain broken{where}: {report.problem} ({report.events} events read)")
    console.print(f"audit chain intact: {report.events} events")


@app.command()
def purge() -> None:
    """Delete expired login sessions and finished OAuth flows now (the scheduler does it
    hourly; API tokens stay until their user deletes them)."""
    from inflow.storage.housekeeping import purge_expired
    from inflow.storage.models import utcnow

    rt = _runtime()
    with session_scope(rt.factory) as session:
        counts = purge_expired(session, utcnow())
    console.print(
        f"purged {counts['session']} expired login session(s) and {counts['oauth_state']} "
        "finished OAuth flow(s)"
    )


@app.command()
def connectors() -> None:
    """List connectors with their config fields and metrics."""
    from inflow.connectors import registry

    table = Table("type", "title", "category", "auth", "config fields", "metrics")
    for c in sorted(registry().values(), key=lambda c: c.slug):
        secrets_ = set(c.config.secret_fields())
        fields = ", ".join(
            (f.alias or n) + ("*" if (f.alias or n) in secrets_ else "")
            for n, f in c.config.model_fields.items()
        )
        table.add_row(
            c.slug, c.title, c.category, c.auth_type, fields, ", ".join(m.key for m in c.metrics)
        )
    console.print(table)


@sources_app.command("list")
def sources_list() -> None:
    """List every data source with its type (as the API names it) and health."""
    from sqlalchemy import select

    from inflow.api.services.sources import shown_type
    from inflow.storage.models import DataSource, User

    rt = _runtime()
    # The id is what `sources test|fetch|sync ID` take: whole at any width (a pipe is 80
    # columns), the other columns wrap around it.
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    for heading in ("name", "type", "owner", "health"):
        table.add_column(heading, overflow="fold")
    with rt.factory() as session:
        rows = session.execute(
            select(DataSource, User.email)
            .join(User, User.id == DataSource.owner_id)
            .order_by(DataSource.created_at)
        ).all()
        for source, email in rows:
            table.add_row(
                str(source.id), source.name, shown_type(source.type), email, source.health_status
            )
    console.print(table)


SourceId = Annotated[str, typer.Argument(metavar="ID", help="The source's id (sources list).")]


def _source_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _fail(f"not a data source id: {text!r}", EXIT_USAGE) from None


def _source(rt: Runtime, text: str) -> DataSource:
    """The source (detached) an argument names; exit 2 for a malformed id, 3 for an unknown one."""
    source_id = _source_id(text)
    with rt.factory() as session:
        source = session.get(DataSource, source_id)
        if source is None:
            raise _fail(f"data source {source_id} not found", EXIT_NOT_FOUND)
        session.expunge(source)
    return source


def _deps(rt: Runtime) -> EngineDeps:
    from inflow.api.app import engine_deps
    from inflow.storage.crypto import KeyRing, Vault

    if logging.getLogger().level >= logging.INFO:  # the command prints what happened itself
        logging.getLogger("inflow").setLevel(logging.WARNING)
    return engine_deps(rt.settings, rt.factory, Vault.from_keyring(KeyRing(rt.settings)))


def _audit(rt: Runtime, action: str, outcome: str, target: str, **details: Any) -> None:
    from inflow.storage.audit import append_event

    with session_scope(rt.factory) as session:
        append_event(
            session, action=action, outcome=outcome, actor="cli", target=target, details=details
        )


@sources_app.command("resume", epilog=EXIT_CODES)
def sources_resume(source_id: SourceId) -> None:
    """Resume a source paused after failing in a row (its schedule runs it again)."""
    from inflow.sync.attention import resume

    rt = _runtime()
    wanted = _source_id(source_id)
    with session_scope(rt.factory) as session:
        source = session.get(DataSource, wanted)
        if source is None:
            raise _fail(f"data source {wanted} not found", EXIT_NOT_FOUND)
        was_paused = source.paused_at is not None
        resume(source)
    _audit(rt, "source.resume", "success", f"data_sources:{wanted}", wasPaused=was_paused)
    console.print(f"resumed {wanted}" if was_paused else f"{wanted} was not paused")


@sources_app.command("test", epilog=EXIT_CODES)
def sources_test(source_id: SourceId) -> None:
    """Test the connection step by step, as the API's Test does; updates the source's health."""
    from inflow.sync.engine import test_source

    rt = _runtime()
    source = _source(rt, source_id)
    steps = asyncio.run(test_source(_deps(rt), source.id))
    for step in steps:
        mark = "[green]✓[/green]" if step.ok else "[red]✗[/red]"
        console.print(f"{mark} {escape(step.name)}: {escape(step.message)}")
    failed = next((s for s in steps if not s.ok), None)
    _audit(rt, "source.test", "failure" if failed else "success", f"data_sources:{source.id}")
    if failed is not None:
        raise _fail(f"connection test failed at {failed.name}: {failed.message}")
    console.print("connection test passed")


@sources_app.command("fetch", epilog=EXIT_CODES)
def sources_fetch(
    source_id: SourceId,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day (YYYY-MM-DD) or instant; default: a week "
            "before --to, within what the provider serves.",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day (YYYY-MM-DD, included) or instant; default: now."),
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help='Store the points (as "Create All Data Points").')
    ] = False,
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            help="A test (experiment) id to link the stored points to; repeat for several.",
        ),
    ] = None,
) -> None:
    """Read metrics for a date range and show them; with --create store them (idempotently)."""
    from inflow.api.routes.runs import FetchRequest, fetch_window, link_points, read_range
    from inflow.api.services.series import fetched_totals
    from inflow.cli.views import points_table
    from inflow.connectors import get_connector
    from inflow.connectors.runtime import days_zone
    from inflow.storage import repo
    from inflow.storage.models import Experiment
    from inflow.sync.engine import fetch_points

    try:
        body = FetchRequest.model_validate(
            {
                "startDate": start,
                "endDate": end,
                "autoCreate": create,
                "linkToTests": experiment or [],
            }
        )
    except ValidationError as exc:
        raise _fail(_invalid(exc, OPTION_OF), EXIT_USAGE) from exc
    rt = _runtime()
    source = _source(rt, source_id)
    connector = get_connector(source.type)
    zone = days_zone(connector, source.config)
    try:
        window = fetch_window(body, datetime.now(UTC), connector, zone)
        with rt.factory() as session:
            for test_id in body.link_to_tests:
                if session.get(Experiment, test_id) is None:
                    raise NotFoundError(f"test {test_id} not found")
    except InflowError as exc:
        raise _error(exc) from exc
    try:
        points = asyncio.run(fetch_points(_deps(rt), source.id, window))
    except InflowError as exc:
        _audit(rt, "source.fetch", "failure", f"data_sources:{source.id}", error=exc.message)
        raise _fail(f"fetch failed: {exc.message}") from exc
    console.print(points_table(points, fetched_totals(points, connector, source.config)))
    console.print(f"{len(points)} data points for {read_range(window, zone)}")
    created = 0
    if create:
        with session_scope(rt.factory) as session:
            counts = repo.upsert_data_points(session, source_id=source.id, points=points)
            session.flush()
            link_points(session, source_id=source.id, points=points, test_ids=body.link_to_tests)
        created = counts.created
        console.print(
            f"stored: {counts.created} created, {counts.updated} updated, "
            f"{counts.unchanged} unchanged"
            + (f"; linked to {len(body.link_to_tests)} test(s)" if body.link_to_tests else "")
        )
    _audit(
        rt,
        "source.fetch",
        "success",
        f"data_sources:{source.id}",
        points=len(points),
        created=created,
        autoCreate=create,
    )


@sources_app.command("sync", epilog=EXIT_CODES)
def sources_sync(source_id: SourceId) -> None:
    """Run an incremental sync here, with its progress (records, requests, what it waits for)."""
    from inflow.cli.views import follow_run
    from inflow.sync.engine import RunRecorder, enqueue_run, run_sync

    rt = _runtime()
    source = _source(rt, source_id)
    try:
        with session_scope(rt.factory) as session:
            run = enqueue_run(session, source=session.merge(source), trigger="manual")
            run_id = run.id
    except InflowError as exc:
        raise _error(exc) from exc
    _audit(rt, "source.sync", "success", f"data_sources:{source.id}", runId=str(run_id))
    recorder = RunRecorder()
    try:
        result = asyncio.run(
            follow_run(
                console, f"sync {source.name}", run_sync(_deps(rt), run_id, recorder), recorder
            )
        )
    except KeyboardInterrupt:  # the run ends as interrupted; what was stored stays
        raise _fail(
            "sync interrupted; the next one resumes from the last checkpoint", 130
        ) from None
    counts = result.counts
    summary = (
        f"{counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged, "
        f"{counts.deleted} deleted (run {run_id})"
    )
    if result.status != "succeeded":
        message = (result.error or {}).get("message") or result.status
        raise _fail(f"sync {result.status}: {message}; {summary}")
    console.print(f"sync succeeded: {summary}")


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option}: not a day (YYYY-MM-DD): {text!r}", EXIT_USAGE) from None


@sources_app.command("backfill", epilog=EXIT_CODES)
def sources_backfill(
    source_id: SourceId,
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD), the source's.")],
    end: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), included.")],
) -> None:
    """Read a past range of days again, in chunks, here; run again to resume what stopped."""
    from inflow.api.services.backfills import start_backfill
    from inflow.sync.backfill import ChunkOutcome, run_backfill

    first, last = _day(start, "--from"), _day(end, "--to")
    rt = _runtime()
    source = _source(rt, source_id)
    try:
        with session_scope(rt.factory) as session:
            backfill, new = start_backfill(
                session, source=session.merge(source), first=first, last=last, created_by="cli"
            )
            backfill_id, total = backfill.id, len(backfill.chunks)
            done = sum(c.state == "done" for c in backfill.chunks)
    except InflowError as exc:
        raise _error(exc) from exc
    _audit(
        rt,
        "source.backfill",
        "success",
        f"data_sources:{source.id}",
        backfillId=str(backfill_id),
        **{"from": first.isoformat(), "to": last.isoformat()},
        chunks=total,
        resumed=not new,
    )
    console.print(
        f"backfill {backfill_id}: {first} to {last} in {total} chunk(s)"
        + ("" if new else f", resumed with {done} done")
    )

    def progress(outcome: ChunkOutcome) -> None:
        nonlocal done
        if outcome.kind in ("more", "ended") and outcome.error is None:
            done += outcome.state in ("running", "succeeded")
            console.print(f"chunk {done}/{total} done")
        elif outcome.kind in ("wait", "busy"):
            console.print(f"waiting {outcome.wait_s:g} s: {outcome.error or 'the source is busy'}")

    try:
        state = asyncio.run(run_backfill(_deps(rt), backfill_id, on_chunk=progress))
    except KeyboardInterrupt:
        raise _fail("backfill interrupted; run the same command again to resume", 130) from None
    if state != "succeeded":
        with rt.factory() as session:
            row = session.get(Backfill, backfill_id)
            reason = ((row.error if row else None) or {}).get("message") or state
        raise _fail(f"backfill {state}: {reason}")
    console.print(f"backfill succeeded: {total} chunk(s) (backfill {backfill_id})")


if __name__ == "__main__":
    app()
