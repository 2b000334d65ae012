"""The cell oracle decides per learner cell, by the mean truth of the users seen there."""

from __future__ import annotations

from simulator.policies import CellOraclePolicy
from simulator.population import build_population
from streams.engine import DecisionContext
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES


class _Truth:
    """Expected profit per action: users u00000-u00002 gain from pct10, the rest lose."""

    def profits(self, user: object, context: object = None) -> dict[str, float]:
        if user.user_id < "u00003":  # type: ignore[attr-defined]
            return {"none": 1.0, "pct10": 9.0}
        return {"none": 1.0, "pct10": 0.0}


def _context(user_id: str, views: float) -> DecisionContext:
    vector = [0.0] * len(FEATURE_NAMES)
    vector[FEATURE_INDEX["views_30d"]] = views
    return DecisionContext(
        user_id=user_id,
        decision_id=f"d-{user_id}",
        ts=0,
        trigger="cart_return",
        features=tuple(vector),
        order_value=50.0,
        explore=False,
        draw=0.5,
        models=None,  # type: ignore[arg-type]
        margin_rate=0.3,
    )


def test_each_cell_gets_its_best_action_by_the_mean_truth_of_its_users() -> None:
    population = build_population(10, seed=1)
    oracle = CellOraclePolicy(population, _Truth(), min_decisions=4)  # type: ignore[arg-type]
    browsers = [_context(f"u0000{i}", views=50.0) for i in range(4)]
    # Too few decisions seen in the cell: nothing, whatever the user's own truth.
    assert [oracle.choose(c).action for c in browsers[:3]] == ["none"] * 3
    # Mean gain of pct10 in the cell: (8 + 8 + 8 - 1) / 4 > 0, so even u00003, whom the
    # offer loses money on, gets it: the oracle knows cells, not users.
    assert oracle.choose(browsers[3]).action == "pct10"
    # Another cell (little browsing) holds only losing users: nothing there.
    others = [_context(f"u0000{i}", views=2.0) for i in range(3, 9)]
    assert {oracle.choose(c).action for c in others} == {"none"}
