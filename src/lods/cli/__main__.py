"""`python -m lods.cli`: the `lods` command."""

from . import main

main()
