"""``python -m medalpaca_core …``: see ``medalpaca_core.cli``."""

import sys

from .cli import main

sys.exit(main())
