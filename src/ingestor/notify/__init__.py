"""Notification digests: each organisation gets one e-mail with what is new for it, exactly once.

    compose    a digest's content: per report type a summary and a CSV of the rows' original columns;
               Jinja2 text and HTML bodies (overridable, per language); the MIME message
    smtp       sending over SMTP (STARTTLS, TLS, authentication), with every failure one line
    run        ``notify``: which organisations are due, the delivery log ``ss_notifications``
               (prepared / sent / failed), retries, in-doubt digests, dry runs and tester mode

See docs/notifications.md.
"""
