"""WADO-RS frames of compressed instances, through dicomweb-client, on both databases.

One study holds a slice in each transfer syntax a site commonly sends:
Explicit VR Little Endian, JPEG baseline, JPEG-LS lossless, JPEG 2000 lossless
and RLE lossless.  A client that accepts the stored compression gets the
stored bitstream byte for byte; a client that asks for
``application/octet-stream`` gets native pixels (equal to the original for
the lossless syntaxes); a client accepting only another compression gets 406.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dicomhub.publish.dicomweb.media import FRAME_TYPES
from tests.fixtures.db import BACKENDS
from tests.publish.nbia.site import _database
from tests.publish.viewer.catalogue import ViewerStudy, served_archive

SYNTAXES = [ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless, JPEG2000Lossless, RLELossless]


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ViewerStudy]]:
    folder = tmp_path_factory.mktemp("frames")
    for db_url in _database(request, str(request.param), folder):
        with served_archive(folder, db_url, SYNTAXES) as served:
            yield served


def _client(url: str) -> DICOMwebClient:
    return DICOMwebClient(f"{url}/dicomweb")


def test_stored_bitstreams_and_native_pixels(archive: tuple[str, ViewerStudy]) -> None:
    url, study = archive
    client = _client(url)
    for sop, syntax in study.syntaxes.items():
        stored = client.retrieve_instance(study.study_uid, study.series_uid, sop)
        native = client.retrieve_instance_frames(
            study.study_uid,
            study.series_uid,
            sop,
            [1],
            media_types=(("application/octet-stream", "*"),),
        )[0]
        expected = study.pixels[sop]
        got = np.frombuffer(native, dtype=expected.dtype).reshape(expected.shape)
        if syntax == JPEGBaseline8Bit:
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 8, syntax
        else:
            assert np.array_equal(got, expected), syntax
        if syntax == ExplicitVRLittleEndian:
            continue
        media_type = FRAME_TYPES[syntax]
        (encoded,) = client.retrieve_instance_frames(
            study.study_uid, study.series_uid, sop, [1], media_types=((media_type, syntax),)
        )
        (original,) = generate_frames(stored.PixelData, number_of_frames=1)
        assert encoded == original, syntax
        assert stored.file_meta.TransferSyntaxUID == syntax


def test_unacceptable_and_out_of_range_frames(archive: tuple[str, ViewerStudy]) -> None:
    url, study = archive
    rle = next(sop for sop, syntax in study.syntaxes.items() if syntax == RLELossless)
    base = f"{url}/dicomweb/studies/{study.study_uid}/series/{study.series_uid}/instances"
    only_jp2 = {"Accept": 'multipart/related; type="image/jp2"'}
    refused = httpx.get(f"{base}/{rle}/frames/1", headers=only_jp2)
    assert refused.status_code == 406
    assert httpx.get(f"{base}/{rle}/frames/2").status_code == 404
    for bad in ("0", "a", "1,,2", "-1", "1;2"):
        assert httpx.get(f"{base}/{rle}/frames/{bad}").status_code in (400, 404), bad
    # a whole instance in its stored syntax, or transcoded to the default on request
    whole = httpx.get(
        f"{base}/{rle}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert whole.status_code == 200
    assert f"transfer-syntax={RLELossless}" in whole.text[:400]
    default = _client(url).retrieve_instance(
        study.study_uid,
        study.series_uid,
        rle,
        media_types=(("application/dicom", ExplicitVRLittleEndian),),
    )
    assert default.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(default.pixel_array, study.pixels[rle])


def test_bulk_data_multipart_single_part_and_ranges(archive: tuple[str, ViewerStudy]) -> None:
    url, study = archive
    native = next(sop for sop, syntax in study.syntaxes.items() if syntax == ExplicitVRLittleEndian)
    client = _client(url)
    base = f"{url}/dicomweb/studies/{study.study_uid}/series/{study.series_uid}/instances"
    # read with plain HTTP: dicomweb-client rewrites BulkDataURIs and drops their port
    (meta,) = httpx.get(f"{base}/{native}/metadata").json()
    uri = meta["60003000"]["BulkDataURI"]  # the overlay: bulk data in the header
    stored = client.retrieve_instance(study.study_uid, study.series_uid, native)
    pixels = stored[0x60003000].value
    multipart = httpx.get(uri)  # multipart by default, as PS3.18 asks
    assert multipart.headers["content-type"].startswith("multipart/related")
    assert pixels in multipart.content
    single = {"Accept": "application/octet-stream"}
    whole = httpx.get(uri, headers=single)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.content == pixels
    part = httpx.get(uri, headers={**single, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(pixels)}"
    assert part.content == pixels[100:200]
    stale = httpx.get(uri, headers={**single, "Range": "bytes=0-9", "If-Range": '"x"'})
    assert stale.status_code == 200
    past = httpx.get(uri, headers={**single, "Range": f"bytes={len(pixels)}-"})
    assert past.status_code == 416
    bad = httpx.get(uri.replace("/bulk/60003000", "/bulk/6000..00"), headers=single)
    assert bad.status_code == 400
