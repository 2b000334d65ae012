"""Text from producers, made safe to print on an operator's terminal.

Dead letters and offers carry bytes that someone else wrote; printed as they are, an escape
sequence in them could move the cursor, rewrite the screen or set the window title. Control
and format characters (C0, DEL, C1, bidirectional overrides...) are shown as escapes.

>>> safe_for_terminal("ok é \\x1b[2J\\x9b\\u202e!")
'ok é \\\\x1b[2J\\\\x9b\\\\u202e!'
"""

from __future__ import annotations

import unicodedata


def safe_for_terminal(text: str) -> str:
    return "".join(_escape(c) if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
