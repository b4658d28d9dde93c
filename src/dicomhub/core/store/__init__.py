"""Blob storage: a protocol, a filesystem store and an S3 store."""
