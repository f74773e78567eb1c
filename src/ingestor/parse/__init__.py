"""From report bytes to normalised rows: CSV reading, row hashing, common-column normalisation."""
