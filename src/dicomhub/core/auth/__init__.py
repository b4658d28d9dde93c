"""Who may do what: roles, principals, the permission check, passwords, tokens, LDAP, audit.

Web, CLI and DIMSE all call :func:`authorize` (or :func:`can`) with a
:class:`Principal`; nothing else decides access.  The LDAP login lives in
:mod:`dicomhub.core.auth.ldap` and is imported from there (it needs ldap3).
"""

from dicomhub.core.auth.audit import audit
from dicomhub.core.auth.login import authenticate_password
from dicomhub.core.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from dicomhub.core.auth.permissions import (
    ANONYMOUS_ACTIONS,
    ROLE_ACTIONS,
    Action,
    Reach,
    authorize,
    can,
    reach,
)
from dicomhub.core.auth.principal import ANONYMOUS, Grant, Principal, TokenScope
from dicomhub.core.auth.roles import Role, parse_role
from dicomhub.core.auth.tokens import (
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from dicomhub.core.auth.users import (
    create_user,
    get_user,
    grant_role,
    list_users,
    principal_for,
    revoke_role,
    set_active,
    set_password,
)

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_ACTIONS",
    "MIN_PASSWORD_LENGTH",
    "ROLE_ACTIONS",
    "Action",
    "Grant",
    "Principal",
    "Reach",
    "Role",
    "TokenScope",
    "audit",
    "authenticate_password",
    "authorize",
    "can",
    "check_password_policy",
    "create_token",
    "create_user",
    "get_user",
    "grant_role",
    "hash_password",
    "hash_token",
    "list_tokens",
    "list_users",
    "needs_rehash",
    "parse_role",
    "principal_for",
    "reach",
    "revoke_role",
    "revoke_token",
    "set_active",
    "set_password",
    "verify_password",
    "verify_token",
]
