from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from promo.replay import (
    DAY_MS,
    ReplayMessage,
    latest_ts,
    read_lines,
    replay,
    shift_to_now,
    to_message,
)
from promo.replay_csv import CsvMapping, events_from_csv, read_csv
from schemas.events import ClickEvent
from streams.errors import ConfigError
from streams.validation import Rejected, validate_event

HOUR_MS = 3_600_000


def event(user: str, ts: int, **extra: object) -> bytes:
    return orjson.dumps(
        {"event_id": f"{user}-{ts}", "user_id": user, "ts": ts, "type": "view", **extra}
    )


def test_a_recorded_file_is_sent_in_order_keyed_by_user_and_nothing_is_dropped(
    tmp_path: Path,
) -> None:
    lines = [event("u1", 1_000), b"{broken", b"", event("u2", 2_000), b'["not", "an object"]']
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\n")
    sent: list[ReplayMessage] = []
    summary = replay((to_message(line) for line in read_lines(path)), sent.append)
    # Every non-empty line goes out, in file order; the bad ones unkeyed, for the dead letters.
    assert [m.value for m in sent] == [line for line in lines if line]
    assert [m.key for m in sent] == [b"u1", None, b"u2", None]
    assert (summary.sent, summary.unreadable) == (4, 2)
    assert (summary.first_ts, summary.last_ts) == (1_000, 2_000)


def test_shifting_to_now_moves_every_event_by_the_same_whole_days() -> None:
    old = [event("u1", 5 * DAY_MS + 7 * HOUR_MS), event("u1", 5 * DAY_MS + 9 * HOUR_MS + 1)]
    now = 200 * DAY_MS + 2 * HOUR_MS
    shift = shift_to_now(latest_ts(iter(old)) or 0, now)
    moved = [to_message(line, shift) for line in old]
    times = [orjson.loads(m.value)["ts"] for m in moved]
    assert shift % DAY_MS == 0
    assert now - DAY_MS < times[1] <= now  # the newest within the last day
    assert times[1] - times[0] == 2 * HOUR_MS + 1  # relative timing kept
    assert (times[0] % DAY_MS) == 7 * HOUR_MS  # and the hour of day (the budget's pacing)
    assert [m.ts for m in moved] == times


def test_recorded_pace_waits_for_each_events_time_sped_up() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    messages = [to_message(event("u1", ts)) for ts in (0, 60_000, 60_000, 180_000)]
    replay(iter(messages), lambda m: None, speed=60.0, clock=lambda: now[0], sleep=sleep)
    assert waits == [1.0, 2.0]  # a minute of history per second


# A public shop log's layout (RetailRocket's events.csv): no prices or categories, times in ms.
RETAILROCKET = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1433221332117,257597,view,355908,\n"
    "1433224214164,992329,addtocart,248676,\n"
    "1433221999827,111016,transaction,5411,11117\n"
    "yesterday,257597,view,355908,\n"
)
RR_MAPPING = CsvMapping.parse(
    columns="user_id=visitorid,ts=timestamp,type=event,item_id=itemid,order_id=transactionid",
    types="addtocart=add_to_cart,transaction=purchase",
    constants="category=unknown,price=0,quantity=1,order_total=0",
)


def test_a_csv_history_becomes_contract_events_and_its_bad_rows_are_sent_for_the_dead_letters(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(RETAILROCKET)
    lines = list(read_csv(path, RR_MAPPING))
    events = [orjson.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["view", "add_to_cart", "purchase", "view"]
    assert [e["event_id"] for e in events] == ["events-2", "events-3", "events-4", "events-5"]
    assert events[2]["order_id"] == "11117" and "order_id" not in events[0]
    verdicts = [
        validate_event(line, key=e["user_id"].encode(), message_ts=1433230000000)
        for line, e in zip(lines, events, strict=True)
    ]
    assert all(isinstance(v, ClickEvent) for v in verdicts[:3])
    # Nothing repaired or dropped: the row whose time is not a time is rejected with why.
    assert isinstance(verdicts[3], Rejected) and "ts" in verdicts[3].detail
    # The same file read twice gives the same ids: a second replay is deduplicated.
    assert list(read_csv(path, RR_MAPPING)) == lines


@pytest.mark.parametrize(
    ("options", "rows", "named"),
    [
        ({"columns": "user_id=a,ts=b,type=c,colour=d"}, "a,b,c,d\n", "--columns"),
        ({"columns": "user_id=a,ts=b"}, "a,b\n", "--columns"),
        ({"columns": "user_id=a,ts=b,type=c", "constants": "price"}, "a,b,c\n", "--set"),
        ({"columns": "user_id=a,ts=b,type=c", "ts_unit": "days"}, "a,b,c\n", "--ts-unit"),
        ({"columns": "user_id=a,ts=b,type=missing"}, "a,b,c\n", "--columns"),
    ],
)
def test_a_bad_mapping_stops_before_anything_is_sent_naming_the_option(
    options: dict[str, str], rows: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        list(events_from_csv(rows.splitlines(), CsvMapping.parse(**options), id_prefix="f"))
