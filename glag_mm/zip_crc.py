"""Check the CRC-32 that ``torch.save`` records for every member of its zip
archive, fast enough to do on every load (``benchmarks/crc_cost.py``).

The file is memory-mapped (no copy), each stored member is cut into chunks
whose CRCs are computed in threads (``zlib.crc32`` releases the GIL) and
joined with :func:`crc32_combine`: CRC(A + B) is CRC(A) carried through
len(B) zero bytes, XOR CRC(B), the carry being a linear map over GF(2)
(zlib's ``crc32_combine``).
"""

import functools
import mmap
import os
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

#: bytes per chunk: large enough that the thread hand-off is negligible
CHUNK = 16 << 20
_POLY = 0xEDB88320  # reflected CRC-32 polynomial of zip and zlib


def _gf2_times(matrix: List[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: List[int]) -> List[int]:
    return [_gf2_times(matrix, column) for column in matrix]


@functools.lru_cache(maxsize=16)
def _carry_operator(nbytes: int) -> Tuple[int, ...]:
    """The GF(2) matrix (by columns) that carries a CRC through ``nbytes``
    zero bytes: zlib's operator squarings, composed once."""
    total = [1 << n for n in range(32)]  # identity

    def apply(operator):
        return [_gf2_times(operator, column) for column in total]

    odd = [_POLY] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while nbytes:
        even = _gf2_square(odd)  # 8, 32, ... zero bits: 1, 4, ... bytes
        if nbytes & 1:
            total = apply(even)
        nbytes >>= 1
        if not nbytes:
            break
        odd = _gf2_square(even)
        if nbytes & 1:
            total = apply(odd)
        nbytes >>= 1
    return tuple(total)


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from ``crc1`` = CRC(A), ``crc2`` = CRC(B) and
    ``len2`` = len(B) in bytes."""
    if len2 <= 0:
        return crc1
    return _gf2_times(list(_carry_operator(len2)), crc1) ^ crc2


def _data_span(view: memoryview, info: zipfile.ZipInfo) -> Tuple[int, int]:
    """Start and end of a member's bytes, after its local header."""
    start = info.header_offset
    header = bytes(view[start : start + 30])
    if len(header) < 30 or header[:4] != b'PK\x03\x04':
        raise zipfile.BadZipFile(f'bad local header of {info.filename!r}')
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    begin = start + 30 + name_len + extra_len
    end = begin + info.compress_size
    if end > len(view):
        raise zipfile.BadZipFile(f'member {info.filename!r} is cut short')
    return begin, end


def _crc_of(view: memoryview, begin: int, end: int) -> int:
    return zlib.crc32(view[begin:end])


def default_workers() -> int:
    """The CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def first_bad_member(
    filename: str, workers: Optional[int] = None
) -> Optional[str]:
    """The first member of a zip archive whose bytes do not match their
    recorded CRC-32, or None; raises ``zipfile.BadZipFile`` / ``OSError``
    where the archive's structure is broken."""
    workers = workers or default_workers()
    with zipfile.ZipFile(filename) as archive:
        members = archive.infolist()
    with open(filename, 'rb') as f, mmap.mmap(
        f.fileno(), 0, access=mmap.ACCESS_READ
    ) as mapped:
        view = memoryview(mapped)
        try:
            jobs = []  # (member, [(chunk length, start, end)])
            for info in members:
                if info.compress_type != zipfile.ZIP_STORED:
                    with zipfile.ZipFile(filename) as archive:
                        try:
                            archive.read(info.filename)  # checks the CRC
                        except zipfile.BadZipFile:
                            return info.filename
                    continue
                begin, end = _data_span(view, info)
                chunks = [
                    (min(CHUNK, end - a), a, min(a + CHUNK, end))
                    for a in range(begin, end, CHUNK)
                ]
                jobs.append((info, chunks))
            spans = [(a, b) for _, chunks in jobs for _, a, b in chunks]
            if workers > 1 and len(spans) > 1:
                with ThreadPoolExecutor(workers) as pool:
                    crcs = list(pool.map(lambda s: _crc_of(view, *s), spans))
            else:
                crcs = [_crc_of(view, a, b) for a, b in spans]
            found = iter(crcs)
            for info, chunks in jobs:
                crc = 0
                for (length, _, _), part in zip(chunks, found):
                    crc = crc32_combine(crc, part, length)
                if crc != info.CRC:
                    return info.filename
            return None
        finally:
            view.release()
