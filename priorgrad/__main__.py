import sys

from priorgrad.cli import main

sys.exit(main())
