"""The ``restengine`` command: serve, up, seed, indexes, watch, keys (and doctor)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from restengine.config import DEMO_MODULE, ConfigError
from restengine.ops.processes import ProcessError
from restengine.ops.settings import StackSettings, load_stack_settings

if TYPE_CHECKING:
    from restengine.auth.keys import KeyStore


@contextlib.contextmanager
def _configuration() -> Iterator[None]:
    """An invalid setting met in the block stops the command with its one-line reason."""
    try:
        yield
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


def _settings(documents: str | None = None, app: str | None = None) -> StackSettings:
    overrides = {"RESTENGINE_DOCUMENTS": documents, "RESTENGINE_APP": app}
    with _configuration():
        return load_stack_settings({k: v for k, v in overrides.items() if v})


def _served(settings: StackSettings) -> list[type[Any]]:
    """The Document classes ``settings`` serve; a host app (``--app``) is built first, as a worker builds it."""
    from restengine.app import documents_served_by

    with _configuration():
        return documents_served_by(settings)


@contextlib.contextmanager
def _connected(settings: StackSettings, timeout_ms: int) -> Iterator[None]:
    """MongoEngine connected for a command: a host app's own connection when it made one, else the settings'
    (``MONGODB_URI``, or the embedded server for the duration)."""
    from restengine import db

    if settings.app and db.adopt(settings, timeout_ms=timeout_ms):
        try:
            yield
        finally:
            db.close_all()
        return
    with _database(settings) as ready:
        db.register(ready, timeout_ms=timeout_ms)
        try:
            yield
        finally:
            db.close_all()


@contextlib.contextmanager
def _database(settings: StackSettings) -> Iterator[StackSettings]:
    """Settings pointing at a database: ``MONGODB_URI``, else the embedded server for the duration."""
    if settings.mongodb_uri:
        yield settings
        return
    from restengine.ops.dbserver import DatabaseServer

    server = DatabaseServer(settings.data_dir.resolve(), settings.db_port)
    try:
        server.start()
        yield dataclasses.replace(settings, mongodb_uri=server.uri)
    except ProcessError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        server.stop()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True, help="Log level of the command itself.")
def main(log_level: str) -> None:
    """RestEngine: serve MongoEngine documents as a REST API.

    Settings come from the environment (RESTENGINE_*, MONGODB_URI, REDIS_URL); see the README.
    """
    from restengine.logs import configure

    configure(os.environ.get("RESTENGINE_LOG_FORMAT", "text").strip().lower(), log_level)


documents_option = click.option(
    "--documents",
    metavar="MODULES",
    help=f"Comma-separated modules whose Documents are served [default: the app's, else {DEMO_MODULE}].",
)
app_option = click.option(
    "--app",
    metavar="MODULE:APP",
    help="Your Flask app, as `flask --app` takes it (module:app, module:create_app, module:create_app('x')); "
    "the API is mounted in it [default: RESTENGINE_APP].",
)


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, metavar="HOST:PORT")
@documents_option
@app_option
def serve(bind: str, documents: str | None, app: str | None) -> None:
    """Run one gunicorn instance (starts the embedded database when MONGODB_URI is unset)."""
    from restengine.ops.stack import gunicorn_config, local_secret

    with _configuration():
        settings = local_secret(_settings(documents, app))
    with _database(settings) as ready:
        env = {
            **os.environ,
            "MONGODB_URI": ready.database_uri(),
            "RESTENGINE_DOCUMENTS": ",".join(ready.documents),
            "RESTENGINE_APP": ready.app or "",
            "RESTENGINE_SECRET_KEY": ready.secret_key or "",
        }
        argv = [sys.executable, "-m", "gunicorn", "--config", gunicorn_config(), "--bind", bind]
        proc = subprocess.Popen(argv, env=env)
        # gunicorn handles SIGINT/SIGTERM itself (graceful stop); wait for it, then stop the database.
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            while True:
                try:
                    status = proc.wait()
                    break
                except KeyboardInterrupt:
                    continue
        finally:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(status)


@main.command()
@documents_option
@app_option
@click.option("--no-progress", is_flag=True, help="No progress bar while seeding.")
def up(documents: str | None, app: str | None, no_progress: bool) -> None:
    """Run the full local stack: database, Redis, two gunicorn instances, nginx on 127.0.0.1:8080."""
    from restengine.ops.stack import local_secret, run_stack

    settings = _settings(documents, app)
    _served(settings)  # fail before starting anything
    with _configuration():
        settings = local_secret(settings)
    sys.exit(run_stack(settings, progress=not no_progress))


@main.command()
@click.option("--books", type=int, default=None, help="Number of books [default: RESTENGINE_SEED_BOOKS].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def seed(books: int | None, no_progress: bool) -> None:
    """Seed the demo bookstore (only when its collection is empty)."""
    from restengine import db
    from restengine.ops.seed import seed_demo

    settings = _settings()
    with _database(settings) as ready:
        db.register(ready, timeout_ms=120_000)
        try:
            written = seed_demo(books=books if books is not None else ready.seed_books, progress=not no_progress)
        finally:
            db.close_all()
    click.echo(f"seeded {written} books" if written else "demo data already present: nothing seeded")


@main.command()
@documents_option
@app_option
def indexes(documents: str | None, app: str | None) -> None:
    """Create every index the served Documents declare, and report what was created."""
    from pymongo.errors import OperationFailure

    from restengine.ops.indexes import create_indexes, format_report

    settings = _settings(documents, app)
    classes = _served(settings)
    with _connected(settings, timeout_ms=120_000):
        try:
            click.echo(format_report(create_indexes(classes)))
        except OperationFailure as exc:
            raise click.ClickException(f"an index cannot be built: {exc.details or exc}") from None


@main.command()
@documents_option
@app_option
def watch(documents: str | None, app: str | None) -> None:
    """Invalidate cached reads for every write to the database, made through the API or not (needs REDIS_URL)."""
    import threading

    from restengine.cache.watch import Watcher
    from restengine.redisconn import client_for_url

    settings = _settings(documents, app)
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: without Redis there is no shared cache to invalidate")
    collections = frozenset(cls._get_collection_name() for cls in _served(settings))
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _database(settings) as ready:
            client = client_for_url(settings.redis_url, timeout=2.0)  # one server, Sentinel's master or a Cluster
            try:
                Watcher(ready, client, collections=collections).run(stop)
            finally:
                client.close()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed in the database; clients send `Authorization: Bearer KEY`)."""


