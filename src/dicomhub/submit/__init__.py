"""dicomhub.submit."""
