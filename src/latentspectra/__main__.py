"""`python -m latentspectra` runs the command line."""

from .cli import main

main()
