import sys

from dev.stack import main

sys.exit(main())
