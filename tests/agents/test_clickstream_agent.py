"""The clickstream agent in Faust's test context: raw bytes in, decisions, offers, dead letters
and user state out, through the agent's own ``take_events`` batching and its Faust table.

Timeline of one user in most tests (event time, minutes after T0)::

    0     1            61
    view  add_to_cart  add_to_cart
    ^ decision         ^ decision again: the 60 min cooldown has passed
      (cooldown)
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.types import TP

from agents import clickstream
from agents.clickstream import evict_idle
from agents.deliveries import RECORD_OVERHEAD_BYTES, DeliveryError, deliver
from agents.state_store import end_marker_key, is_user_key, ledger_key
from schemas.decisions import NO_OFFER
from streams.budget import BudgetLedger
from streams.engine import EngineOutput
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.policy import in_control_group
from streams.user_state import IDLE_EVICTION_MS, UserState
from tests.agents.conftest import MINUTE_MS, AgentHarness, Sent, schema_validator

T0 = 1_700_000_000_000
OFFER_SCHEMA = schema_validator("offer.schema.json")
DECISION_SCHEMA = schema_validator("decision.schema.json")
DEAD_LETTER_SCHEMA = schema_validator("dead-letter.schema.json")
SUPPRESSION_SCHEMA = schema_validator("suppression.schema.json")


def view(
    user: str, event_id: str, ts: int, item: str = "i1", price: float = 40.0
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "view",
        "item_id": item,
        "category": "shoes",
        "price": price,
    }


def add_to_cart(
    user: str, event_id: str, ts: int, item: str = "i1", price: float = 40.0
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "add_to_cart",
        "item_id": item,
        "category": "shoes",
        "price": price,
        "quantity": 1,
    }


async def send(h: AgentHarness, event: dict[str, Any], partition: int = 0) -> int:
    return await h.put(
        event, key=event["user_id"].encode(), partition=partition, timestamp_ms=event["ts"]
    )


def state_of(h: AgentHarness, user: str) -> UserState:
    return state_from(h, h.promo.user_state.data[user.encode()])


def state_from(h: AgentHarness, raw: bytes | None) -> UserState:
    assert raw is not None, "a tombstone, not a state"
    return UserState.from_bytes(raw, h.promo.engine.config.abandon_after_ms)


async def test_view_then_add_to_cart_decides_once_and_offers_validate(
    clickstream_agent: Any,
) -> None:
    users = [f"user-{n}" for n in range(12)]
    # Everyone explores: an untried offer that might pay is picked 2 times in 3; no control.
    async with clickstream_agent(
        explore_share=1.0, control_share=0.0, batch_size=2 * len(users)
    ) as h:
        for user in users:
            await send(h, view(user, f"{user}-v", T0))
            await send(h, add_to_cart(user, f"{user}-c", T0 + MINUTE_MS))
        await h.wait_until(lambda h: len(h.changelog) == len(users))
        await h.settle()

        decisions = h.decisions
        for d in decisions:
            DECISION_SCHEMA.validate(d)
        # The view decides; the cart add a minute later is inside the cooldown.
        assert sorted(d["user_id"] for d in decisions) == sorted(users)
        assert {d["trigger"] for d in decisions} == {"view"}
        assert {s.key for s in h.on(h.settings.topic_decisions)} == {u.encode() for u in users}
        assert all(not d["control"] and d["chosen_offer"] == d["policy_offer"] for d in decisions)

        offers = h.offers
        assert offers, "exploring 12 users picked no offer at all"
        for sent in offers:
            OFFER_SCHEMA.validate(sent.json())
            assert sent.key == sent.json()["user_id"].encode()
        # One offer per decision that chose one, and it is the offer the decision names.
        by_decision = {o.json()["decision_id"]: o.json() for o in offers}
        assert len(by_decision) == len(offers)
        offered = {d["decision_id"]: d for d in decisions if d["chosen_offer"] != NO_OFFER}
        assert by_decision.keys() == offered.keys()
        for decision_id, offer in by_decision.items():
            assert offer["offer_id"] == offered[decision_id]["offer_id"]
            assert offer["offer_code"] == offered[decision_id]["chosen_offer"]
            assert offer["created_at"] == T0
        assert all(d["offer_id"] is None for d in decisions if d["chosen_offer"] == NO_OFFER)


async def test_control_users_get_a_logged_decision_and_no_offer(clickstream_agent: Any) -> None:
    users = [f"user-{n}" for n in range(20)]
    salt, share = "promo-holdout-1", 0.5
    control = {u for u in users if in_control_group(u, salt=salt, share=share)}
    assert control and control != set(users)  # the hash splits these 20 users both ways
    async with clickstream_agent(explore_share=1.0, control_share=share, holdout_salt=salt) as h:
        for user in users:
            await send(h, view(user, f"{user}-v", T0))
        await h.wait_until(lambda h: len(h.decisions) == len(users))
        await h.settle()

        for d in h.decisions:
            DECISION_SCHEMA.validate(d)
            assert d["control"] is (d["user_id"] in control)
            if d["control"]:
                assert d["chosen_offer"] == NO_OFFER
                assert d["offer_id"] is None
                assert d["propensity"] == 1.0
        # Control decisions still log what the policy would have sent.
        assert any(d["policy_offer"] != NO_OFFER for d in h.decisions if d["control"])
        offered_users = {o.json()["user_id"] for o in h.offers}
        assert offered_users and not offered_users & control


async def test_bad_messages_become_dead_letters_and_their_neighbours_are_processed(
    clickstream_agent: Any,
) -> None:
    user = "user-1"
    not_json = b"\xff\xfe{not json"  # not even UTF-8
    mismatched = view("user-2", "e-mismatch", T0)  # sent with user-1's key
    future = view(user, "e-future", T0 + 10 * MINUTE_MS)  # 10 min ahead of its timestamp
    async with clickstream_agent(batch_size=5, batch_seconds=5.0) as h:
        first = await send(h, view(user, "e-1", T0), partition=3)
        bad = await h.put(not_json, key=user.encode(), partition=3, timestamp_ms=T0 + 1)
        await send(h, add_to_cart(user, "e-2", T0 + MINUTE_MS), partition=3)
        wrong_key = await h.put(
            orjson.dumps(mismatched), key=user.encode(), partition=3, timestamp_ms=T0
        )
        too_early = await h.put(
            orjson.dumps(future), key=user.encode(), partition=3, timestamp_ms=T0
        )
        await h.wait_until(lambda h: len(h.dead_letters) == 3 and len(h.changelog) == 1)
        await h.settle()

        letters = {d["offset"]: d for d in h.dead_letters}
        assert {o: d["reason"] for o, d in letters.items()} == {
            bad: "invalid_json",
            wrong_key: "key_mismatch",
            too_early: "ts_in_future",
        }
        for letter in letters.values():
            DEAD_LETTER_SCHEMA.validate(letter)
            assert letter["source_topic"] == h.settings.topic_clickstream
            assert letter["partition"] == 3
            assert letter["key"] == user
        assert base64.b64decode(letters[bad]["raw_b64"]) == not_json
        assert letters[bad]["raw_text"] is None
        assert letters[bad]["message_ts"] == T0 + 1
        assert base64.b64decode(letters[wrong_key]["raw_b64"]) == orjson.dumps(mismatched)
        assert orjson.loads(letters[too_early]["raw_text"]) == future
        assert {s.key for s in h.on(h.settings.topic_dead_letters)} == {user.encode()}

        # The good events on either side of the bad ones went through.
        assert [(d["user_id"], d["trigger_event_id"]) for d in h.decisions] == [(user, "e-1")]
        assert first == 0
        state = state_of(h, user)
        assert state.features.count("view", "24h") == 1  # not the mismatched or future views
        assert state.features.count("add_to_cart", "24h") == 1
        assert "user-2" not in {k.decode() for k in h.promo.user_state.data}


async def test_table_holds_the_users_state_after_the_batch(clickstream_agent: Any) -> None:
    events = [
        view("user-1", "e-1", T0),
        view("user-1", "e-2", T0 + MINUTE_MS, item="i2"),
        add_to_cart("user-1", "e-3", T0 + 2 * MINUTE_MS, price=25.0),
        view("user-2", "e-4", T0),
    ]
    # One batch of exactly these four messages; the users live on different partitions.
    async with clickstream_agent(batch_size=4, batch_seconds=5.0) as h:
        for event in events:
            await send(h, event, partition=5 if event["user_id"] == "user-1" else 2)
        await h.wait_until(lambda h: len(h.changelog) == 2)
        await h.settle()

        state = state_of(h, "user-1")
        assert state.features.count("view", "24h") == 2
        assert state.features.count("add_to_cart", "24h") == 1
        assert state.features.cart_value == 25.0
        assert state.last_decision == T0
        assert [d.decision_id for d in state.open_decisions] == [
            d["decision_id"] for d in h.decisions if d["user_id"] == "user-1"
        ]
        assert state.partition == 5
        assert state_of(h, "user-2").partition == 2

        # One changelog entry per user per batch, on the partition the user's events come
        # from, holding exactly what the table holds: what a restarted worker recovers.
        entries = {s.key: s for s in h.changelog}
        assert entries.keys() == {b"user-1", b"user-2"}
        assert entries[b"user-1"].partition == 5
        assert entries[b"user-2"].partition == 2
        for key, entry in entries.items():
            assert entry.value == h.promo.user_state.data[key]


async def test_users_idle_past_every_window_leave_the_table_with_a_tombstone(
    clickstream_agent: Any,
) -> None:
    search = {"event_id": "s-1", "user_id": "idle", "ts": T0, "type": "search", "query": "q"}
    async with clickstream_agent() as h:
        await send(h, search, partition=3)  # no decision point: nothing left open
        await send(h, {**search, "event_id": "s-2", "user_id": "elsewhere"}, partition=4)
        await send(h, view("open", "v-1", T0), partition=3)  # a decision, its window open
        await h.wait_until(lambda h: len(h.changelog) == 3)
        assert state_of(h, "open").open_decisions

        assert evict_idle(h.promo, T0 + IDLE_EVICTION_MS, owned={3, 4}) == []  # not yet
        tombstones = evict_idle(h.promo, T0 + IDLE_EVICTION_MS + 1, owned={3})
        assert len(tombstones) == 1
        delivering = asyncio.ensure_future(deliver(h.promo, EngineOutput(), tombstones))
        await h.wait_until(lambda h: delivering.done())
        table = h.promo.user_state.data
        assert b"idle" not in table and {b"open", b"elsewhere"} <= set(table)
        (tombstone,) = [s for s in h.changelog if s.value is None]
        assert (tombstone.key, tombstone.partition) == (b"idle", 3)


async def test_state_carries_over_to_the_next_batch(clickstream_agent: Any) -> None:
    user = "user-1"
    views_24h = FEATURE_INDEX["views_24h"]
    cart_adds_24h = FEATURE_INDEX["cart_adds_24h"]
    async with clickstream_agent(
        batch_size=3, batch_seconds=5.0, max_offers_per_day=5, max_offers_per_week=5
    ) as h:
        for minute in (0, 1, 2):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS))
        await h.wait_until(lambda h: len(h.changelog) == 1)
        # A second batch: the agent loads the state the first one saved in the table.
        await send(h, add_to_cart(user, "c-61", T0 + 61 * MINUTE_MS))
        await send(h, view(user, "v-62", T0 + 62 * MINUTE_MS))
        await send(h, view(user, "v-63", T0 + 63 * MINUTE_MS))
        await h.wait_until(lambda h: len(h.changelog) == 2)
        await h.settle()

        first, second = h.decisions
        assert (first["trigger_event_id"], second["trigger_event_id"]) == ("v-0", "c-61")
        assert len(second["features"]) == len(FEATURE_NAMES)
        assert second["features"][views_24h] == 3.0  # the views of the first batch
        assert second["features"][cart_adds_24h] == 1.0
        assert state_of(h, user).features.count("view", "24h") == 5


async def test_records_replayed_after_a_crash_are_not_counted_twice(clickstream_agent: Any) -> None:
    user = "user-1"
    views = [view(user, f"v-{minute}", T0 + minute * MINUTE_MS) for minute in (0, 1, 2)]
    async with clickstream_agent(
        batch_size=3, batch_seconds=5.0, max_offers_per_day=5, max_offers_per_week=5
    ) as h:
        for event in views:
            await send(h, event, partition=1)
        await h.wait_until(lambda h: len(h.changelog) == 1)
        # The worker dies after its changelog entry was written but before it committed the
        # offsets: the next worker recovers this table and is handed offsets 0..2 again.
        h.agent.sent_offset = 0
        for event in views:
            await send(h, event, partition=1)
        await h.wait_until(lambda h: len(h.changelog) == 2)
        await send(h, add_to_cart(user, "c-61", T0 + 61 * MINUTE_MS), partition=1)
        await send(h, view(user, "v-62", T0 + 62 * MINUTE_MS), partition=1)
        await send(h, view(user, "v-63", T0 + 63 * MINUTE_MS), partition=1)
        await h.wait_until(lambda h: len(h.changelog) == 3)

        second = h.decisions[-1]
        assert second["trigger_event_id"] == "c-61"
        assert second["features"][FEATURE_INDEX["views_24h"]] == 3.0


async def test_state_reaches_the_changelog_only_after_its_outputs_are_delivered(
    clickstream_agent: Any,
) -> None:
    # A recovered state skips the messages it holds: the decision it caused must already be
    # acknowledged by the broker when the state's changelog entry is sent, or a crash loses it.
    async with clickstream_agent() as h:
        h.hold = True  # a slow broker: the outputs are handed over, not yet acknowledged
        await send(h, view("user-1", "v-0", T0), partition=2)
        await h.wait_until(lambda h: len(h.decisions) == 1)
        await h.settle(0.3)
        assert h.changelog == []
        h.release()
        await h.wait_until(lambda h: len(h.changelog) == 1)


async def test_end_markers_go_alone_after_the_changelog_entries_they_close(
    clickstream_agent: Any,
) -> None:
    # Tansu reports a partition's end as its last batch's base offset + 1: recovery reads up to
    # the true end only if the last batch is one record, sent once the entries before it were
    # acknowledged (a record sent with them could share their batch).
    async with clickstream_agent(changelog_end_markers=True) as h:
        h.hold = True
        await send(h, view("user-1", "v-0", T0), partition=2)
        await send(h, view("user-2", "v-1", T0), partition=5)
        await h.wait_until(lambda h: len(h.decisions) == 2)
        h.release()
        h.hold = True  # the outputs are acknowledged; the entries will be handed over, held
        await h.wait_until(lambda h: len(h.changelog) == 2)
        await h.settle(0.3)
        assert [s.key for s in h.changelog] in ([b"user-1", b"user-2"], [b"user-2", b"user-1"])
        h.release()
        await h.wait_until(lambda h: len(h.changelog) == 4)
        markers = h.changelog[2:]
        assert sorted((m.partition, m.key) for m in markers) == [
            (2, end_marker_key(2)),
            (5, end_marker_key(5)),
        ]
        assert all(not is_user_key(m.key) for m in markers)  # recovery leaves them out
    async with clickstream_agent() as h:  # Kafka's end is the high-water mark: no markers
        await send(h, view("user-1", "v-0", T0), partition=2)
        await h.wait_until(lambda h: len(h.changelog) == 1)
        await h.settle(0.3)
        assert len(h.changelog) == 1


def close_expired_windows(h: AgentHarness) -> Callable[[], Coroutine[Any, Any, None]]:
    """The sweep itself, as ``register`` defined it, to run once when a test says (its timer
    is not started by the agent's test context; Faust keeps it, wrapped, in the app's tasks)."""
    (sweep,) = [
        inspect.unwrap(task)
        for task in h.promo.app._app_tasks
        if task.__name__ == "close_expired_windows"
    ]
    return cast(Callable[[], Coroutine[Any, Any, None]], sweep)


async def loop_turns(n: int) -> None:
    """Let every other task run ``n`` times. Turns of the event loop, not wall time: the same
    on a loaded machine, and what the agent can do in them does not depend on its speed."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_users_changelog_entries_go_out_in_the_order_their_states_were_made(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent and the sweep both change users' states and deliver them, and delivering
    # waits for the broker between saving a state and sending its changelog entry. Should the
    # agent save and send a newer state of a user meanwhile, the sweep's older entry would
    # reach the changelog last, and a restart would recover a state without the agent's event
    # (the worker has committed past it: lost for good). make chaos found exactly this.
    user, partition = "user-1", 2
    monkeypatch.setattr(clickstream, "_owned_partitions", lambda promo: {partition})
    async with clickstream_agent(batch_size=1, batch_seconds=5.0) as h:
        t = h.settings
        closed_by = T0 + int(
            (t.attribution_window_hours * 60 + t.decision_lateness_minutes + 1) * MINUTE_MS
        )
        first = await send(h, view(user, "v-0", T0), partition=partition)  # opens a window
        # Another user's view moves the partition's event-time clock past the window's end:
        # the sweep will close user-1's window, user-1 having said nothing since.
        await send(h, view("user-2", "v-x", closed_by), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 2)

        # The sweep closes the window, saves the state and sends the outcome, whose delivery
        # the broker is slow to acknowledge: the state's changelog entry waits for it.
        h.hold = True
        sweeping = asyncio.create_task(close_expired_windows(h)())
        await h.wait_until(lambda h: len(h.on(t.topic_outcomes)) == 1)
        h.hold = False  # only the sweep's deliveries are slow; the agent's are not
        # Meanwhile user-1 comes back. The agent loads the state the sweep saved and adds v-1
        # well within these turns (it takes six); were its delivery not queued behind the
        # sweep's, its entry would go out ahead of the sweep's older one.
        second = await send(h, view(user, "v-1", closed_by + MINUTE_MS), partition=partition)
        await loop_turns(100)
        h.release()
        # (The harness acknowledges changelog entries as it reads them, here.)
        await h.wait_until(lambda h: sweeping.done() and len(h.changelog) == 4)
        await sweeping

        entries = [s for s in h.changelog if s.key == user.encode()]
        applied = [state_from(h, e.value).offset for e in entries]
        # Made in this order: the view, its window closed by the sweep, the second view.
        assert applied == [first, first, second], "an older state of the user was sent last"
        # The last entry is what a restart recovers: the state the worker holds.
        assert entries[-1].value == h.promo.user_state.data[user.encode()]


