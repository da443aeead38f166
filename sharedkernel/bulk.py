"""Bulk writes that stay cheap at bill-run sizes.

Django's ``bulk_create`` and ``bulk_update`` put every value of every row into the
SQL text: psycopg then splits that text and quotes each value on the client, which
costs more than PostgreSQL's work. On PostgreSQL these helpers send one array per
column instead (``unnest``), bound server-side as binary; the statement stays the
same whatever the number of rows. Other databases (SQLite, the embedded default)
keep Django's implementations.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from django.db import connections, models, router


@contextmanager
def bound_cursor(connection) -> Iterator:
    """A PostgreSQL cursor that sends parameters apart from the SQL (server-side binding).

    Django quotes every parameter into the SQL text on the client; for an array of a
    thousand values that costs more than the statement itself. Through this cursor a
    ``%b`` placeholder travels as binary, which halves the cost of a 1,000-row ``unnest``
    insert. Django's wrappers stay on (query logging, execute wrappers, error mapping).
    Only for statements written for it: ``%b`` placeholders, PostgreSQL only.
    """
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(psycopg.Cursor(connection.connection))
    with cursor:
        yield cursor


#: Fields whose Python values PostgreSQL takes as they are (get_db_prep_save would only re-check them).
_AS_IS = (models.IntegerField, models.CharField, models.TextField, models.BooleanField, models.DateTimeField)


def _prepare(field: models.Field, connection) -> Callable[[object], object]:
    target = field.target_field if field.is_relation else field
    if isinstance(target, models.UUIDField):
        return lambda v: v if v is None or isinstance(v, uuid.UUID) else uuid.UUID(str(v))
    if isinstance(target, _AS_IS):
        return lambda v: v
    return lambda v: field.get_db_prep_save(v, connection)


def _columns(fields, objs, connection) -> list[list]:
    columns = []
    for f in fields:
        prepare, attname = _prepare(f, connection), f.attname
        columns.append([prepare(getattr(obj, attname)) for obj in objs])
    return columns


def _arrays(fields, connection) -> str:
    return ", ".join(f"%b::{f.db_type(connection)}[]" for f in fields)


def insert_columns(model: type[models.Model], columns: dict[str, list]) -> list:
    """Insert rows given column by column (field attname → values); returns the primary keys in row
    order. For hot paths that never need model instances (the event store). PostgreSQL only."""
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [meta.get_field(name) for name in columns]
    quote = connection.ops.quote_name
    aliases = ", ".join(f"c{i}" for i in range(len(fields)))
    with bound_cursor(connection) as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"SELECT {aliases} FROM unnest({_arrays(fields, connection)}) WITH ORDINALITY AS x({aliases}, n) "
            f"ORDER BY n RETURNING {quote(meta.pk.column)}",
            list(columns.values()),
        )
        return [pk for (pk,) in cursor.fetchall()]


def insert_rows(objs: Sequence[models.Model], *, batch_size: int = 5000) -> None:
    """``bulk_create`` for one model's new rows, primary keys set on the objects as Django does.

    Auto-incremented keys come back in insertion order, which ``ORDER BY`` the
    array ordinal fixes (Django's own bulk_create relies on the same ordering)."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=batch_size)
        return
    meta = model._meta
    pk = meta.pk
    auto = isinstance(pk, models.AutoField) and any(getattr(o, pk.attname) is None for o in objs)
    fields = [f for f in meta.concrete_fields if not (auto and f is pk)]
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for obj in objs:  # auto_now(_add), as bulk_create's pre_save would
        for f in stamped:
            setattr(obj, f.attname, f.pre_save(obj, add=True))
    for start in range(0, len(objs), batch_size):
        chunk = objs[start : start + batch_size]
        columns = dict(zip((f.attname for f in fields), _columns(fields, chunk, connection), strict=True))
        if auto:
            keys = insert_columns(model, columns)
            for obj, value in zip(chunk, keys, strict=True):
                setattr(obj, pk.attname, value)
        else:
            insert_columns(model, columns)
        for obj in chunk:
            obj._state.adding = False
            obj._state.db = connection.alias


def bulk_update_rows(objs: Sequence[models.Model], fields: Sequence[str], *, batch_size: int = 5000) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model) by primary key."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields, batch_size=batch_size)
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    aliases = ", ".join(["pk", *(f"c{i}" for i in range(len(columns)))])
    assignments = ", ".join(f"{quote(f.column)} = v.c{i}" for i, f in enumerate(columns))
    with bound_cursor(connection) as cursor:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start : start + batch_size]
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM unnest({_arrays([pk, *columns], connection)}) "
                f"AS v({aliases}) WHERE {table}.{quote(pk.column)} = v.pk",
                _columns([pk, *columns], chunk, connection),
            )
