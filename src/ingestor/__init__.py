"""shadowserver-ingestor: Shadowserver Reports API files into PostgreSQL, every event exactly once."""

from __future__ import annotations

__version__ = "2.0.0.dev0"
