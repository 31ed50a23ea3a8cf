"""
Tests of the database secrets engine operations against a real OpenBao
dev server and a real PostgreSQL server: dynamic credentials that log in,
their lease renewed and revoked, static credentials, and the rule that a
request for dynamic credentials is never replayed once it may have reached
the server.

The PostgreSQL cluster is private to the session (see `_postgres`). The
tests are skipped when the PostgreSQL server binaries are not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _postgres import SUPERUSER, PostgresCluster, find_postgres_bin
from _scripted_proxy import DROP, ScriptedProxy
from _vault_admin import admin, mounted
from buttress import Event, RetryScheduled, Secret
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    DatabaseCredentials,
    LeaseExpired,
    StaticCredentials,
    VaultAdapter,
    VaultUnavailable,
)

pytestmark = pytest.mark.anyio

DYNAMIC_ROLE = "app"
STATIC_ROLE = "static"
STATIC_USER = "static_app"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH "
            "or in /usr/lib/postgresql/*/bin. Install them, for example with "
            "'apt-get install postgresql', to run the database tests."
        )
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def database(openbao: OpenBaoDevServer, postgres: PostgresCluster) -> Iterator[str]:
    """
    A database secrets engine connected to *postgres*, with a role for
    dynamic credentials and a static role.
    """
    postgres.psql(f"CREATE ROLE {STATIC_USER} LOGIN PASSWORD 'initial'")
    with mounted(openbao, "database") as mount:
        admin(
            openbao,
            "POST",
            f"{mount}/config/pg",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": (
                    "postgresql://{{username}}:{{password}}@127.0.0.1:"
                    f"{postgres.port}/postgres?sslmode=disable"
                ),
                "username": SUPERUSER,
                "password": postgres.password,
                "allowed_roles": "*",
            },
        )
        creation = (
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';"
        )
        admin(
            openbao,
            "POST",
            f"{mount}/roles/{DYNAMIC_ROLE}",
            {
                "db_name": "pg",
                "creation_statements": [creation],
                "default_ttl": "1h",
                "max_ttl": "2h",
            },
        )
        admin(
            openbao,
            "POST",
            f"{mount}/static-roles/{STATIC_ROLE}",
            {"db_name": "pg", "username": STATIC_USER, "rotation_period": "24h"},
        )
        try:
            yield mount
        finally:
            admin(openbao, "DELETE", f"{mount}/static-roles/{STATIC_ROLE}")
            postgres.psql(f"DROP ROLE IF EXISTS {STATIC_USER}")


def adapter(url: str, openbao: OpenBaoDevServer, events: list[Event]) -> VaultAdapter:
    config = {
        "url": url,
        "token": openbao.root_token,
        "timeout_seconds": 10.0,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
    }
    return VaultAdapter(config, clock=FakeClock(), listeners=[events.append])


def role_exists(postgres: PostgresCluster, name: str) -> bool:
    count = postgres.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'")
    return count == "1"


def leases(openbao: OpenBaoDevServer, mount: str) -> list[str]:
    try:
        body = admin(openbao, "LIST", f"sys/leases/lookup/{mount}/creds/{DYNAMIC_ROLE}")
    except RuntimeError:
        # A LIST that finds nothing is a 404.
        return []
    keys: list[str] = body["data"]["keys"]
    return keys


async def test_dynamic_credentials_log_in(
    openbao: OpenBaoDevServer, postgres: PostgresCluster, database: str
) -> None:
    events: list[Event] = []
    async with adapter(openbao.address, openbao, events) as vault:
        credentials = await vault.database.generate_credentials(
            DYNAMIC_ROLE, mount_point=database
        )
        await vault.lease.revoke(credentials.lease_id)

    username = credentials.username.get_secret_value()
    password = credentials.password.get_secret_value()
    assert isinstance(credentials, DatabaseCredentials)
    assert isinstance(credentials.password, Secret)
    assert credentials.lease_id.startswith(f"{database}/creds/{DYNAMIC_ROLE}/")
    assert credentials.lease_duration == 3600
    assert credentials.renewable is True
    assert username not in repr(credentials)
    assert password not in repr(credentials)
    assert not role_exists(postgres, username)


async def test_dynamic_lease_renew_and_revoke(
    openbao: OpenBaoDevServer, postgres: PostgresCluster, database: str
) -> None:
    events: list[Event] = []
    async with adapter(openbao.address, openbao, events) as vault:
        credentials = await vault.database.generate_credentials(
            DYNAMIC_ROLE, mount_point=database
        )
        username = credentials.username.get_secret_value()
        password = credentials.password.get_secret_value()
        logged_in = postgres.psql(
            "SELECT current_user", user=username, password=password
        )
        renewed = await vault.lease.renew(credentials.lease_id, increment=5400)
        looked_up = await vault.lease.lookup(credentials.lease_id)
        await vault.lease.revoke(credentials.lease_id)
        # Revoking again succeeds.
        await vault.lease.revoke(credentials.lease_id)
        with pytest.raises(LeaseExpired):
            await vault.lease.renew(credentials.lease_id)

    assert logged_in == username
    assert renewed.lease_id == credentials.lease_id
    assert 5000 < renewed.lease_duration <= 5400
    assert renewed.renewable is True
    assert looked_up.renewable is True
    assert looked_up.ttl > 3600
    assert looked_up.last_renewal is not None
    # Revoking the lease dropped the database user.
    assert not role_exists(postgres, username)


async def test_static_credentials(
    openbao: OpenBaoDevServer, postgres: PostgresCluster, database: str
) -> None:
    events: list[Event] = []
    async with adapter(openbao.address, openbao, events) as vault:
        first = await vault.database.read_static_credentials(
            STATIC_ROLE, mount_point=database
        )
        second = await vault.database.read_static_credentials(
            STATIC_ROLE, mount_point=database
        )

    password = first.password.get_secret_value()
    assert isinstance(first, StaticCredentials)
    assert first.username.get_secret_value() == STATIC_USER
    assert second.password == first.password
    # The server rotated the initial password when the role was created.
    assert password != "initial"
    assert first.rotation_period == 86400
    assert first.ttl is not None
    assert first.last_vault_rotation is not None
    assert password not in repr(first)
    assert postgres.psql(
        "SELECT current_user", user=STATIC_USER, password=password
    ) == (STATIC_USER)


@pytest.fixture
def proxy(openbao: OpenBaoDevServer) -> Iterator[ScriptedProxy]:
    server = ScriptedProxy(openbao.address)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_dynamic_credentials_not_replayed(
    openbao: OpenBaoDevServer, database: str, proxy: ScriptedProxy
) -> None:
    events: list[Event] = []
    before = set(leases(openbao, database))
    proxy.script(DROP)
    async with adapter(proxy.address, openbao, events) as vault:
        with pytest.raises(VaultUnavailable) as lost:
            await vault.database.generate_credentials(
                DYNAMIC_ROLE, mount_point=database
            )
    created = set(leases(openbao, database)) - before
    for lease in created:
        admin(
            openbao,
            "PUT",
            "sys/leases/revoke",
            {"lease_id": f"{database}/creds/{DYNAMIC_ROLE}/{lease}"},
        )

    assert lost.value.outcome == "unknown"
    assert lost.value.retryable is False
    assert proxy.methods() == ["GET"]
    assert not any(isinstance(event, RetryScheduled) for event in events)
    # The server did create credentials that the caller never received.
    assert len(created) == 1


async def test_static_credentials_replayed(
    openbao: OpenBaoDevServer, database: str, proxy: ScriptedProxy
) -> None:
    events: list[Event] = []
    proxy.script(DROP)
    async with adapter(proxy.address, openbao, events) as vault:
        credentials = await vault.database.read_static_credentials(
            STATIC_ROLE, mount_point=database
        )

    assert credentials.username.get_secret_value() == STATIC_USER
    assert proxy.methods() == ["GET", "GET"]
    assert sum(isinstance(event, RetryScheduled) for event in events) == 1
