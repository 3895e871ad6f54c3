"""`python -m paygent.cli ...`: the same command as `paygent ...` (the stack starts its processes this way)."""

from paygent.cli.main import main

main()
