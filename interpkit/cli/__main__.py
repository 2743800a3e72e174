import sys

from interpkit.cli import main

sys.exit(main())