async def test_the_sweep_delivers_many_due_windows_in_rounds_of_a_batch(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After an outage most windows can be due at once: closed in one pass, a million users'
    # worker held its event loop 50 s and gigabytes of undelivered outputs. Each round of the
    # sweep is at most a batch, and the next one waits for its delivery.
    partition = 2
    monkeypatch.setattr(clickstream, "_owned_partitions", lambda promo: {partition})
    async with clickstream_agent(batch_size=2, batch_seconds=0.02) as h:
        t = h.settings
        closed_by = T0 + int(
            (t.attribution_window_hours * 60 + t.decision_lateness_minutes + 1) * MINUTE_MS
        )
        for i in range(5):  # five windows open
            await send(h, view(f"user-{i}", f"v-{i}", T0), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 5)
        for user in ("user-x", "user-y"):  # the clock, a batch's median, past their end
            await send(h, view(user, f"v-{user}", closed_by), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 7)

        h.hold = True  # a slow broker: the first round's delivery waits
        sweeping = asyncio.create_task(close_expired_windows(h)())
        await h.wait_until(lambda h: len(h.on(t.topic_outcomes)) == 2)
        await loop_turns(100)
        assert len(h.on(t.topic_outcomes)) == 2, "more than a batch closed before delivery"
        h.release()  # the broker answers again: the other rounds follow
        await h.wait_until(lambda h: len(h.on(t.topic_outcomes)) == 5)
        await asyncio.wait_for(sweeping, timeout=5.0)


async def test_the_sweep_closes_no_window_while_partitions_taken_over_are_recovering(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While recovery replaces the states of partitions taken over, the table may still hold
    # this worker's own older state of a user: a window closed on it would reach the
    # changelog after the recovered entries, as the user's last, without the events another
    # worker folded in. (The sweep used to go on whenever recovery had not ended yet.)
    user, partition = "user-1", 2
    monkeypatch.setattr(clickstream, "_owned_partitions", lambda promo: {partition})
    async with clickstream_agent(batch_size=1, batch_seconds=5.0) as h:
        t = h.settings
        closed_by = T0 + int(
            (t.attribution_window_hours * 60 + t.decision_lateness_minutes + 1) * MINUTE_MS
        )
        await send(h, view(user, "v-0", T0), partition=partition)  # opens a window
        await send(h, view("user-2", "v-x", closed_by), partition=partition)  # the clock
        await h.wait_until(lambda h: len(h.changelog) == 2)
        h.promo.expiry.taking_over = True  # partitions were taken over...
        for phase in ("rebalancing", "in_recovery"):  # ...and are not recovered yet
            setattr(h.promo.app, phase, True)
            # (A sweep that went on to take the partitions over would wait on the broker.)
            await asyncio.wait_for(close_expired_windows(h)(), timeout=5.0)
            await h.settle(0.2)
            assert len(h.changelog) == 2 and h.on(t.topic_outcomes) == [], phase
            setattr(h.promo.app, phase, False)


async def test_a_worker_taking_partitions_over_closes_the_windows_recovery_brought(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Users who never come back: only the sweep closes their windows, and the worker that
    # takes their partition over knows of them from what recovery applied to its table alone
    # (it no longer scans the table: a million users' held the event loop 11 s).
    partition, gone = 2, ["user-1", "user-2"]
    monkeypatch.setattr(clickstream, "_owned_partitions", lambda promo: {partition})
    async with clickstream_agent(batch_size=1) as h:
        t = h.settings
        closed_by = T0 + int(
            (t.attribution_window_hours * 60 + t.decision_lateness_minutes + 1) * MINUTE_MS
        )
        for user in gone:
            await send(h, view(user, f"v-{user}", T0), partition=partition)  # opens a window
        for n in range(3):  # the latest batches: the partition's clock, past their ends
            await send(h, view(f"clock-{n}", f"v-c{n}", closed_by), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 5)
        changelog = list(h.changelog)

    async with clickstream_agent() as h:  # the partition's next owner
        h.promo.user_state.apply_changelog_batch(_recovered(changelog))
        for user in gone:
            assert user.encode() in h.promo.user_state.data
        h.promo.expiry.taking_over = True
        monkeypatch.setattr(h.promo.app.consumer, "highwaters", _holding(1_000))
        sweeping = asyncio.create_task(close_expired_windows(h)())
        await h.wait_until(lambda h: sweeping.done())
        await sweeping
        closed = [o.json() for o in h.on(h.settings.topic_outcomes)]
        assert sorted(o["user_id"] for o in closed) == gone
        assert {o["type"] for o in closed} == {"no_conversion"}
        assert h.promo.expiry.applied == {partition: 4}  # five messages read on it


def _holding(end: int) -> Callable[..., Coroutine[Any, Any, dict[TP, int]]]:
    """A broker whose logs end at ``end``: nothing lost."""

    async def highwaters(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, end)

    return highwaters


async def test_a_batch_is_acknowledged_only_once_its_states_changelog_entries_are_delivered(
    clickstream_agent: Any,
) -> None:
    # Faust commits the offsets of acknowledged messages, and its own flush before a commit
    # gives up after 0.1 s without a send: were the batch acknowledged with its states'
    # entries still buffered, a crash after the commit would lose its events from the states.
    async with clickstream_agent(batch_size=1) as h:
        h.hold = True  # a slow broker
        event = await h.agent.put(
            orjson.dumps(view("user-1", "v-0", T0)),
            key=b"user-1",
            partition=2,
            timestamp=T0 / 1000,
            wait=False,
        )
        event.message.incref()  # one reference per channel, as Faust's conductor counts them
        await h.wait_until(lambda h: len(h.decisions) == 1)
        h.release()  # the outputs arrive; the changelog entry that follows will be held
        h.hold = True
        await h.wait_until(lambda h: len(h.changelog) == 1)  # sent, not yet acknowledged
        await loop_turns(100)
        assert not event.message.acked
        h.release()
        await h.wait_until(lambda h: event.message.acked)


async def test_the_next_batch_is_processed_while_the_previous_one_is_delivered(
    clickstream_agent: Any,
) -> None:
    # Waiting for the broker's two round trips (outputs, then changelog) before taking the
    # next batch left a worker fed live traffic idle while its queue grew. One batch ahead,
    # no more: a third waits until the first is delivered.
    async with clickstream_agent(batch_size=1) as h:
        h.hold = True  # a slow broker
        await send(h, view("user-1", "v-0", T0), partition=2)
        await h.wait_until(lambda h: len(h.decisions) == 1)  # handed over, not acknowledged
        await send(h, view("user-2", "v-1", T0), partition=3)
        await h.wait_until(lambda h: b"user-2" in h.promo.user_state.data)  # processed
        await send(h, view("user-3", "v-2", T0), partition=4)
        await loop_turns(100)
        assert b"user-3" not in h.promo.user_state.data, "two batches ahead of the broker"
        assert h.changelog == [] and len(h.decisions) == 1  # batch 2 waits for batch 1
        h.release()
        await h.wait_until(lambda h: len(h.changelog) == 3)
        # Delivered in the order processed, outputs before their states' entries.
        assert [d["user_id"] for d in h.decisions] == ["user-1", "user-2", "user-3"]
        assert [e.key for e in h.changelog] == [b"user-1", b"user-2", b"user-3"]


async def test_nothing_processed_after_a_lost_output_is_delivered(clickstream_agent: Any) -> None:
    # The batch processed while an output of the one before was refused must not go out
    # either: its states would reach the changelog, and their events the commit, ahead of
    # the batch that the next worker reads again.
    async with clickstream_agent(batch_size=1) as h:
        h.hold = True
        await send(h, view("user-1", "v-0", T0), partition=2)
        await h.wait_until(lambda h: len(h.decisions) == 1)
        await send(h, view("user-2", "v-1", T0), partition=3)
        await h.wait_until(lambda h: b"user-2" in h.promo.user_state.data)
        h.fail(RuntimeError("NotLeaderForPartitionError"))
        await loop_turns(100)
        await h.settle(0.3)
        assert h.changelog == [] and len(h.decisions) == 1
        assert isinstance(h.promo.app.crash_reason, DeliveryError)


async def test_a_refused_output_stops_the_worker_before_its_state_is_saved(
    clickstream_agent: Any,
) -> None:
    async with clickstream_agent() as h:
        h.refuse[h.settings.topic_decisions] = RuntimeError("MessageSizeTooLargeError")
        await send(h, view("user-1", "v-0", T0), partition=2)
        await h.wait_until(lambda h: len(h.decisions) == 1)
        await h.settle(0.3)
        assert h.changelog == []  # the batch will be read again, from a state without it
        assert isinstance(h.promo.app.crash_reason, DeliveryError)


async def test_an_output_the_broker_cannot_take_becomes_a_dead_letter_not_a_crash_loop(
    clickstream_agent: Any,
) -> None:
    # Refused as too large, it would be refused again at every replay of its batch.
    users = [f"user-{n}" for n in range(12)]
    async with clickstream_agent(explore_share=1.0, control_share=0.0, batch_size=12) as h:
        h.refuse[h.settings.topic_offers] = MessageSizeTooLargeError()
        # Decisions (~700 B) are too large to try at all: the producer would raise at once.
        h.max_request_size = RECORD_OVERHEAD_BYTES + 600
        for user in users:
            await send(h, view(user, f"{user}-v", T0))
        await h.wait_until(lambda h: len(h.changelog) == len(users))
        assert h.promo.app.crash_reason is None
        assert h.decisions == [] and h.on(h.settings.topic_offers)  # offers were tried
        letters = h.dead_letters
        assert {d["source_topic"] for d in letters} == {
            h.settings.topic_offers,
            h.settings.topic_decisions,
        }
        for letter in letters:
            DEAD_LETTER_SCHEMA.validate(letter)
            assert letter["reason"] == "output_not_producible" and letter["raw_b64"] == ""
            assert letter["raw_size"] > 0 and letter["key"] in users


async def test_budget_ledger_is_kept_with_its_partition_and_suppressions_are_sent(
    clickstream_agent: Any,
) -> None:
    users = [f"user-{n}" for n in range(12)]
    async with clickstream_agent(
        explore_share=1.0, control_share=0.0, daily_budget=40.0, batch_size=2 * len(users)
    ) as h:
        for user in users:
            await send(h, view(user, f"{user}-v", T0), partition=5)
            await send(h, add_to_cart(user, f"{user}-c", T0 + MINUTE_MS), partition=5)
        await h.wait_until(lambda h: len(h.changelog) == len(users) + 1)
        await h.settle()

        # The partition's ledger: in the table and in the changelog, on the partition whose
        # events it paid for, so whoever takes the partition over takes its spend too.
        key = ledger_key(5)
        (entry,) = [s for s in h.changelog if s.key == key]
        assert entry.partition == 5 and entry.value == h.promo.user_state.data[key]
        ledger = BudgetLedger.from_bytes(entry.value)
        assert sum(ledger.today) == 2 * len(users)  # every decision point is traffic
        assert 0 < ledger.spent <= 40.0 / h.settings.topic_partitions
        assert len(h.offers) == sum(1 for d in h.decisions if d["chosen_offer"] != NO_OFFER)

        suppressions = [s.json() for s in h.on(h.settings.topic_suppressions)]
        for suppression in suppressions:
            SUPPRESSION_SCHEMA.validate(suppression)
        reasons = {s["user_id"]: s["reason"] for s in suppressions if s["decision_id"] == ""}
        assert reasons == dict.fromkeys(users, "cooldown")  # each cart add, a minute later
        assert any(s["reason"] in ("budget", "pacing") for s in suppressions)

        # A restarted worker's index of open windows reads users only, not the ledger.
        h.promo.expiry.due_at.clear()
        h.promo.user_state.apply_changelog_batch(_recovered(h.changelog))
        assert set(h.promo.expiry.due_at) == set(users)


def _recovered(entries: list[Sent]) -> list[Any]:
    """The changelog records as Faust's recovery hands them to the table."""
    return [
        SimpleNamespace(
            key=e.key, value=e.value, message=SimpleNamespace(value=e.value, partition=e.partition)
        )
        for e in entries
    ]


def _own_without_replays(monkeypatch: pytest.MonkeyPatch, partition: int) -> None:
    """The worker owns ``partition`` and has no logged decisions to read back on assignment."""
    monkeypatch.setattr(clickstream, "_owned_partitions", lambda promo: {partition})

    async def no_replays(settings: Any) -> dict[str, Any]:
        return {}

    monkeypatch.setattr(clickstream, "read_recent_decisions", no_replays)


class _Consumer:
    """What the agent asks of Faust's consumer after an assignment, set on the test app's
    consumer: committed offsets as Faust's seek left them, the logs' starts and ends, and
    seeks."""

    def __init__(self, consumer: Any, tp: TP, committed: int, monkeypatch: Any) -> None:
        self.tp, self.consumer, self.seeks = tp, consumer, list[tuple[TP, int]]()
        consumer._committed_offset[tp] = committed
        consumer._gap[tp] = "the skipped range"
        monkeypatch.setattr(consumer, "earliest_offsets", self.earliest_offsets)
        monkeypatch.setattr(consumer, "highwaters", self.highwaters)
        monkeypatch.setattr(clickstream, "_seek_back", self.seek_back)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 1_000)

    async def seek_back(self, consumer: Any, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_a_partition_kept_through_a_rebalance_resumes_at_its_committed_offset(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # make chaos (crashes): a worker kept a partition through a rebalance, Faust sought it to
    # its committed offset, and yet its first batch began 164 messages later; Faust committed
    # over them, and no state ever held those events.
    user, partition = "user-1", 1
    _own_without_replays(monkeypatch, partition)
    async with clickstream_agent(batch_size=2, batch_seconds=5.0) as h:
        tp = TP(h.settings.topic_clickstream, partition)
        consumer = _Consumer(h.promo.app.consumer, tp, 0, monkeypatch)
        await h.promo.app.on_partitions_assigned.send(set())
        h.agent.sent_offset = 2  # offsets 0 and 1 were skipped by the consumer
        await send(h, view(user, "v-2", T0 + 2 * MINUTE_MS), partition=partition)
        await send(h, view(user, "v-3", T0 + 3 * MINUTE_MS), partition=partition)
        await h.settle(1.0)
        assert h.changelog == []  # nothing folded in after the gap...
        assert consumer.seeks == [(consumer.tp, 0)]  # ...the partition is read again from 0
        assert consumer.tp not in consumer.consumer._gap  # and Faust may not commit over the gap

        h.agent.sent_offset = 0  # what the seek reads again, in order
        for minute in range(4):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 2)
        state = state_from(h, h.changelog[-1].value)
        assert state.offset == 3
        assert state.features.count("view", "1h") == 4


async def test_a_partition_that_skips_offsets_after_its_first_batch_is_read_again(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # make chaos (crashes): after a rebalance a kept partition resumed at its committed
    # offset, and a later batch went from 9,054 straight on to 9,175. The states folded in the
    # messages after the hole and recorded their offsets, so the worker that read the
    # partition again skipped the missing ones as already applied: 12 users' later decisions
    # were taken with fewer views and cart items than the crash-free run's.
    #
    #   delivered  0 1 | 2 3 | 6 7 (4, 5 missing) | 4 5 | 6 7  (after the seek back)
    #   folded in  0 1 | 2 3 | -                   | 4 5 | 6 7
    user, partition = "user-1", 1
    _own_without_replays(monkeypatch, partition)
    async with clickstream_agent(batch_size=2, batch_seconds=5.0) as h:
        tp = TP(h.settings.topic_clickstream, partition)
        consumer = _Consumer(h.promo.app.consumer, tp, 0, monkeypatch)
        await h.promo.app.on_partitions_assigned.send(set())
        for minute in range(4):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 2)
        assert state_from(h, h.changelog[-1].value).offset == 3

        h.agent.sent_offset = 6  # offsets 4 and 5 are skipped by the consumer
        for minute in (6, 7):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS), partition=partition)
        await h.settle(1.0)
        assert len(h.changelog) == 2  # nothing folded in after the hole...
        assert consumer.seeks == [(consumer.tp, 4)]  # ...the partition is read again from 4
        assert consumer.tp not in consumer.consumer._gap  # and Faust may not commit over it

        h.agent.sent_offset = 4  # what the seek reads again, in order
        for minute in range(4, 8):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 4)
        state = state_from(h, h.changelog[-1].value)
        assert state.offset == 7
        assert state.features.count("view", "1h") == 8


