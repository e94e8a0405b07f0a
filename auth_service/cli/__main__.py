"""``python -m auth_service.cli``: the same as the ``auth-service`` command."""

import sys

from . import main

sys.exit(main())
