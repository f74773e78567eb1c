"""``python -m ingestor`` runs the command line."""

from ingestor.cli import main

main()
