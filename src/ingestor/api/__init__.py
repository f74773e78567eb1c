"""The Shadowserver Reports API: signing, the HTTP client and report downloads."""
