"""Every error the ingestor raises on purpose, in one tree.

    IngestorError
    ├── ConfigError                    configuration is missing or invalid
    ├── ApiError                       the Shadowserver Reports API failed
    │   ├── ApiAuthError               401/403: key, secret or permissions
    │   ├── ApiMethodError             404: the method does not exist (any more)
    │   ├── ApiResponseError           an {"error": ...} body, bad JSON, unexpected shape
    │   └── ApiUnavailableError        connection errors, timeouts, 5xx, 429 after retries
    ├── DownloadError                  a report file could not be fetched completely
    │   ├── DownloadNotFoundError      404: expired or unknown id
    │   ├── EmptyDownloadError         0-byte body
    │   ├── TruncatedDownloadError     the body ended before Content-Length, mid-stream or without its final newline
    │   └── DownloadTooSlowError       over SS_DOWNLOAD_DEADLINE, or slower than SS_DOWNLOAD_MIN_SPEED
    ├── ReportFileError                a local or downloaded file cannot be read as a report
    │   ├── NotAReportError            an HTML page, a JSON object, a header unrelated to the report type
    │   └── FileTooLargeError          over SS_MAX_FILE_SIZE or SS_MAX_COMPRESSION_RATIO
    ├── DiskSpaceError                 SS_WORK_DIR has less than SS_MIN_FREE_DISK free
    ├── DatabaseError                  PostgreSQL failed (db/errors.py maps psycopg's errors here)
    │   ├── DatabaseUnavailableError   cannot connect, or the connection was lost: the run ends
    │   ├── DatabasePermissionError    the role lacks a privilege (see the README)
    │   ├── MigrationError             the schema cannot be brought up to date
    │   │   └── SchemaVersionError     the schema is not this version's (behind: run migrate; ahead: upgrade)
    │   └── DatabaseQueryError         a statement failed: the file fails, the run goes on
    │       ├── DatabaseTimeoutError   lock_timeout or statement_timeout
    │       ├── DatabaseConflictError  deadlock or serialization failure
    │       ├── DatabaseDataError      a value or a constraint was refused
    │       └── DatabaseResourceError  disk full, out of memory, a server limit
    ├── EmbeddedPostgresError          the embedded server cannot be found, started or stopped
    │   └── EmbeddedServerBusyError    an old server on the data dir is still going away (retried)
    ├── InstanceLockedError            another instance holds the ingestion lock
    ├── PortInUseError                 HEALTH_PORT (or another port we must listen on) is taken
    └── StopRequested                  a shutdown signal arrived; work was abandoned cleanly

Messages are written for an operator and never contain secrets, download ids or download URLs.
"""

from __future__ import annotations


class IngestorError(Exception):
    """Base class of the ingestor's own errors."""

    exit_code: int = 1


class ConfigError(IngestorError):
    """The configuration is missing or invalid."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"invalid configuration: {problems[0]}")
        else:
            super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class ApiError(IngestorError):
    """The Shadowserver Reports API failed."""

    def __init__(self, message: str, *, method: str = "", status: int | None = None) -> None:
        self.method = method
        self.status = status
        super().__init__(message)


class ApiAuthError(ApiError):
    """The API refused the key, the HMAC signature or the key's permissions (401/403)."""


class ApiMethodError(ApiError):
    """The API does not know this method (404)."""


class ApiResponseError(ApiError):
    """The API answered with an error object, invalid JSON or an unexpected shape."""


class ApiUnavailableError(ApiError):
    """The API could not be reached or kept failing (connection errors, timeouts, 5xx, 429)."""


class DownloadError(IngestorError):
    """A report file could not be downloaded completely."""


class DownloadNotFoundError(DownloadError):
    """The download host does not know this report (expired or unknown id)."""


class EmptyDownloadError(DownloadError):
    """The download host sent an empty body."""


class TruncatedDownloadError(DownloadError):
    """The download ended before the announced size, or without the final newline every report has."""


class DownloadTooSlowError(DownloadError):
    """The download took longer than its deadline or came in slower than the minimum speed."""


class ReportFileError(IngestorError):
    """A report file cannot be read."""


class NotAReportError(ReportFileError):
    """The content is not a Shadowserver CSV report (an HTML page, a JSON object, an unrelated CSV)."""


class FileTooLargeError(ReportFileError):
    """A report file is larger than the configured maximum, or decompresses beyond the allowed ratio."""


class DiskSpaceError(IngestorError):
    """The spool directory has less free space than the configured minimum."""


class DatabaseError(IngestorError):
    """PostgreSQL failed."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL cannot be reached."""


class DatabasePermissionError(DatabaseError):
    """The database role lacks a privilege."""


class MigrationError(DatabaseError):
    """The database schema cannot be brought up to date."""


class SchemaVersionError(MigrationError):
    """The database schema is behind this version (a read-only command does not migrate) or ahead of it."""


class DatabaseQueryError(DatabaseError):
    """A statement failed; the file that needed it fails and is retried later, the run goes on."""


class DatabaseTimeoutError(DatabaseQueryError):
    """A statement waited longer than DB_LOCK_TIMEOUT for a lock, or ran longer than DB_STATEMENT_TIMEOUT."""


class DatabaseConflictError(DatabaseQueryError):
    """The transaction met a deadlock or a serialization failure with another session."""


class DatabaseDataError(DatabaseQueryError):
    """PostgreSQL refused a value or a constraint."""


class DatabaseResourceError(DatabaseQueryError):
    """The server ran out of a resource (disk, memory) or hit one of its limits."""


class EmbeddedPostgresError(IngestorError):
    """The embedded PostgreSQL server cannot be found, started or stopped."""


class EmbeddedServerBusyError(EmbeddedPostgresError):
    """The data directory is still in use by a server that is going away; starting again later works."""


class InstanceLockedError(IngestorError):
    """Another ingestor instance holds the ingestion lock on this database."""

    exit_code = 3


class PortInUseError(IngestorError):
    """A port the ingestor must listen on is held by another process."""

    exit_code = 2


class StopRequested(IngestorError):
    """A shutdown was requested; the current work was abandoned cleanly."""

    exit_code = 130