async def test_a_hole_answered_twice_is_taken_only_when_the_broker_has_nothing_there(
    clickstream_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # make chaos (crashes): two seek backs in a row were answered by the same message, the
    # messages read again only held up behind the queue's leftovers; "the same answer twice"
    # took 499 of them for a hole of the log.
    user, partition = "user-1", 1
    _own_without_replays(monkeypatch, partition)
    asked: list[int] = []

    async def broker_first_offset(settings: Any, tp: TP, offset: int) -> int:
        asked.append(offset)
        return offset  # the broker has the messages from the offset expected on

    monkeypatch.setattr(clickstream, "_first_offset_from", broker_first_offset)
    async with clickstream_agent(batch_size=1, batch_seconds=5.0) as h:
        tp = TP(h.settings.topic_clickstream, partition)
        consumer = _Consumer(h.promo.app.consumer, tp, 0, monkeypatch)
        await h.promo.app.on_partitions_assigned.send(set())
        for _ in range(2):  # answered twice by offset 2
            h.agent.sent_offset = 2
            await send(h, view(user, "v-2", T0 + 2 * MINUTE_MS), partition=partition)
            await h.settle(0.5)
        assert asked == [0] and consumer.seeks == [(tp, 0), (tp, 0)]
        assert h.changelog == [] and tp not in consumer.consumer._gap  # no hole taken

        h.agent.sent_offset = 0
        for minute in range(3):
            await send(h, view(user, f"v-{minute}", T0 + minute * MINUTE_MS), partition=partition)
        await h.wait_until(lambda h: len(h.changelog) == 3)
        assert state_from(h, h.changelog[-1].value).features.count("view", "1h") == 3
