"""The archive's database: SQLAlchemy 2 models, engines and migrations.

Both sides (intake and public) use the same schema in separate databases.
"""

from dicomhub.core.db.accounts import ApiToken, RoleGrant, User
from dicomhub.core.db.base import Base, utcnow
from dicomhub.core.db.catalog import Access, Collection, Instance, Patient, Series, Site, Study
from dicomhub.core.db.engine import make_engine, make_sessionmaker, session_scope
from dicomhub.core.db.intake import DimsePeer, SitePolicy
from dicomhub.core.db.ops import AuditEvent, Job
from dicomhub.core.db.public import Basket, BasketItem
from dicomhub.core.db.quarantine import QuarantineItem, QuarantineState
from dicomhub.core.db.release import Release, ReleaseItem, ReleaseState

__all__ = [
    "Access",
    "ApiToken",
    "AuditEvent",
    "Base",
    "Basket",
    "BasketItem",
    "Collection",
    "DimsePeer",
    "Instance",
    "Job",
    "Patient",
    "QuarantineItem",
    "QuarantineState",
    "Release",
    "ReleaseItem",
    "ReleaseState",
    "RoleGrant",
    "Series",
    "Site",
    "SitePolicy",
    "Study",
    "User",
    "make_engine",
    "make_sessionmaker",
    "session_scope",
    "utcnow",
]
