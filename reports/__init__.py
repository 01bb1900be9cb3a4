"""The paper-style report generator (python -m reports)."""
