import sys

from tinyab.cli import main

sys.exit(main())
