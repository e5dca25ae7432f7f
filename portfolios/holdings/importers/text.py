"""From bytes to rows: decoding, refusing binary files, splitting CSV rows with their line numbers."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from portfolios.holdings.importers.base import ImportFailed, ImportProblem

DELIMITERS = (",", ";", "\t")
# A file's shape is bounded before it is split, so that work and memory stay flat whatever it holds.
MAX_LINE_CHARS = 10_000  # a broker's longest lines (disclaimers) are under 1,000 characters
MAX_COLUMNS = 200  # broker exports have at most a few dozen columns
_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\ufffe\uffff]")
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook or a zip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) workbook",
    b"%PDF": "a PDF document",
    b"\x89PNG": "an image",
    b"\xff\xd8\xff": "an image",
    b"GIF8": "an image",
    b"\x1f\x8b": "a gzip archive",
}


@dataclass(frozen=True)
class Row:
    line: int  # 1-based physical line where the row starts
    cells: list[str]

    @property
    def blank(self) -> bool:
        return not any(c.strip() for c in self.cells)

    def filled(self) -> list[str]:
        return [c for c in self.cells if c.strip()]


def text_decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with BOM, else cp1252, else latin-1. Refuses binary files."""
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise ImportFailed([ImportProblem(None, "", f"this is {what}, not a CSV file; export the positions "
                                                        "as CSV from your broker and upload that")])
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportFailed([ImportProblem(None, "", "the file starts like UTF-16 text but is not valid UTF-16")])
    else:
        if b"\x00" in data:
            line = data[: data.index(b"\x00")].count(b"\n") + 1
            raise ImportFailed([ImportProblem(line, "", "the file contains binary data (a NUL byte); "
                                                        "upload the CSV file your broker exports")])
        data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM, even if the rest turns out not to be UTF-8
        for encoding in ("utf-8", "cp1252", "latin-1"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
    text = text.removeprefix("\ufeff").rstrip("\x1a")
    _refuse_control_characters(text)
    return text


def _refuse_control_characters(text: str) -> None:
    match = _CONTROL.search(text)
    if match:
        line = len(_NEWLINE.findall(text, 0, match.start())) + 1
        raise ImportFailed([ImportProblem(line, "", f"the file contains a control character (U+{ord(match[0]):04X}); "
                                                    "it does not look like a text positions file")])


def text_shape_check(text: str, *, max_line_chars: int = MAX_LINE_CHARS) -> None:
    """Refuse a text with a line longer than `max_line_chars` (one linear scan, nothing copied)."""
    match = re.search(f"[^\r\n]{{{max_line_chars + 1}}}", text)
    if match:
        line = len(_NEWLINE.findall(text, 0, match.start())) + 1
        raise ImportFailed([ImportProblem(line, "", f"the line is longer than {max_line_chars:,} characters; "
                                                    "a positions file has short lines (is this the right file?)")])


def text_lines(text: str, limit: int | None = None) -> list[str]:
    """Physical lines (only CR, LF and CRLF end a line)."""
    if limit is None:
        return _NEWLINE.split(text)
    lines: list[str] = []
    start = 0
    for match in _NEWLINE.finditer(text):
        lines.append(text[start: match.start()])
        start = match.end()
        if len(lines) >= limit:
            return lines
    lines.append(text[start:])
    return lines


def line_cells(line: str, delimiter: str) -> list[str]:
    """Split one physical line (header detection); at most `MAX_COLUMNS` + 1 cells are kept."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])[: MAX_COLUMNS + 1]
    except csv.Error:
        return [line]


def rows_read(text: str, delimiter: str, *, max_rows: int | None = None) -> list[Row]:
    """Every CSV row with the line it starts on; cells are trimmed. Quoted fields may span lines.

    Refuses the file as soon as it has more than `max_rows` non-blank rows besides the header.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    rows: list[Row] = []
    consumed = 0
    content = 0
    try:
        for cells in reader:
            if len(cells) > MAX_COLUMNS:
                raise ImportFailed([ImportProblem(consumed + 1, "", f"the row has {len(cells):,} columns; the limit "
                                                                    f"is {MAX_COLUMNS}")])
            row = Row(consumed + 1, [c.strip() for c in cells])
            rows.append(row)
            consumed = reader.line_num
            if max_rows is not None and not row.blank:
                content += 1
                if content > max_rows + 1:
                    raise ImportFailed([ImportProblem(None, "", f"the file has more than {max_rows:,} rows; "
                                                                f"the limit is {max_rows:,}")])
    except csv.Error as exc:
        message = str(exc)
        if "field larger than field limit" in message:
            message = "a value is far too long (an unclosed quote?)"
        raise ImportFailed([ImportProblem(consumed + 1, "", f"cannot be read as CSV: {message}")])
    return rows


def header_key(name: str) -> str:
    """Compare column names loosely: case, spacing, BOM and quotes do not matter."""
    name = name.replace("\ufeff", "").strip().strip('"').strip()
    return re.sub(r"\s+", " ", name).lower()


class Columns:
    """A header row: find columns by name (never by position)."""

    def __init__(self, cells: list[str], *, line: int, key=header_key):
        self.cells = cells
        self.line = line
        self._key = key
        self.index: dict[str, int] = {}
        self.duplicates: list[str] = []
        for i, name in enumerate(cells):
            k = key(name)
            if not k:
                continue
            if k in self.index:
                self.duplicates.append(name)
            else:
                self.index[k] = i

    def find(self, *aliases: str) -> int | None:
        for alias in aliases:
            if (i := self.index.get(self._key(alias))) is not None:
                return i
        return None

    def has(self, *aliases: str) -> bool:
        return self.find(*aliases) is not None

    def name(self, index: int) -> str:
        return self.cells[index].replace("\ufeff", "").strip()

    @property
    def width(self) -> int:
        """Columns up to the last named one (trailing unnamed cells do not count)."""
        return max(self.index.values(), default=-1) + 1

    @staticmethod
    def cell(row: Row, index: int | None) -> str:
        if index is None or index >= len(row.cells):
            return ""
        return row.cells[index]

    def extra_values(self, row: Row) -> str | None:
        """A message when the row has values beyond the header's columns (a shifted row)."""
        extra = [c for c in row.cells[self.width:] if c.strip()]
        if not extra:
            return None
        return (f"has {len(row.filled())} values but the header (line {self.line}) names {self.width} columns; "
                "a number with a thousands separator must be quoted, or a value is misplaced")
