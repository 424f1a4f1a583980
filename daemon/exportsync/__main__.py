"""`python -m exportsync` is the `exportsync` command."""

from exportsync.cli import main

raise SystemExit(main())
