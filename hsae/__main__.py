"""``python -m hsae`` (also what ``torchrun -m hsae run RECIPE`` launches)."""

import sys

from hsae.cli import main

sys.exit(main())
