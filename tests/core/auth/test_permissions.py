"""The permission matrix, scoping by collection and site, and token narrowing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomhub.core.auth import (
    ANONYMOUS,
    Action,
    Grant,
    Principal,
    Role,
    TokenScope,
    authorize,
    can,
    parse_role,
    reach,
)
from dicomhub.errors import BadRequest, Forbidden, Unauthorized

A = Action
#: What each role may do archive-wide; everything not listed is refused.
EXPECTED: dict[Role, set[Action]] = {
    Role.USER: {A.VIEW_PUBLIC},
    Role.SUBMITTER: {A.VIEW_PUBLIC, A.SUBMIT, A.VIEW_SUBMISSIONS},
    Role.CURATOR: {
        A.VIEW_PUBLIC,
        A.VIEW_LIMITED,
        A.VIEW_SUBMISSIONS,
        A.VIEW_INTAKE,
        A.CURATE,
        A.VIEW_QUARANTINE,
    },
    Role.MANAGER: {
        A.VIEW_PUBLIC,
        A.VIEW_LIMITED,
        A.VIEW_SUBMISSIONS,
        A.VIEW_INTAKE,
        A.CURATE,
        A.VIEW_QUARANTINE,
        A.PROMOTE,
        A.MANAGE_COLLECTION,
        A.GRANT_ACCESS,
        A.RELEASE_QUARANTINE,
        A.VIEW_AUDIT,
        A.MANAGE_JOBS,
    },
    Role.SUPPORT: {A.VIEW_PUBLIC, A.SUPPORT_READ, A.VIEW_AUDIT},
    Role.ADMIN: set(Action),
}
MATRIX = [(role, action) for role in Role for action in Action]


def who(*grants: Grant, token: TokenScope | None = None) -> Principal:
    return Principal("alice", frozenset(grants), token=token, user_id=1)


def test_every_role_is_in_the_expected_matrix() -> None:
    assert set(EXPECTED) == set(Role)


@pytest.mark.parametrize(("role", "action"), MATRIX, ids=[f"{r}-{a}" for r, a in MATRIX])
def test_archive_wide_matrix(role: Role, action: Action) -> None:
    principal = who(Grant(role))
    allowed = action in EXPECTED[role]
    assert can(principal, action) is allowed
    assert can(principal, action, collection="LIDC") is allowed
    if not allowed:
        with pytest.raises(Forbidden):
            authorize(principal, action, collection="LIDC")


@pytest.mark.parametrize("action", list(Action))
def test_anonymous_may_only_view_public(action: Action) -> None:
    if action is Action.VIEW_PUBLIC:
        authorize(ANONYMOUS, action, collection="LIDC")
    else:
        assert not can(ANONYMOUS, action)
        with pytest.raises(Unauthorized, match="log in"):
            authorize(ANONYMOUS, action)


def test_admin_does_everything_everywhere() -> None:
    admin = who(Grant(Role.ADMIN))
    assert admin.is_admin
    for action in Action:
        authorize(admin, action)
        authorize(admin, action, collection="X", site="Y")


def test_collection_grant_covers_only_that_collection() -> None:
    curator = who(Grant(Role.CURATOR, "LIDC"))
    assert can(curator, "curate", collection="LIDC")
    assert not can(curator, "curate", collection="NLST")
    # An archive-wide question is never answered by a collection grant.
    assert not can(curator, "curate")
    with pytest.raises(Forbidden, match="in collection NLST") as raised:
        authorize(curator, Action.CURATE, collection="NLST")
    assert raised.value.detail == {"action": "curate", "collection": "NLST"}


def test_site_grant_covers_only_that_site() -> None:
    submitter = who(Grant(Role.SUBMITTER, "LIDC", "site-a"))
    assert can(submitter, "submit", collection="LIDC", site="site-a")
    assert not can(submitter, "submit", collection="LIDC", site="site-b")
    assert not can(submitter, "submit", collection="LIDC")
    assert not can(submitter, "submit", collection="NLST", site="site-a")
    # A collection-wide submitter covers every site of it.
    assert can(who(Grant(Role.SUBMITTER, "LIDC")), "submit", collection="LIDC", site="site-b")


def test_limited_access_is_given_collection_by_collection() -> None:
    assert not can(who(Grant(Role.USER)), "view_limited", collection="LIDC")
    granted = who(Grant(Role.USER), Grant(Role.USER, "LIDC"))
    assert can(granted, "view_limited", collection="LIDC")
    assert not can(granted, "view_limited", collection="NLST")


def test_grants_add_up() -> None:
    both = who(Grant(Role.CURATOR, "A"), Grant(Role.MANAGER, "B"))
    assert can(both, "curate", collection="A")
    assert not can(both, "promote", collection="A")
    assert can(both, "promote", collection="B")


def test_token_narrows_to_its_role_and_scope() -> None:
    token = TokenScope(Role.CURATOR, "LIDC", token_id=7)
    principal = who(Grant(Role.ADMIN), token=token)
    assert can(principal, "curate", collection="LIDC")
    assert not can(principal, "curate", collection="NLST")
    assert not can(principal, "promote", collection="LIDC")
    assert not can(principal, "manage_users")
    assert not principal.is_admin
    assert principal.roles == {Role.CURATOR}


def test_token_never_widens() -> None:
    # A manager token for a user who is only a curator gives curator rights at most...
    principal = who(Grant(Role.CURATOR, "LIDC"), token=TokenScope(Role.MANAGER, token_id=1))
    assert not can(principal, "promote", collection="LIDC")
    assert not can(principal, "curate", collection="LIDC")
    assert principal.roles == frozenset()
    # ...and an archive-wide token for a collection grant stays in the collection.
    principal = who(Grant(Role.CURATOR, "LIDC"), token=TokenScope(Role.CURATOR, token_id=1))
    assert can(principal, "curate", collection="LIDC")
    assert not can(principal, "curate", collection="NLST")
    # A collection-bound action needs the user's own collection grant, not the token's.
    principal = who(Grant(Role.USER), token=TokenScope(Role.USER, "LIDC", token_id=1))
    assert not can(principal, "view_limited", collection="LIDC")


def test_revoked_grant_disarms_token() -> None:
    token = TokenScope(Role.CURATOR, "LIDC", token_id=1)
    assert can(who(Grant(Role.CURATOR, "LIDC"), token=token), "curate", collection="LIDC")
    assert not can(who(Grant(Role.USER), token=token), "curate", collection="LIDC")


def test_unknown_action_is_an_error() -> None:
    with pytest.raises(ValueError, match="no_such_action"):
        can(who(Grant(Role.ADMIN)), "no_such_action")


def test_reach_lists_collections() -> None:
    assert reach(who(Grant(Role.CURATOR)), "curate").everywhere
    scoped = reach(who(Grant(Role.CURATOR, "A"), Grant(Role.SUBMITTER, "B")), "curate")
    assert not scoped.everywhere
    assert scoped.collections == {"A"}
    assert "A" in scoped
    assert "B" not in scoped
    site = reach(who(Grant(Role.SUBMITTER, "B", "s1")), "submit")
    assert site.collections == {"B"}
    token = TokenScope(Role.CURATOR, "A", token_id=1)
    assert reach(who(Grant(Role.CURATOR), token=token), "curate").collections == {"A"}
    assert reach(ANONYMOUS, "view_public").everywhere
    assert not reach(ANONYMOUS, "curate").everywhere


def test_parse_role() -> None:
    assert parse_role(" Curator ") is Role.CURATOR
    with pytest.raises(BadRequest, match="roles are: submitter, curator"):
        parse_role("wizard")


def test_grant_str() -> None:
    assert str(Grant(Role.SUBMITTER, "LIDC", "s1")) == "submitter@LIDC/s1"
    assert str(Grant(Role.ADMIN)) == "admin"


names = st.sampled_from(["A", "B", "C"])
sites = st.none() | st.sampled_from(["s1", "s2"])
grants = st.builds(
    lambda role, collection, site: Grant(role, collection, site if collection else None),
    st.sampled_from(list(Role)),
    st.none() | names,
    sites,
)


@given(
    user_grants=st.frozensets(grants, max_size=4),
    token=grants,
    action=st.sampled_from(list(Action)),
    collection=st.none() | names,
    site=sites,
)
def test_a_token_never_allows_more_than_its_user(
    user_grants: frozenset[Grant],
    token: Grant,
    action: Action,
    collection: str | None,
    site: str | None,
) -> None:
    scope = TokenScope(token.role, token.collection, token.site, token_id=1)
    with_token = Principal("u", user_grants, token=scope)
    if can(with_token, action, collection=collection, site=site):
        assert can(Principal("u", user_grants), action, collection=collection, site=site)
        assert can(Principal("u", frozenset({token})), action, collection=collection, site=site)
