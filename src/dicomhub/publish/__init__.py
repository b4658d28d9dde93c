"""dicomhub.publish."""
