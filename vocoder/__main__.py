import sys

from vocoder.cli import main

sys.exit(main())
