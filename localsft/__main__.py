import sys

from localsft.cli import main

sys.exit(main())
