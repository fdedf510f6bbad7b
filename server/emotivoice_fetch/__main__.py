import sys

from emotivoice_fetch.cli import main

sys.exit(main())
