"""A shop's history as CSV, read into the event contract by a column mapping.

``promo replay history.csv --columns ...`` turns each CSV row into one clickstream event (a
JSON line, as ``promo.replay`` sends): ``--columns`` names the CSV column of each event field
(``user_id=visitorid,ts=timestamp,type=event,item_id=itemid,order_id=transactionid``),
``--types`` maps the file's event names to the contract's (``addtocart=add_to_cart``),
``--set`` gives fields a constant (``category=unknown``), ``--ts-unit`` says how times are
written (``ms``, ``s`` or ``iso``). A row's event id is its mapped column, else the file's
name and the row's number, so that replaying the same file twice is deduplicated by the
workers.

Nothing is dropped or repaired: an empty cell leaves the field out, and a value that is not
what the contract wants (a ``ts`` that is not a time, a price that is not a number) is sent
as it was written, so the workers' validation puts the event in the dead letters with the
reason, like any bad input. A mapping that names an unknown field or a column the file does
not have stops the command before anything is sent.

>>> mapping = CsvMapping.parse(columns="user_id=visitor,ts=time,type=event,item_id=item",
...                            types="addtocart=add_to_cart", constants="price=0", ts_unit="s")
>>> rows = ["time,visitor,event,item", "1433221332,257597,addtocart,355908", "later,1,view,"]
>>> [orjson.loads(line) for line in events_from_csv(rows, mapping, id_prefix="rr")]
... # doctest: +NORMALIZE_WHITESPACE
[{'price': 0.0, 'user_id': '257597', 'ts': 1433221332000, 'type': 'add_to_cart',
  'item_id': '355908', 'event_id': 'rr-2'},
 {'price': 0.0, 'user_id': '1', 'ts': 'later', 'type': 'view', 'event_id': 'rr-3'}]
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.errors import ConfigError

#: Event fields a CSV column can fill, with how a cell becomes the contract's type. ``items``
#: (a list) has no single-cell form; a purchase row gives ``order_id`` and ``order_total``.
FIELDS: dict[str, type] = {
    "event_id": str,
    "user_id": str,
    "ts": int,
    "type": str,
    "session_id": str,
    "item_id": str,
    "category": str,
    "price": float,
    "quantity": int,
    "query": str,
    "order_id": str,
    "order_total": float,
    "coupon_code": str,
    "offer_id": str,
}
TS_UNITS = ("ms", "s", "iso")


@dataclass(frozen=True, slots=True)
class CsvMapping:
    #: event field -> CSV column
    columns: dict[str, str]
    #: the file's event name -> the contract's ``type``
    types: dict[str, str]
    #: event field -> a value for every row
    constants: dict[str, str]
    ts_unit: str = "ms"

    @classmethod
    def parse(
        cls, *, columns: str, types: str = "", constants: str = "", ts_unit: str = "ms"
    ) -> CsvMapping:
        """From the command's options; a bad one raises ``ConfigError`` naming it."""
        mapping = cls(
            _pairs(columns, "--columns"),
            _pairs(types, "--types"),
            _pairs(constants, "--set"),
            ts_unit,
        )
        for option, fields in (("--columns", mapping.columns), ("--set", mapping.constants)):
            unknown = sorted(set(fields) - set(FIELDS))
            if unknown:
                raise ConfigError(
                    f"promo replay {option}: unknown event fields {unknown}; "
                    f"known: {', '.join(FIELDS)}"
                )
        missing = [f for f in ("user_id", "ts", "type") if f not in mapping.columns]
        if missing:
            raise ConfigError(f"promo replay --columns: must name the columns of {missing}")
        if ts_unit not in TS_UNITS:
            raise ConfigError(f"promo replay --ts-unit: one of {', '.join(TS_UNITS)}")
        return mapping


def read_csv(path: Path, mapping: CsvMapping) -> Iterator[bytes]:
    """The file's rows as event JSON lines (see :func:`events_from_csv`)."""
    with path.open(newline="", encoding="utf-8-sig") as rows:
        yield from events_from_csv(rows, mapping, id_prefix=path.stem)


def events_from_csv(rows: Iterable[str], mapping: CsvMapping, *, id_prefix: str) -> Iterator[bytes]:
    """Each row after the header as one event's JSON; rows numbered from the header's 1."""
    reader = csv.DictReader(rows)
    header = reader.fieldnames or []
    absent = sorted(set(mapping.columns.values()) - set(header))
    if absent:
        raise ConfigError(f"promo replay --columns: the file has no columns {absent}")
    constants = {f: _cell(f, v, mapping.ts_unit) for f, v in mapping.constants.items()}
    for number, row in enumerate(reader, start=2):
        event: dict[str, Any] = dict(constants)
        for field, column in mapping.columns.items():
            cell = (row.get(column) or "").strip()
            if cell:
                event[field] = _cell(field, cell, mapping.ts_unit)
        if isinstance(event.get("type"), str):
            event["type"] = mapping.types.get(event["type"], event["type"])
        event.setdefault("event_id", f"{id_prefix}-{number}")
        yield orjson.dumps(event)


def _cell(field: str, cell: str, ts_unit: str) -> Any:
    """The cell as the contract's type, or as written when it is not one."""
    kind = FIELDS[field]
    try:
        if field == "ts":
            return _epoch_ms(cell, ts_unit)
        if kind is int:
            return int(cell)
        if kind is float:
            return float(cell)
    except ValueError:
        return cell
    return cell


def _epoch_ms(cell: str, unit: str) -> int:
    """Epoch milliseconds from the cell; an ISO time without a zone is taken as UTC.

    >>> _epoch_ms("2015-06-02T05:02:12Z", "iso"), _epoch_ms("2015-06-02 05:02:12", "iso")
    (1433221332000, 1433221332000)
    >>> _epoch_ms("1433221332.5", "s")
    1433221332500
    """
    if unit == "iso":
        moment = datetime.fromisoformat(cell.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    value = float(cell)
    return round(value * 1000) if unit == "s" else round(value)


def _pairs(text: str, option: str) -> dict[str, str]:
    """``a=b,c=d`` as a dict; a malformed pair raises ``ConfigError`` naming ``option``."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"promo replay {option}: expected name=value pairs, got {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs
