"""``python -m ingestor`` runs the command line."""

from ingestor.cli import main

if __name__ == "__main__":  # importing this module must not run the CLI
    main()
