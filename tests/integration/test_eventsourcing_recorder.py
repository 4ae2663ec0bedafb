"""The eventsourcing library's own ``AggregateRecorderTestCase`` on ``DynamoDBAggregateRecorder``.

unittest classes (the library's suite is a ``TestCase``), so the moto server is module-level:
started in ``setUpModule`` and stopped in ``tearDownModule`` (credentials: tests/conftest.py).
"""

from __future__ import annotations

import importlib
import sys
import threading
import uuid
from types import ModuleType
from typing import Any
from unittest import TestCase

import boto3
from botocore.exceptions import ClientError
from eventsourcing.persistence import IntegrityError, NotSupportedError, StoredEvent

from devstack.motoserver import MotoServer
from devstack.template import create_table
from ledger.recorder import DynamoDBAggregateRecorder


class _AESCipherUnavailable:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("eventsourcing.cipher.AESCipher needs pycryptodome")


def _library_persistence_tests() -> ModuleType:
    """``eventsourcing.tests.persistence``, the library's suite, unchanged.

    That module imports ``eventsourcing.cipher`` at the top (for ``InfrastructureFactoryTestCase``),
    and ``eventsourcing.cipher`` needs pycryptodome, an optional extra we do not depend on.
    ``AggregateRecorderTestCase`` never uses the cipher, so if pycryptodome is missing the import
    sees a stand-in whose ``AESCipher`` refuses to be constructed; the stand-in is removed from
    ``sys.modules`` right after, so nothing else can import it.
    """
    name = "eventsourcing.tests.persistence"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != "Crypto":
            raise
    stand_in = ModuleType("eventsourcing.cipher")
    stand_in.AESCipher = _AESCipherUnavailable  # type: ignore[attr-defined]
    sys.modules["eventsourcing.cipher"] = stand_in
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules["eventsourcing.cipher"]


# A module, not its classes, in our namespace: pytest must not collect the abstract base itself.
library_tests = _library_persistence_tests()
_server = MotoServer()
_clients: list[Any] = []


def setUpModule() -> None:
    _server.start()
    _clients.append(
        boto3.client("dynamodb", endpoint_url=_server.endpoint_url, region_name="us-east-1")
    )


def tearDownModule() -> None:
    _clients.clear()
    _server.stop()


def new_recorder() -> tuple[DynamoDBAggregateRecorder, Any, str]:
    """A recorder on a fresh table shaped like ``EventsTable`` in template.yaml."""
    [client] = _clients
    table_name = f"recorder-{uuid.uuid4().hex[:12]}"
    create_table(client, "EventsTable", table_name)
    return DynamoDBAggregateRecorder(client, table_name), client, table_name


class TestDynamoDBAggregateRecorder(library_tests.AggregateRecorderTestCase):
    """The library's suite as published, UUID originator ids (its default)."""

    def create_recorder(self) -> DynamoDBAggregateRecorder:
        return new_recorder()[0]


class TestDynamoDBAggregateRecorderWithTextIds(library_tests.AggregateRecorderTestCase):
    """The same suite with ``str`` originator ids, which the library also allows."""

    def new_originator_id(self) -> str:
        return f"aggregate-{uuid.uuid4().hex}"

    def create_recorder(self) -> DynamoDBAggregateRecorder:
        return new_recorder()[0]


def stored(originator_id: uuid.UUID | str, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id, version, "topic", state)


class TestDynamoDBAggregateRecorderWrites(TestCase):
    """What the library's suite does not check: the write path is ours, conditional and shared."""

    def setUp(self) -> None:
        self.recorder, self.client, self.table_name = new_recorder()
        self.operations: list[str] = []
        self.client.meta.events.register("before-call.dynamodb.*", self._record)
        self.addCleanup(self.client.meta.events.unregister, "before-call.dynamodb.*", self._record)

    def _record(self, **kwargs: Any) -> None:
        self.operations.append(kwargs["model"].name)

    def test_one_event_is_one_conditional_put_item(self) -> None:
        originator_id = uuid.uuid4()
        self.recorder.insert_events([stored(originator_id, 1)])
        self.assertEqual(self.operations, ["PutItem"])
        with self.assertRaises(IntegrityError) as conflict:
            self.recorder.insert_events([stored(originator_id, 1, b"overwrite?")])
        self.assertIsInstance(conflict.exception.__cause__, ClientError)
        self.assertEqual(self.recorder.select_events(originator_id), [stored(originator_id, 1)])

    def test_several_events_are_one_transact_write_items_all_or_nothing(self) -> None:
        originator_a, originator_b = uuid.uuid4(), f"text-{uuid.uuid4().hex}"
        self.recorder.insert_events([stored(originator_a, 1), stored(originator_b, 1)])
        self.assertEqual(self.operations, ["TransactWriteItems"])
        # Only the second item conflicts: the first (version 2 of a) must not be written either.
        with self.assertRaises(IntegrityError) as conflict:
            self.recorder.insert_events([stored(originator_a, 2), stored(originator_b, 1)])
        self.assertIsInstance(conflict.exception.__cause__, ClientError)
        self.assertEqual(self.recorder.select_events(originator_a), [stored(originator_a, 1)])

    def test_racing_inserts_of_one_version_exactly_one_wins(self) -> None:
        recorder = DynamoDBAggregateRecorder(self.client, self.table_name)
        originator_id = uuid.uuid4()
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def insert(index: int) -> None:
            barrier.wait(timeout=10)
            try:
                recorder.insert_events([stored(originator_id, 1, f"{index}".encode())])
            except IntegrityError:
                outcomes.append("conflict")
            else:
                outcomes.append(f"{index}")

        threads = [threading.Thread(target=insert, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        winners = [outcome for outcome in outcomes if outcome != "conflict"]
        self.assertEqual(len(outcomes), 8)
        self.assertEqual(len(winners), 1, outcomes)
        [event] = self.recorder.select_events(originator_id)
        self.assertEqual(event.state, winners[0].encode())

    def test_more_than_one_transaction_is_refused_before_any_write(self) -> None:
        originator_id = uuid.uuid4()
        with self.assertRaises(NotSupportedError):
            self.recorder.insert_events([stored(originator_id, v) for v in range(1, 102)])
        self.assertEqual(self.operations, [])
        events = [stored(originator_id, version) for version in range(1, 101)]
        self.recorder.insert_events(events)
        self.assertEqual(self.recorder.select_events(originator_id), events)

    def test_select_ranges_and_pages(self) -> None:
        originator_id = uuid.uuid4()
        # 40 × ~30 KB: a Query page stops at 1 MB, so reading them all takes two pages.
        events = [stored(originator_id, version, b"x" * 30_000) for version in range(1, 41)]
        self.recorder.insert_events(events)
        self.operations.clear()
        self.assertEqual(self.recorder.select_events(originator_id), events)
        self.assertEqual(self.operations, ["Query", "Query"])
        self.assertEqual(self.recorder.select_events(originator_id, desc=True), events[::-1])
        select = self.recorder.select_events
        self.assertEqual(select(originator_id, gt=38), events[38:])
        self.assertEqual(select(originator_id, lte=2), events[:2])
        self.assertEqual(select(originator_id, gt=5, lte=7, desc=True), events[5:7][::-1])
        self.assertEqual(select(originator_id, gt=7, lte=7), [])
        self.assertEqual(select(originator_id, gt=8, lte=7), [])
        self.assertEqual(select(originator_id, limit=0), [])
        self.assertEqual(select(originator_id, gt=10, limit=3), events[10:13])
        self.assertEqual(select(str(originator_id), lte=1)[0].state, events[0].state)
