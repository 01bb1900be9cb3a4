"""Entry point of ``python -m eval`` (see eval.cli)."""
from eval.cli import main

if __name__ == "__main__":  # spawned worker processes import this module as __mp_main__
    raise SystemExit(main())
