"""``python -m gateway.cli``: the ``wardwatch`` command without the installed script."""

import sys

from .main import main

sys.exit(main())
