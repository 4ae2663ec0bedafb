"""Speed for the local moto server (5.2.5, as pinned), with every answer left as it was.

Two DynamoDB paths of moto cost time in proportion to the whole table (DESIGN §9), so the API
slows down as the demo's ledger grows:

- ``Table.query`` on the table itself (not an index) sorts every item of the table
  (``Table.all_items``) and keeps those of one partition key. ``fast_query`` hands it only that
  partition's items, in the same order: the rest would have been filtered out.
- ``transact_write_items`` deep-copies each table it touches, every item, to restore it if the
  transaction is cancelled. ``cheap_table_backups`` makes that backup a copy of the table's
  structure instead: the same item objects, except the ones the transaction touches, which are
  deep-copied (an Update changes its item in place), and the stream's record list. On a
  rollback the live table object gets its items and stream records back; moto alone puts the
  backup in its place, and every open stream iterator keeps reading the replaced shard: it
  delivers the cancelled write and never a later one, so a pump would go wrong for good.

``apply`` is called in the server process only (``devstack.motoserver``); nothing else ever
sees these patches. ``tests/integration/local/test_motopatches.py`` runs the same requests on a
patched and an unpatched server and compares every answer, item and stream record.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from contextvars import ContextVar
from typing import Any

_query_partition: ContextVar[Any] = ContextVar("query_partition", default=None)
_transaction_keys: ContextVar[dict[str, set[tuple[Any, Any]]] | None] = ContextVar(
    "transaction_keys", default=None
)


def apply() -> None:
    fast_query()
    cheap_table_backups()


def fast_query() -> None:
    from moto.dynamodb.models.table import Table

    all_items, query = Table.all_items, Table.query

    def partition_items(self: Table) -> list[Any]:
        partition = _query_partition.get()
        if partition is None or not self.range_key_attr:
            return all_items(self)
        items = self.items.get(partition)  # never ``[]``: ``items`` is a defaultdict
        return sorted(items.values(), key=lambda item: item.range_key) if items else []

    def query_one_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        token = _query_partition.set(None if index_name else hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _query_partition.reset(token)

    Table.all_items = partition_items  # type: ignore[method-assign]
    Table.query = query_one_partition  # type: ignore[method-assign]


def cheap_table_backups() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = models.DynamoDBBackend.transact_write_items

    class _Copy:
        """What ``moto.dynamodb.models`` sees as ``copy``: tables are backed up cheaply."""

        copy = staticmethod(copy.copy)

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            keys = _transaction_keys.get()
            if keys is not None and isinstance(value, models.Table):
                return _backup(value, keys.get(value.name, set()))
            return copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        keys = _touched_keys(self, transact_items, DynamoType)
        live = {name: self.tables[name] for name in keys if name in self.tables}
        token = _transaction_keys.set(keys)
        try:
            original(self, transact_items)
        finally:
            _transaction_keys.reset(token)
            for name, table in live.items():
                _restore_in_place(self, name, table)

    models.copy = _Copy  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _touched_keys(
    backend: Any, transact_items: list[dict[str, Any]], dynamo_type: type
) -> dict[str, set[tuple[Any, Any]]]:
    """(partition, sort) keys each table's items in the transaction have, as DynamoTypes."""
    keys: dict[str, set[tuple[Any, Any]]] = defaultdict(set)
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            attributes = op.get("Item" if op_type == "Put" else "Key") or {}
            if table.hash_key_attr not in attributes:
                continue
            hash_key = dynamo_type(attributes[table.hash_key_attr])
            range_value = attributes.get(table.range_key_attr) if table.range_key_attr else None
            range_key = None if range_value is None else dynamo_type(range_value)
            keys[table.name].add((hash_key, range_key))
    return dict(keys)


def _backup(table: Any, keys: set[tuple[Any, Any]]) -> Any:
    """A copy of ``table`` good for restoring it: its item mapping copied one level down (same
    item objects), the items at ``keys`` deep-copied, its stream records in a new list."""
    backup = copy.copy(table)
    backup.items = defaultdict(dict)
    for hash_key, value in table.items.items():
        backup.items[hash_key] = dict(value) if table.range_key_attr else value
    for hash_key, range_key in keys:
        if table.range_key_attr:
            item = table.items.get(hash_key, {}).get(range_key)
            if item is not None:
                backup.items[hash_key][range_key] = copy.deepcopy(item)
        elif hash_key in table.items:
            backup.items[hash_key] = copy.deepcopy(table.items[hash_key])
    if table.stream_shard is not None:
        backup.stream_shard = copy.copy(table.stream_shard)
        backup.stream_shard.items = list(table.stream_shard.items)
    return backup


def _restore_in_place(backend: Any, name: str, live: Any) -> None:
    """If moto put a backup in ``live``'s place (a cancelled transaction), give ``live`` the
    backup's contents and put it back, so every reference to the table and its stream holds."""
    restored = backend.tables.get(name)
    if restored is live or restored is None:
        return
    live.items = restored.items
    if live.stream_shard is not None and restored.stream_shard is not None:
        live.stream_shard.items = restored.stream_shard.items
    backend.tables[name] = live
