"""`python -m lamina.cli` runs the command line."""
from lamina.cli import main

main()
