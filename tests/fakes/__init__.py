"""Local fakes of external services that speak their real wire formats (for the real client SDKs)."""
