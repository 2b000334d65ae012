"""Wire contracts of promo-stream: clickstream events, offers, decisions, outcomes, dead letters.

Each contract is a frozen dataclass here and, for the ones other teams build against, a JSON
Schema under ``schemas/json/`` (the published form; see the README's "Contracts").
"""

from pathlib import Path

JSON_SCHEMA_DIR = Path(__file__).parent / "json"
