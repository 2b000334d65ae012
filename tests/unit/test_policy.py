from __future__ import annotations

from collections import Counter

import pytest

from streams.catalogue import DEFAULT_CATALOGUE
from streams.policy import ContactLimits, choose_action, in_control_group, ineligibility

PROBS = {"none": 0.1, "pct10": 0.2, "pct20": 0.21, "free_shipping": 0.12, "bundle15": 0.1}


def test_propensity_is_the_frequency_of_the_action() -> None:
    n = 20_000
    counts: Counter[str] = Counter()
    logged: dict[str, float] = {}
    for i in range(n):
        c = choose_action(
            PROBS,
            order_value=80.0,
            catalogue=DEFAULT_CATALOGUE,
            gross_margin=0.3,
            epsilon=0.3,
            draw=(i + 0.5) / n,
        )
        counts[c.action] += 1
        logged[c.action] = c.propensity
    assert sum(logged.values()) == pytest.approx(1.0)
    for action, p in logged.items():
        assert counts[action] / n == pytest.approx(p, abs=0.01)


def test_nothing_is_given_away_when_offers_do_not_pay() -> None:
    flat = dict.fromkeys(PROBS, 0.3)
    c = choose_action(
        flat, order_value=80.0, catalogue=DEFAULT_CATALOGUE, gross_margin=0.3, epsilon=0.0, draw=0.9
    )
    assert c.action == "none" and c.propensity == 1.0


def test_control_group_is_sticky_and_sized() -> None:
    users = [f"u{i}" for i in range(20_000)]
    share = sum(in_control_group(u, salt="s", share=0.1) for u in users) / len(users)
    assert share == pytest.approx(0.1, abs=0.01)
    assert all(
        in_control_group(u, salt="s", share=0.1) == in_control_group(u, salt="s", share=0.1)
        for u in users[:100]
    )


LIMITS = ContactLimits(cooldown_ms=60, max_per_day=1, max_per_week=2, max_open_decisions=3)
DAY = 86_400_000


@pytest.mark.parametrize(
    ("now", "last", "offers", "open_", "why"),
    [
        (1000, 990, [], 0, "cooldown"),
        (1000, 100, [], 3, "open_decisions"),
        (DAY, 0, [10], 0, "daily_cap"),
        (3 * DAY, 0, [10, DAY + 10], 0, "weekly_cap"),
        (3 * DAY, 0, [10], 0, None),
    ],
)
def test_ineligibility(now: int, last: int, offers: list[int], open_: int, why: str | None) -> None:
    assert (
        ineligibility(
            now, last_decision=last, offer_times=offers, open_decisions=open_, limits=LIMITS
        )
        == why
    )
