"""UID hashing: keyed, deterministic, valid, injective on samples, well-known UIDs untouched."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

from dicomhub.core.deid.uids import UID_RE, UidHasher, is_class_keyword, is_well_known

from .helpers import ROOT, SECRET

components = st.one_of(st.just("0"), st.integers(1, 10**12).map(str))
uids = (
    st.lists(components, min_size=2, max_size=12)
    .map(".".join)
    .filter(lambda u: len(u) <= 64 and not u.startswith("1.2.840.10008."))
)


def hasher() -> UidHasher:
    return UidHasher(ROOT, SECRET.encode())


@given(uids)
def test_valid_and_short(uid: str) -> None:
    new = hasher()(uid)
    assert len(new) <= 64
    assert UID_RE.match(new)
    assert new.startswith(ROOT + ".")
    assert new != uid


@given(uids)
def test_deterministic_across_instances(uid: str) -> None:
    assert hasher()(uid) == UidHasher(ROOT, SECRET.encode())(uid)


@given(uids)
def test_keyed(uid: str) -> None:
    assert hasher()(uid) != UidHasher(ROOT, b"another-secret-value-123")(uid)
    plain = str(int.from_bytes(hashlib.sha256(uid.encode()).digest(), "big"))
    assert not hasher()(uid).endswith(plain[: 64 - len(ROOT) - 1])


@settings(max_examples=50)
@given(st.lists(uids, min_size=2, max_size=200, unique=True))
def test_injective_on_samples(sample: list[str]) -> None:
    h = hasher()
    assert len({h(u) for u in sample}) == len(sample)


@given(st.sampled_from(sorted(UID_dictionary)))
def test_well_known_untouched(uid: str) -> None:
    assert is_well_known(uid)
    assert hasher()(uid) == uid


def test_registry_root_untouched() -> None:
    assert hasher()("1.2.840.10008.1.4.1.1") == "1.2.840.10008.1.4.1.1"


def test_long_root_still_valid() -> None:
    root = "1.3.6.1.4.1.14519.5.2.1.1234.5678.99"
    new = UidHasher(root, SECRET.encode())("1.2.3")
    assert len(new) == 64
    assert UID_RE.match(new)


@pytest.mark.parametrize("root", ["1.02.3", "1..2", "1.2.", "a.b", "1." + "1" * 50])
def test_bad_roots_refused(root: str) -> None:
    with pytest.raises(ValueError, match="root"):
        UidHasher(root, SECRET.encode())


def test_class_keywords() -> None:
    assert is_class_keyword("ReferencedSOPClassUID")
    assert is_class_keyword("TransferSyntaxUID")
    assert not is_class_keyword("ReferencedSOPInstanceUID")
