"""A local Shadowserver Reports API and download host, for tests, benchmarks and demos.

config     what is served: keys, scope, inventory options, CSV style, malformed rows
columns    plausible values per column name (subject side inside the scope, other side outside)
generate   deterministic rows and CSV rendering
reports    the report inventory (generated or from a directory), ids, ground truth
faults     runtime fault switches and counters
dates      the API's date syntax
api        request handling of /api2/<module>/<method>
state      the Simulator: clock, inventory, file cache, downloads
server     the HTTP server (one port: /api2/, /dl/, /_control/)
"""

from ingestor.simulator.api import ApiResponse
from ingestor.simulator.config import (
    DEFAULT_TYPES,
    MALFORMATIONS,
    ApiKey,
    CsvStyle,
    LateReport,
    Malformations,
    Republish,
    Scope,
    SimulatorConfig,
)
from ingestor.simulator.faults import Counters, FaultControl, Faults
from ingestor.simulator.reports import Report
from ingestor.simulator.server import SimulatorServer
from ingestor.simulator.state import Download, Simulator

__all__ = [
    "DEFAULT_TYPES",
    "MALFORMATIONS",
    "ApiKey",
    "ApiResponse",
    "Counters",
    "CsvStyle",
    "Download",
    "FaultControl",
    "Faults",
    "LateReport",
    "Malformations",
    "Report",
    "Republish",
    "Scope",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
]
