"""A `{..., "data": [...], ...}` page split into its `data` elements as its body arrives.

A page of a large organisation's daily buckets is hundreds of MB (OpenAI at full size: 544 MB for 180
days); held whole, it was the largest thing a pull worker kept. `PageSplitter` reads the body block by
block and hands on each element as soon as its closing bracket arrives, so a worker holds one bucket
and one block. The split is exact JSON: strings (escapes included) are skipped with vectorised scans
(numpy), brackets counted outside them, and every byte is decoded strictly once (the envelope, each
element, what lies between elements), so a body the whole-page decoder rejects is rejected here too.

When the body does not start as expected (no `"data": [` key of the top object in its first 64 KB: an
HTML error page, `"data": null`, another order), nothing is split: the body is kept whole and returned
as the envelope, for the whole-page decoder to read or reject with its usual message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import msgspec
import numpy as np

_DATA_KEY = re.compile(rb'"data"\s*:\s*\[')
PREFIX_SEARCH_BYTES = 1 << 16
_RAW = msgspec.json.Decoder(msgspec.Raw)  # decodes nothing, checks the JSON strictly
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_QUOTE, _BACKSLASH, _OPEN, _CLOSE = 0x22, 0x5C, 0x7B, 0x7D  # brackets folded: `x | 0x20` maps [ to { and ] to }


class MalformedPage(Exception):
    """The body is not valid JSON (or ended before its `data` list closed)."""


class PageSplitter:
    """Splits one page body into its `data` elements (`elements`), then gives the body without them
    (`envelope`: the same JSON with `"data": []`, or the whole body when it was not split)."""

    def __init__(self) -> None:
        self._head = bytearray()  # the body until the `data` key is found
        self._prefix: bytes | None = None  # the body through `"data": [`, once found and checked
        self._whole: bytearray | None = None  # the body, when it is not split
        self._suffix: list[bytes] | None = None  # the body after the `data` list's `]`
        self._pieces: list[memoryview] = []  # the current element, or the text between two
        self._after_element = False
        self._depth = 2  # inside the top object and its `data` list
        self._in_string = 0
        self._backslashes = 0  # a run of backslashes that ended the previous block

    def elements(self, blocks: Iterable[bytes]) -> Iterator[msgspec.Raw | bytes]:
        """The `data` elements of the body arriving in `blocks`, each as its JSON bytes."""
        for block in blocks:
            if self._whole is not None:
                self._whole += block
            elif self._suffix is not None:
                self._suffix.append(bytes(block))
            elif self._prefix is None:
                yield from self._find_prefix(block)
            else:
                yield from self._split(memoryview(block))
        if self._prefix is None and self._whole is None:
            self._whole = self._head
        if self._whole is None and self._suffix is None:
            raise MalformedPage("the body ended before its 'data' list closed")

    def envelope(self) -> bytes:
        """After `elements`: the body with an empty `data` list, or the whole body when it was not split."""
        if self._whole is not None:
            return bytes(self._whole)
        assert self._prefix is not None and self._suffix is not None
        return b"".join([self._prefix, b"]", *self._suffix])

    def _find_prefix(self, block: bytes) -> Iterator[msgspec.Raw | bytes]:
        self._head += block
        found = _DATA_KEY.search(self._head, 0, PREFIX_SEARCH_BYTES)
        if found is None:
            if len(self._head) >= PREFIX_SEARCH_BYTES:
                self._whole = self._head
            return
        prefix = bytes(self._head[: found.end()])
        if not _is_top_data_list(prefix):
            self._whole = self._head
            return
        self._prefix, rest = prefix, bytes(self._head[found.end() :])
        self._head = bytearray()
        yield from self._split(memoryview(rest))

    def _split(self, block: memoryview) -> Iterator[msgspec.Raw | bytes]:
        """Hand on the elements that end in this block; keep the unfinished one for the next."""
        codes = np.frombuffer(block, np.uint8)
        quotes = self._unescaped(codes, np.flatnonzero(codes == _QUOTE))
        folded = codes | 0x20
        brackets = np.flatnonzero((folded == _OPEN) | (folded == _CLOSE))
        brackets = brackets[((np.searchsorted(quotes, brackets) + self._in_string) & 1) == 0]  # outside strings
        steps = np.where(folded[brackets] == _OPEN, 1, -1)
        depths = self._depth + np.cumsum(steps)  # after each bracket
        self._in_string = (self._in_string + len(quotes)) & 1
        if len(depths):
            self._depth = int(depths[-1])
        cut = 0
        for index in np.flatnonzero(((steps == 1) & (depths == 3)) | ((steps == -1) & (depths <= 2))):
            at = int(brackets[index])
            if steps[index] == 1:  # an element starts
                self._pieces.append(block[cut:at])
                yield from self._between(before_element=True)
                cut = at
            elif depths[index] == 2:  # it ends
                self._pieces.append(block[cut : at + 1])
                element = b"".join(self._pieces)
                self._pieces = []
                try:
                    _RAW.decode(element)
                except msgspec.DecodeError as exc:
                    raise MalformedPage(str(exc)) from None
                yield element
                self._after_element, cut = True, at + 1
            else:  # the `data` list ends
                self._pieces.append(block[cut:at])
                yield from self._between(before_element=False)
                self._suffix = [bytes(block[at + 1 :])]
                return
        self._pieces.append(block[cut:])

    def _between(self, before_element: bool) -> Iterator[msgspec.Raw]:
        """The text between two elements (or the list's start or end): a comma, and any elements that are
        not objects or lists (numbers, strings), checked as the list around them would be."""
        text = b"".join(self._pieces)
        self._pieces = []
        if text.strip() == b"," and self._after_element and before_element:
            return
        around = b"[" + (b"0" if self._after_element else b"") + text + (b"0" if before_element else b"") + b"]"
        try:
            items = _ITEMS.decode(around)
        except msgspec.DecodeError as exc:
            raise MalformedPage(str(exc)) from None
        yield from items[1 if self._after_element else 0 : len(items) - (1 if before_element else 0)]

    def _unescaped(self, codes: np.ndarray, quotes: np.ndarray) -> np.ndarray:
        """The quotes that open or close a string: those after an odd run of backslashes are escaped."""
        carried, self._backslashes = self._backslashes, 0
        slashes = np.flatnonzero(codes == _BACKSLASH)
        if not len(slashes) and not carried:
            return quotes
        if len(slashes):
            breaks = np.flatnonzero(np.diff(slashes) != 1)
            starts = slashes[np.r_[0, breaks + 1]]
            ends = slashes[np.r_[breaks, len(slashes) - 1]]
            lengths = ends - starts + 1
            if starts[0] == 0:
                lengths[0] += carried
            elif carried % 2:
                quotes = quotes[quotes != 0]  # the previous block's run escapes this block's first character
            if ends[-1] == len(codes) - 1:
                self._backslashes = int(lengths[-1])
            escaped = ends[lengths % 2 == 1] + 1
            return quotes[~np.isin(quotes, escaped)]
        return quotes[quotes != 0] if carried % 2 else quotes


def _is_top_data_list(prefix: bytes) -> bool:
    """`prefix` (ending in `"data": [`) opens the `data` list of the top object: closed, it is a valid
    object whose last key is `data`."""
    try:
        head = msgspec.json.decode(prefix + b"]}")
    except msgspec.DecodeError:
        return False
    return isinstance(head, dict) and bool(head) and next(reversed(head)) == "data"
