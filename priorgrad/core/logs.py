"""Logging set-up and progress-bar policy, one of each for every command of the project."""
from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """Standard-library logging to stderr, one format for every stage and command."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)


def show_progress(requested: bool | None = None) -> bool:
    """Progress bars when asked for, else only in a terminal (DVC, CI and Ray logs stay clean)."""
    return requested if requested is not None else sys.stderr.isatty()
