"""The engine over every file pydicom ships for testing (and pydicom-data's, if installed).

Each file either de-identifies into an instance that leaks nothing the recipe removes
(checked by ``leaks.py`` at every depth, file meta and private blocks included), or is
refused with a :class:`DeidError` whose code the submitter quarantines under. The kit's
recipe runs over the whole corpus and the Basic Profile over every distinct header. Each
option runs over every other small distinct header (large files differ mostly in pixel
data, which the options do not touch; the halves alternate between options, so every
header meets some of them and the suite stays short).
"""

from __future__ import annotations

import pytest

from .corpus import KIT, OPTIONS, corpus_files, distinct_headers, sweep, with_option

SMALL = 64 * 1024


@pytest.fixture(scope="module")
def files() -> list[tuple[str, bytes]]:
    found = corpus_files()
    assert len(found) >= 150, "pydicom's test files are missing"
    return found


def test_kit_recipe_over_the_whole_corpus(files: list[tuple[str, bytes]]) -> None:
    result = sweep(files, KIT)
    assert result.failures == []
    # Most files are instances with a PatientID; the rest are refused for a stated reason.
    assert result.done > len(files) * 0.75
    assert set(result.refused) <= {"missing_uid"}


@pytest.fixture(scope="module")
def headers(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return distinct_headers(files)


def test_basic_profile_only_over_every_header(headers: list[tuple[str, bytes]]) -> None:
    assert sweep(headers, {}).failures == []


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_over_small_headers(headers: list[tuple[str, bytes]], option: str) -> None:
    small = [(name, data) for name, data in headers if len(data) <= SMALL]
    half = small[OPTIONS.index(option) % 2 :: 2]
    result = sweep(half, with_option(option))
    assert result.failures == []
    assert result.done > len(half) * 0.7
