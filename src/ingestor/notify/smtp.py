"""Sending over SMTP with the standard library's ``smtplib``: plain, STARTTLS or TLS, optional login.

One connection per ``notify`` run, opened on the first message and opened again after a failure. Every
failure (refused connection, timeout, a 4xx or 5xx answer, TLS or login problems) becomes
:class:`SendError` with one line for the delivery log: never the password.
"""

from __future__ import annotations

import smtplib
import ssl

from ingestor.config import Settings


class SendError(Exception):
    """The message was not accepted (the SMTP server said so, or could not be reached)."""


class Mailer:
    """Sends messages through the configured SMTP server."""

    def __init__(self, settings: Settings, *, context: ssl.SSLContext | None = None) -> None:
        if not settings.smtp_host:
            raise ValueError("SMTP_HOST is not set")
        self.host = settings.smtp_host
        self.security = settings.smtp_security
        self.port = settings.smtp_port or {"tls": 465, "starttls": 587}.get(self.security, 25)
        self.user = settings.smtp_user
        self.password = settings.smtp_password.get_secret_value()
        self.timeout = settings.smtp_timeout
        self.context = context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self.context)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, sender: str, recipients: list[str], message: bytes) -> str | None:
        """Send one message; return a note about recipients refused (None when all were accepted)."""
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.sendmail(sender, recipients, message)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            raise SendError(f"every recipient refused: {_refusals(exc.recipients)}") from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            text = (
                exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            raise SendError(f"SMTP {exc.smtp_code}: {' '.join(text.split())[:200]}") from None
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            raise SendError(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200] or 'no detail'}") from None
        return f"refused: {_refusals(refused)}" if refused else None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} ({code} {reason.decode('utf-8', 'replace')[:80]})" for address, (code, reason) in refused.items()
    )
