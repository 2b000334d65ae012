"""Producers' bytes printed by `promo dead-letters` and `promo offers` cannot drive the terminal."""

from __future__ import annotations

from promo.terminal import safe_for_terminal


def test_control_and_format_characters_are_escaped() -> None:
    hostile = "title\x1b]0;pwned\x07 clear\x1b[2J csi\x9b31m bidi\u202eevil\u202c bell\x07 tab\t"
    shown = safe_for_terminal(hostile)
    assert all(c.isprintable() for c in shown)
    assert shown == (
        "title\\x1b]0;pwned\\x07 clear\\x1b[2J csi\\x9b31m "
        "bidi\\u202eevil\\u202c bell\\x07 tab\\x09"
    )


def test_ordinary_text_is_unchanged() -> None:
    assert safe_for_terminal("Größe 42, 10 % off — ok ✓") == "Größe 42, 10 % off — ok ✓"