@contextlib.contextmanager
def _key_store() -> Iterator[KeyStore]:
    """A key store on the configured database (the embedded server for the duration when MONGODB_URI is unset)."""
    from restengine import db
    from restengine.auth.keys import COLLECTION, KeyStore

    settings = _settings()
    with _database(settings) as ready:
        db.register(ready, timeout_ms=30_000)
        try:
            yield KeyStore(lambda: db.get_database()[COLLECTION], cache_seconds=0)
        finally:
            db.close_all()


def _key_field(what: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback checking a key's ``role``, ``subject`` or ``name``: a usage error before any database starts."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        from restengine.auth.keys import check_role, check_text

        if value is None:
            return None
        try:
            return check_role(value) if what == "role" else check_text(value, what)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _when(value: datetime.datetime | None) -> str:
    """A UTC time to the second for ``keys list``; ``-`` for none."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


@keys.command("create")
@click.option("--role", required=True, callback=_key_field("role"), help="The key's one role ([A-Za-z0-9_.-]).")
@click.option("--subject", metavar="ID", callback=_key_field("subject"), help="[default: key:<id>]")
@click.option("--name", metavar="TEXT", callback=_key_field("name"), help="A note for `keys list`.")
def keys_create(role: str, subject: str | None, name: str | None) -> None:
    """Create a key; print it once, as the last line.

    Only a hash of it is stored: it cannot be shown again.
    """
    with _key_store() as store:
        info, key = store.create(role, subject=subject, name=name)
    click.echo(f"created API key {info.id}: role {info.role}, subject {info.subject}, name {info.name or '-'}")
    click.echo("store the key now: it cannot be shown again. Send it as `Authorization: Bearer <key>`.")
    click.echo(key)


@keys.command("list")
def keys_list() -> None:
    """List every key, never a secret.

    Columns: id, role, subject, name, created, revoked (UTC); revoked keys are listed too.
    """
    with _key_store() as store:
        infos = store.list()
    if not infos:
        click.echo("no API keys")
        return
    header = ("ID", "ROLE", "SUBJECT", "NAME", "CREATED", "REVOKED")
    rows = [header] + [
        (info.id, info.role, info.subject, info.name or "-", _when(info.created), _when(info.revoked)) for info in infos
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
def keys_revoke(key_id: str) -> None:
    """Revoke a key (exit 1 for an unknown id).

    New processes refuse it at once; running servers within their cache time (10 seconds by default).
    """
    with _key_store() as store:
        found = store.revoke(key_id)
    if not found:
        raise click.ClickException(f"no API key with id {key_id!r}")
    click.echo(f"revoked API key {key_id}")


@main.command()
@documents_option
@app_option
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    metavar="N",
    help="Stored documents checked per collection (0: none).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of findings instead of text.")
def doctor(documents: str | None, app: str | None, sample: int, as_json: bool) -> None:
    """Audit the served Documents against the database, read only: indexes, filters and sorts, stored data.

    Exit status 0 when nothing needs attention, 1 when something does, 2 when the audit cannot run.
    """
    from pymongo.errors import PyMongoError

    from restengine.ops.doctor import diagnose, format_json, format_text

    class CannotAudit(click.ClickException):
        exit_code = 2  # 1 means findings

    try:
        settings = _settings(documents, app)
        classes = _served(settings)
        with _connected(settings, timeout_ms=120_000), _configuration():
            report = diagnose(classes, sample=sample)
    except click.ClickException as exc:
        raise CannotAudit(exc.message) from None
    except PyMongoError as exc:
        raise CannotAudit(f"cannot read the database: {exc}") from None
    click.echo(format_json(report) if as_json else format_text(report))
    sys.exit(0 if report.healthy else 1)


if __name__ == "__main__":
    main()
