"""argon2id hashing, the password policy and rehashing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from dicomhub.core.auth import (
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from dicomhub.errors import BadRequest

GOOD = "correct horse battery"


def test_hash_is_argon2id_and_salted() -> None:
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first.startswith("$argon2id$")
    assert first != second
    assert GOOD not in first


def test_verify() -> None:
    stored = hash_password(GOOD)
    assert verify_password(stored, GOOD)
    assert not verify_password(stored, GOOD + "!")
    assert not verify_password(stored, "")


def test_verify_refuses_garbage_hash() -> None:
    assert not verify_password("not-a-hash", GOOD)
    assert not verify_password("$argon2id$v=19$m=65536,t=3,p=4$broken", GOOD)


def test_rehash_when_parameters_change() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(GOOD)
    assert verify_password(weak, GOOD)
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password(GOOD))
    assert needs_rehash("garbage")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12 characters"),
        ("x" * (MIN_PASSWORD_LENGTH - 1), "at least 12"),
        (" " * 20, "whitespace"),
        ("x" * 2000, "too long"),
        ("Alice.Example", "must not be the username"),
    ],
)
def test_policy_refuses(password: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_password_policy(password, username="alice.example")


def test_policy_accepts() -> None:
    check_password_policy("x" * MIN_PASSWORD_LENGTH, username="alice")
    check_password_policy(GOOD)
