"""`python -m csr_core ...` entry point."""

from csr_core.cli import main

raise SystemExit(main())
