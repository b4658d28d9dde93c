"""dicomhub.core.auth."""
