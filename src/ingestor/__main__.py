"""``python -m ingestor`` runs the command line."""

from ingestor.cli import main

if __name__ == "__main__":  # the parse workers' forkserver imports this module too: it must not run the CLI
    main()
