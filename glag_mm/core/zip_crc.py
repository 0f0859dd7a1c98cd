"""Check the CRC-32 that ``torch.save`` records for every member of its zip
archive, fast enough to do on every load (``benchmarks/crc_cost.py``).

The file is memory-mapped (no copy), each stored member is cut into chunks
whose CRCs are computed in threads (the CRC releases the GIL) and joined
with :func:`crc32_combine`: CRC(A + B) is CRC(A) carried through len(B)
zero bytes, XOR CRC(B), the carry being a linear map over GF(2) (zlib's
``crc32_combine``).

The CRC itself is ISA-L's (the ``isal`` package, a requirement: carry-less
multiplication, several times zlib's speed) where it imports, else
``zlib.crc32``; both compute the same zip CRC-32 (:data:`CRC32_BACKEND`
says which one runs; ``benchmarks/crc_cost.py`` prints both).
"""

import functools
import mmap
import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is in requirements.txt
    from zlib import crc32

#: which CRC-32 implementation :func:`crc32_of_spans` uses
CRC32_BACKEND = crc32.__module__ or 'zlib'

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


def default_workers() -> int:
    """The CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _chunks(begin: int, end: int) -> List[Tuple[int, int]]:
    return [(a, min(a + CHUNK, end)) for a in range(begin, end, CHUNK)]


def crc32_of_spans(
    view: memoryview,
    spans: Sequence[Tuple[int, int]],
    workers: Optional[int] = None,
) -> List[int]:
    """The CRC-32 of each ``view[begin:end]``, in chunks computed by
    ``workers`` threads (default :func:`default_workers`) and combined."""
    pieces = [_chunks(a, b) for a, b in spans]
    flat = [chunk for chunks in pieces for chunk in chunks]
    workers = workers or default_workers()

    def crc(chunk):
        return crc32(view[chunk[0] : chunk[1]])

    if workers > 1 and len(flat) > 1:
        with ThreadPoolExecutor(min(workers, len(flat))) as pool:
            crcs = iter(list(pool.map(crc, flat)))
    else:
        crcs = iter([crc(chunk) for chunk in flat])
    out = []
    for chunks in pieces:
        total = None  # the first chunk's CRC needs no carrying
        for (a, b), part in zip(chunks, crcs):
            total = (
                part if total is None else crc32_combine(total, part, b - a)
            )
        out.append(total or 0)
    return out


def is_storage(name: str) -> bool:
    """Whether a member of a ``torch.save`` archive holds tensor bytes
    (``<archive>/data/<key>``), as opposed to its pickle and records."""
    return '/data/' in name


def first_bad_member(
    filename: str,
    workers: Optional[int] = None,
    skip: Optional[Callable[[str], bool]] = None,
) -> Optional[str]:
    """The first member of a zip archive (``skip``: those for which it is
    false) whose bytes do not match their recorded CRC-32, or None; raises
    ``zipfile.BadZipFile`` / ``OSError`` where the structure is broken."""
    with zipfile.ZipFile(filename) as archive:
        members = [
            m for m in archive.infolist() if not (skip and skip(m.filename))
        ]
        for info in members:  # torch stores; anything else: zipfile reads
            if info.compress_type != zipfile.ZIP_STORED:
                try:
                    archive.read(info.filename)  # checks the CRC
                except zipfile.BadZipFile:
                    return info.filename
    members = [m for m in members if m.compress_type == zipfile.ZIP_STORED]
    if not members:
        return None
    with open(filename, 'rb') as f, mmap.mmap(
        f.fileno(), 0, access=mmap.ACCESS_READ
    ) as mapped:
        view = memoryview(mapped)
        try:
            spans = [_data_span(view, info) for info in members]
            crcs = crc32_of_spans(view, spans, workers)
        finally:
            view.release()
    for info, crc in zip(members, crcs):
        if crc != info.CRC:
            return info.filename
    return None
