"""`python -m lamina VERB ...` runs the command line, as `lamina VERB ...` does."""
from lamina.cli import main

main()
