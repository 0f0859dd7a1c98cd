"""The chunked, threaded CRC-32 of glag_mm.core.zip_crc against zlib's."""

import os
import zlib

import pytest
import torch

from glag_mm.core import zip_crc


@pytest.mark.parametrize('backend', ['default', 'zlib'])
def test_chunked_crc_equals_zlib(backend, monkeypatch):
    if backend == 'zlib':
        monkeypatch.setattr(zip_crc, 'crc32', zlib.crc32)
    monkeypatch.setattr(zip_crc, 'CHUNK', 1000)  # many chunks to combine
    data = os.urandom(10_007)
    spans = [(0, 10_007), (3, 2_999), (5_000, 5_000), (1_000, 1_001)]
    view = memoryview(data)
    got = zip_crc.crc32_of_spans(view, spans, workers=3)
    assert got == [zlib.crc32(data[a:b]) for a, b in spans]


def test_combine_against_zlib():
    a, b = os.urandom(1234), os.urandom(4321)
    combined = zip_crc.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b))
    assert combined == zlib.crc32(a + b)


def test_first_bad_member_finds_a_flipped_tensor_byte(tmp_path):
    path = str(tmp_path / 'x.pth')
    torch.save({'w': torch.arange(4096, dtype=torch.float32)}, path)
    assert zip_crc.first_bad_member(path) is None
    raw = bytearray(open(path, 'rb').read())
    needle = torch.arange(4096, dtype=torch.float32).numpy().tobytes()[:64]
    at = bytes(raw).index(needle) + 100
    raw[at] ^= 0x01
    open(path, 'wb').write(bytes(raw))
    bad = zip_crc.first_bad_member(path)
    assert bad is not None and zip_crc.is_storage(bad)
