import sys

from corelane.cli import main

sys.exit(main())
