"""`python -m cobrador`."""

import sys

from cobrador.cli import main

if __name__ == "__main__":
    sys.exit(main())
