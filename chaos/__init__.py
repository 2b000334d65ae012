"""The chaos suite: crashes, a flood of bad input and bad settings against the real local
servers, each scenario checked against a run without the chaos (``python -m chaos``)."""
