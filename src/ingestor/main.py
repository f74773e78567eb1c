"""v1.0.0's entry point, kept so existing containers and scripts work unchanged.

    python -m ingestor.main               run as a service (same as ``shadowserver-ingestor run``)
    python -m ingestor.main --ping        call test/ping
    python -m ingestor.main --once        one cycle
    python -m ingestor.main --backfill N  N days up to today (0 = today only; negative N is refused)

As in v1.0.0, ``--ping`` wins over ``--backfill``, which wins over ``--once``. Unlike v1.0.0, ``--backfill
0`` means today (it used to start the daemon), and failures give a non-zero exit code.
"""

from __future__ import annotations

import argparse

from ingestor.cli import main as cli


def translate(argv: list[str] | None = None) -> list[str]:
    """The ``shadowserver-ingestor`` arguments equivalent to v1.0.0's flags."""
    parser = argparse.ArgumentParser(prog="python -m ingestor.main", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--ping", action="store_true", help="test the API credentials and exit")
    parser.add_argument("--once", action="store_true", help="run one ingestion cycle and exit")
    parser.add_argument("--backfill", type=int, metavar="N", help="backfill N days up to today and exit")
    args = parser.parse_args(argv)
    if args.backfill is not None and args.backfill < 0:
        parser.error("--backfill needs 0 or more days")
    if args.ping:
        return ["ping"]
    if args.backfill is not None:
        return ["backfill", str(args.backfill)]
    if args.once:
        return ["once"]
    return ["run"]


def main(argv: list[str] | None = None) -> None:
    cli.main(args=translate(argv), prog_name="python -m ingestor.main")


if __name__ == "__main__":
    main()
