"""``python -m reka_nb``: the same as the ``reka-nb`` command."""

import sys

from .cli import main

sys.exit(main())
