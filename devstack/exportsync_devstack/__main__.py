import os
import sys

from .cli import main

code = main()
# main() already stopped the servers and joined their threads; skipping the interpreter's
# teardown of moto/botocore modules saves ~0.4 s per stop (every e2e test pays it).
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
