"""Fixtures for tests against the real broker and ClickHouse, which `make up` starts.

A server that does not answer skips these tests on a developer's machine, but fails them under
CI or with PROMO_REQUIRE_SERVERS=1 (which `make test` sets): a dead server must not turn the
suite green by skipping it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

# The local servers of deploy/local/servers.sh, as in deploy/local/promo.env.
LOCAL_BROKER_URL = "kafka://127.0.0.1:19092"
LOCAL_CLICKHOUSE_URL = "clickhouse://default@127.0.0.1:19000/promo"

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session, not only those below this folder.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
    # Tests that stop a local server (and may bring the broker back empty) run last.
    items.sort(key=lambda item: item.get_closest_marker("stops_servers") is not None)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _unreachable(server: str, url: str, error: Exception) -> NoReturn:
    message = f"{server} at {url} does not answer ({error}); start the local servers: make up"
    if _env_flag("CI") or _env_flag("PROMO_REQUIRE_SERVERS"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _bootstrap_servers(broker_url: str) -> list[str]:
    # kafka://host:port[;host:port], as in the settings.
    return [address for address in broker_url.removeprefix("kafka://").split(";") if address]


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The Kafka-protocol broker's URL, e.g. kafka://127.0.0.1:19092, checked to accept TCP."""
    url = os.environ.get("PROMO_BROKER_URL", LOCAL_BROKER_URL)
    host, _, port = _bootstrap_servers(url)[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except (OSError, ValueError) as error:
        _unreachable("Kafka broker", url, error)
    return url


@pytest.fixture(scope="session")
def bootstrap_servers(broker_url: str) -> list[str]:
    """The broker's host:port addresses, the form plain Kafka clients (kafka-python) take."""
    return _bootstrap_servers(broker_url)


@pytest.fixture(scope="session")
def clickhouse_url() -> str:
    """ClickHouse's native-protocol URL, checked with a `SELECT 1`.

    The check goes through the `default` database: the URL's own one may not be migrated yet.
    """
    url = os.environ.get("PROMO_CLICKHOUSE_URL", LOCAL_CLICKHOUSE_URL)
    client = Client.from_url(_with_database(url, "default"))
    try:
        client.execute("SELECT 1")
    except (OSError, ClickHouseError) as error:
        _unreachable("ClickHouse", url, error)
    finally:
        client.disconnect()
    return url


@pytest.fixture
def unique_name() -> str:
    """A fresh suffix for this test's topics, consumer groups and databases."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def clickhouse_client(clickhouse_url: str, unique_name: str) -> Iterator[Client]:
    """A client on a new, empty database `promo_test_<suffix>`, dropped after the test."""
    database = f"promo_test_{unique_name}"
    admin = Client.from_url(_with_database(clickhouse_url, "default"))
    admin.execute(f"CREATE DATABASE {database}")
    client = Client.from_url(_with_database(clickhouse_url, database))
    try:
        yield client
    finally:
        client.disconnect()
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.disconnect()


@pytest.fixture
def migrated(clickhouse_client: Client) -> Client:
    """``clickhouse_client`` on a fresh database with the project's schema applied."""
    from promo.clickhouse import apply_migrations
    from promo.settings import REPO_ROOT

    apply_migrations(clickhouse_client, REPO_ROOT / "deploy" / "clickhouse")
    return clickhouse_client
