"""``python -m anyon`` runs the command line."""

import sys

from anyon.cli import main

sys.exit(main())
