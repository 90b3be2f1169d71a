"""Reads whose SQL the ORM compiles once per database connection, then runs with other ids.

Django compiles a queryset into SQL every time it runs it. For a read that follows several
foreign keys (``select_related``) that is most of the read's cost: an email's read of its
delivery, invoice, customer, store, reports and user took 3.3 ms to compile and 0.25 ms to
run and fetch. A worker makes the same read for every email with another id, so
``CompiledRead`` keeps the SQL, the columns' converters and the way rows become model
instances, and only puts the new id in the parameters. PostgreSQL, for its part, prepares
the statement once per connection (DATABASE_PREPARED_STATEMENTS).

The queryset stays the definition: the SQL is the ORM's own, compiled from it on first use
on each connection (a connection is per thread, and so is the cache), and the rows become
instances the way ``QuerySet.__iter__`` makes them, related objects included.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

# Stand for the ids while the queryset is compiled: bigints no row has, found again among the
# compiled parameters. Every parameter equal to the k-th one is the k-th id.
_ID_PLACEHOLDERS = tuple(-7_301_992_451_120_377_113 - k for k in range(8))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    id_positions: tuple[tuple[int, int], ...]  # (parameter, which id)
    converters: list[tuple[int, tuple[list[Callable[..., Any]], Any]]]
    model: type[Model]
    init_list: list[str]
    model_fields: slice
    related_populators: list[Any]
    annotation_columns: tuple[tuple[str, int], ...]  # (attribute, column), as QuerySet sets them
    fetch_mode: Any


class CompiledRead[M: Model]:
    """``read(*ids)``: the instances ``build(*ids)`` would give, in its order.

    ``build`` must make the same SQL whatever the ids (none for a constant read), each id only
    in its parameters (filters on ids, not filters that vary); no ``extra()`` or prefetches,
    which this does not bring along (checked when it is compiled). Annotations are set on the
    instances as the queryset sets them. A read that locks (``select_for_update()``) is
    compiled, and run, inside a transaction, as the queryset would be."""

    def __init__(self, build: Callable[..., "QuerySet[M]"], *, using: str = DEFAULT_DB_ALIAS) -> None:
        self._build = build
        self._using = using
        self._compiled: WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = WeakKeyDictionary()

    def __call__(self, *ids: int) -> list[M]:
        connection = connections[self._using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compiled[connection] = self._compile(connection, len(ids))
        params = list(compiled.params)
        for position, which in compiled.id_positions:
            params[position] = ids[which]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows: list[Any] = cursor.fetchall()
        if compiled.converters:
            rows = [self._converted(row, compiled.converters, connection) for row in rows]
        objects: list[M] = []
        for row in rows:
            obj = compiled.model.from_db(
                self._using, compiled.init_list, row[compiled.model_fields], fetch_mode=compiled.fetch_mode
            )
            for populator in compiled.related_populators:
                populator.populate(row, obj)
            for attribute, column in compiled.annotation_columns:
                setattr(obj, attribute, row[column])
            objects.append(obj)  # type: ignore[arg-type]  # an instance of build's model
        return objects

    def get(self, *ids: int) -> M:
        """The one instance ``build(*ids)`` gives, as ``QuerySet.get()``: the model's
        ``DoesNotExist`` when there is none, ``MultipleObjectsReturned`` when there are more."""
        found = self(*ids)
        if len(found) == 1:
            return found[0]
        model = self._compiled[connections[self._using]].model
        if not found:
            raise model.DoesNotExist(f"{model._meta.object_name} matching {ids} does not exist")  # type: ignore[attr-defined]
        raise model.MultipleObjectsReturned(f"{len(found)} {model._meta.object_name} rows match {ids}")  # type: ignore[attr-defined]

    @staticmethod
    def _converted(row: Any, converters: list[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        values = list(row)
        for position, (functions, expression) in converters:
            value = values[position]
            for function in functions:
                value = function(value, expression, connection)
            values[position] = value
        return values

    def _compile(self, connection: BaseDatabaseWrapper, count: int) -> _Compiled:
        placeholders = _ID_PLACEHOLDERS[:count]
        queryset = self._build(*placeholders)
        query = queryset.query
        if query.extra_select or queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
            raise ValueError("CompiledRead reads model rows and annotations only: no extra() or prefetch_related()")
        if queryset._fetch_mode.track_peers:  # type: ignore[attr-defined]
            raise ValueError("CompiledRead does not track peers: use the queryset itself")
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        id_positions = tuple(
            (position, placeholders.index(value)) for position, value in enumerate(params) if value in placeholders
        )
        if {which for _position, which in id_positions} != set(range(count)) or any(
            str(placeholder) in sql for placeholder in placeholders
        ):
            raise ValueError("CompiledRead: each id must be a parameter of the query")
        select, klass_info = compiler.select, compiler.klass_info
        assert select is not None and klass_info is not None  # noqa: S101 - set by as_sql()
        fields = [column[0] for column in select[0 : compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise ValueError("CompiledRead does not read composite primary keys")
        select_fields = klass_info["select_fields"]
        model_fields = slice(select_fields[0], select_fields[-1] + 1)
        return _Compiled(
            sql=sql,
            params=tuple(params),
            id_positions=id_positions,
            converters=list(compiler.get_converters(fields).items()),
            model=klass_info["model"],
            init_list=[column[0].target.attname for column in select[model_fields]],
            model_fields=model_fields,
            related_populators=get_related_populators(klass_info, select, self._using, queryset._fetch_mode),  # type: ignore[attr-defined]
            annotation_columns=tuple(compiler.annotation_col_map.items()),
            fetch_mode=queryset._fetch_mode,  # type: ignore[attr-defined]
        )
