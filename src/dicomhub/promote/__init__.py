"""Promotion: the one path from intake to the public side.

A promotion reads the accepted instances of one intake collection (or some of
its series), runs the collection's second de-identification pass over each,
writes the result to the public blob store, checks counts and hashes on both
sides and publishes the catalogue rows of the whole release in one transaction.

This package reads the intake database and store through ``core`` only; no
stage imports it, and the public app never does (see the import contract).
Importing it registers the ``promote`` job kind.
"""

from dicomhub.core.jobs import register_job_kind
from dicomhub.promote.params import PromoteParams, parse_params

JOB_KIND = "promote"
JOB_TARGET = "dicomhub.promote.worker:promote_job"

register_job_kind(JOB_KIND, JOB_TARGET, check=parse_params)

__all__ = ["JOB_KIND", "JOB_TARGET", "PromoteParams", "parse_params"]
