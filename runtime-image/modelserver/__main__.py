import sys

from modelserver.cli import main

sys.exit(main())
