"""NBIA-compatible REST API (v4, v1, v2, OAuth tokens) over the public query layer.

Real clients (tcia_utils, the TCIA Data Retrievers) work unchanged against it;
each module's docstring records the NBIA behaviour it follows.
:data:`routers` is what the public app mounts.
"""

from fastapi import APIRouter

from dicomhub.publish.nbia.auth import oauth_router
from dicomhub.publish.nbia.legacy import v1_router, v2_router
from dicomhub.publish.nbia.retriever import cli_v1_router, cli_v2_router, servlet_router
from dicomhub.publish.nbia.v4 import router as v4_router

routers: tuple[APIRouter, ...] = (
    v4_router,
    v1_router,
    v2_router,
    cli_v1_router,
    cli_v2_router,
    servlet_router,
    oauth_router,
)

__all__ = ["routers"]
