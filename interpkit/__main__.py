"""``python -m interpkit`` (and ``torchrun -m interpkit train-sae ...``): the command line."""

import sys

from interpkit.cli import main

sys.exit(main())
