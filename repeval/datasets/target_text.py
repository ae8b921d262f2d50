"""Typographic characters in a catalog's regression targets, as spreadsheets and word processors write them: the minus
sign U+2212 (``−0.5``, how a spreadsheet in a Swedish, Norwegian or Finnish locale writes a negative number) is read
as ``-`` (:func:`plain_minus`); a dash that only looks like one (``–0.5``), full-width or other non-ASCII digits and
other such characters are refused by row, named with the cell written in ASCII (:func:`typographic_why`); and with a
decimal comma ``1.234`` — a thousands separator (1234) or a decimal point (1.234) — is refused naming both
(:func:`ambiguous_why`), never read as either. Also how a catalog's label cells split into their parts
(:func:`split_cells`: at a separator; a Parquet list column's lists, into their items) and which of a regression task's
hold targets (:func:`target_cells`)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.words import counted

#: the minus sign (U+2212), read as ``-`` in a regression target
MINUS = "\u2212"
#: non-ASCII characters whose ASCII spelling a target cell's fix writes (besides digits and dashes): the Arabic
#: thousands separator, the minus sign; the Arabic decimal separator (U+066B) is written as the decimal mark
_ASCII = {"\u066c": "", "\u2212": "-"}


def plain_minus(cells: pa.Array) -> pa.Array:
    """``cells`` with the minus sign U+2212 written ``-``: ``−0.5`` → ``-0.5``, as the rows keep it."""
    return pc.replace_substring(cells, MINUS, "-")


def _ascii(cell: str, decimal: str) -> str:
    """``cell`` with ASCII characters in place of typographic ones: NFKC (full-width digits and signs), any decimal
    digit as 0-9, any dash as ``-``, spaces inside it dropped, the Arabic decimal separator as ``decimal``."""
    out = []
    for ch in unicodedata.normalize("NFKC", cell.strip()):
        if ch == "\u066b":
            out.append(decimal)
        elif ch in _ASCII:
            out.append(_ASCII[ch])
        elif ch.isascii():
            out.append(ch)
        elif unicodedata.decimal(ch, None) is not None:
            out.append(str(unicodedata.decimal(ch)))
        elif unicodedata.category(ch) == "Pd":
            out.append("-")
        elif not ch.isspace():
            out.append(ch)
    return "".join(out)


def _named(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')})"


def typographic_why(cell: str, column: str, decimal: str, number: re.Pattern[str]) -> str | None:
    """Why the regression target ``cell`` of ``column`` that is no number is refused when it holds non-ASCII
    characters (other than spaces around it): the characters, and the cell written in ASCII when that is a target
    (``number``, :func:`~repeval.datasets.manifest_rows._number_re`); ``None`` for a cell of ASCII characters."""
    odd = sorted({ch for ch in cell.strip() if not ch.isascii()})
    if not odd:
        return None
    chars = ", ".join(_named(ch) for ch in odd[:3])
    fixed = _ascii(cell, decimal)
    fix = (
        f"write it {fixed!r}"
        if fixed != cell.strip() and number.match(fixed)
        else f"write its numbers with the digits 0-9, '-' for a minus and {decimal!r} as the decimal mark"
    )
    return f"regression target {cell.strip()!r} in {column} holds {chars} — {fix}"


def _ambiguous_re(decimal: str) -> str:
    """A target of one group of three digits after the other decimal mark than ``decimal`` — ``1.234`` with a decimal
    comma (``1,234`` with a point): a thousands separator or that other decimal mark, which no row tells apart."""
    other = re.escape("," if decimal == "." else ".")
    return rf"^\s*(?:[^=:\s]+\s*[=:]\s*)?[-+]?[1-9]\d{{0,2}}{other}\d{{3}}\s*$"


def ambiguous_parts(values: pa.Array, odd: np.ndarray, decimal: str) -> np.ndarray:
    """Of the parts ``values`` that are no target (``odd``), those :func:`_ambiguous_re` matches."""
    if not odd.any():
        return np.zeros(len(values), dtype=bool)
    return odd & pc.fill_null(pc.match_substring_regex(values, _ambiguous_re(decimal)), False).to_numpy(
        zero_copy_only=False
    )


def ambiguous_why(cell: str, column: str, decimal: str) -> str:
    """Why a regression target such as ``1.234`` read with ``decimal`` ``,`` is refused: its two readings, each with
    its fix."""
    other = "," if decimal == "." else "."
    text = cell.strip()
    grouped = re.sub(rf"(?<=\d){re.escape(other)}(?=\d{{3}}\s*$)", "", text)
    mark = "remove decimal" if other == "." else "set decimal: ','"
    return (
        f"regression target {text!r} in {column} is ambiguous with decimal {decimal!r}: {grouped} with {other!r} "
        f"grouping its thousands, or {text.replace(other, '.')} with {other!r} as its decimal mark — write it "
        f"{grouped!r} if it is {grouped} (in a spreadsheet, a number format without a 1000 separator), or {mark} if "
        f"{other!r} is the column's decimal mark"
    )


def _number_re(decimal: str = ".") -> str:
    """A regression target written with ``decimal`` as its decimal mark: a number, or a ``name=value`` pair."""
    d = re.escape(decimal)
    return rf"^\s*(?:[^=:\s]+\s*[=:]\s*)?[-+]?(?:\d+{d}?\d*|{d}\d+)(?:[eE][-+]?\d+)?\s*$"


#: what reads a manifest's numbers written with a decimal comma (``0,31``): quoted between commas, or with another
#: character between its columns (a spreadsheet export's ``;``, ``delimiter: ';'``)
COMMA_FIX = "set decimal: ','"

#: characters a spreadsheet export groups a number's thousands with (:func:`_grouped_re`): ``.`` or ``,`` (the one
#: that is not the decimal mark), a space, a no-break space, a narrow no-break space (French), a thin space (SI), an
#: apostrophe (Swiss)
GROUPING = ".,' \u00a0\u202f\u2009\u2019"


def _grouped_re(decimal: str, seps: str = GROUPING, fraction: bool = False) -> str:
    """A regression target (a number, or a ``name=value`` pair) whose whole part groups its digits by thousands with
    one of ``seps`` other than ``decimal`` — ``1.234,5``, ``1 234``; with ``fraction``, only one with digits after
    ``decimal`` too (``1,234.5``, which a ``label_separator`` ``,`` would split into the targets 1 and 234.5). Its
    first group starts with 1 to 9, as a grouped number's does: ``0,100.5`` is the targets 0 and 100.5."""
    groups = "|".join(rf"(?:{re.escape(s)}\d{{3}})+" for s in seps if s != decimal)
    after = rf"{re.escape(decimal)}\d*" if fraction else rf"(?:{re.escape(decimal)}\d*)?"
    return rf"^\s*(?:[^=:\s]+\s*[=:]\s*)?[-+]?[1-9]\d{{0,2}}(?:{groups}){after}(?:[eE][-+]?\d+)?\s*$"


def thousands_fix(cell: str, decimal: str) -> str:
    """How to write a target cell whose numbers have a thousands separator (:func:`_grouped_re`): without one — the
    cell so written, as an example."""
    seps = re.escape("".join(s for s in GROUPING if s != decimal))
    plain = re.sub(rf"(?<=\d)[{seps}](?=\d{{3}}(?!\d))", "", cell)
    return (
        f"write its numbers without a thousands separator ({plain!r}; in a spreadsheet, a number format without a "
        "1000 separator)"
    )


def _grouped_rows(
    raw: pa.Array,
    parent: np.ndarray,
    values: pa.Array,
    keep: np.ndarray,
    odd: np.ndarray,
    separator: str | None,
    decimal: str,
) -> np.ndarray:
    """Of the regression cells ``raw`` split by :func:`split_cells` at ``separator``, those holding a number with a
    thousands separator — a part that is no target (``odd``, :func:`_odd_parts`) nor one with the other decimal mark (a
    number reported with that mark's fix), or a whole cell ``separator`` splits into numbers
    that read as one with digits after ``decimal`` (``1,234.5`` at ``,``): it is refused rather than read as other
    numbers. Only parts that are no target, and cells split in several, are matched."""
    out = np.zeros(len(raw), dtype=bool)
    if odd.any():
        other = "," if decimal == "." else "."
        odd_values = values.filter(pa.array(odd))
        grouped = pc.and_(
            pc.match_substring_regex(odd_values, _grouped_re(decimal)),
            pc.invert(pc.match_substring_regex(odd_values, _number_re(other))),
        )
        out[parent[odd][grouped.to_numpy(zero_copy_only=False)]] = True
    if separator is not None and separator in GROUPING and separator != decimal:
        split = np.flatnonzero(np.bincount(parent[keep], minlength=len(raw)) > 1)
        if len(split):
            cells = raw.take(pa.array(split))
            whole = pc.match_substring_regex(cells, _grouped_re(decimal, separator, fraction=True))
            out[split[whole.to_numpy(zero_copy_only=False)]] = True
    return out


def point_decimals(values: pa.Array, decimal: str) -> pa.Array:
    """Regression targets written with ``decimal`` as their decimal mark (checked by :func:`_odd_parts`) with
    a decimal point, as the task encoder reads them and the rows keep them: ``0,31`` → ``0.31``, ``a=-1,5e3`` →
    ``a=-1.5e3``; a name's own commas stay."""
    if decimal == ".":
        return values
    return pc.replace_substring_regex(values, rf"{re.escape(decimal)}(\d*(?:[eE][-+]?\d+)?\s*)$", r".\1")


def _odd_parts(values: pa.Array, keep: np.ndarray, decimal: str) -> np.ndarray:
    """Of the non-empty (``keep``) parts of cells split by :func:`split_cells`, those that are no regression target (a
    number with ``decimal`` as its decimal mark, or a ``name=value`` pair; one beyond a 64-bit float, :func:`huge_parts`,
    is none)."""
    odd = keep & ~pc.match_substring_regex(values, _number_re(decimal)).to_numpy(zero_copy_only=False)
    return odd | huge_parts(values, keep & ~odd, decimal)


#: a target that may be beyond a 64-bit float (an exponent of three digits, or 300 digits), checked with ``float``
_HUGE = r"[eE][-+]?\d{3,}|\d{300,}"


def _overflows(target: str, decimal: str) -> bool:
    """Whether the regression target ``target`` (a number, or a ``name=value`` pair) is beyond a 64-bit float's range,
    which Python's and Arrow's readers read as infinite: ``1e999``."""
    if len(target) < 300 and "e" not in target and "E" not in target:  # most targets: no look further
        return False
    value = re.split("[=:]", target, maxsplit=1)[-1].strip().replace(decimal, ".")
    return bool(re.search(_HUGE, value)) and not math.isfinite(float(value))


def huge_parts(values: pa.Array, keep: np.ndarray, decimal: str) -> np.ndarray:
    """Of the (``keep``) parts of cells, the numbers beyond a 64-bit float's range (:func:`_overflows`)."""
    out = np.zeros(len(values), dtype=bool)
    maybe = keep & pc.fill_null(pc.match_substring_regex(values, _HUGE), False).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(maybe):
        out[i] = _overflows(values[int(i)].as_py(), decimal)
    return out


def huge_why(target: str, where: str) -> str:
    """Why the regression target ``target`` beyond a 64-bit float's range (:func:`_overflows`) is refused."""
    return (
        f"regression target {target.strip()!r} in {where} is beyond the range of a 64-bit float (±1.8e308), read as "
        "infinite — write it in that range (rescale the column)"
    )


def _non_numeric_rows(parent: np.ndarray, odd: np.ndarray, n: int) -> np.ndarray:
    """Of ``n`` cells split by :func:`split_cells`, those with a part that is no regression target (:func:`_odd_parts`)."""
    bad = np.zeros(n, dtype=bool)
    bad[parent[odd]] = True
    return bad


def _decimal_hint(values: pa.Array, keep: np.ndarray, decimal: str) -> str:
    """What to set when targets that are no number with ``decimal`` as their decimal mark are with the other one:
    ``0,31`` read with a decimal point, ``0.31`` with a decimal comma; ``""`` otherwise."""
    kept = values.filter(pa.array(keep))
    other = "," if decimal == "." else "."
    wrong = pc.and_(
        pc.invert(pc.match_substring_regex(kept, _number_re(decimal))),
        pc.match_substring_regex(kept, _number_re(other)),
    )
    if not pc.any(wrong).as_py():
        return ""
    if decimal == ".":
        return f" — if ',' is its decimal mark, {COMMA_FIX}"
    return " — it has a decimal point, but decimal is ',': remove decimal if '.' is its decimal mark"


def list_text(cells: pa.Array) -> pa.Array:
    """The lists of a Parquet list column read as lists of strings, each written as text (its items joined by
    ``", "``, a null or empty list ``""``): what messages name."""
    return pc.fill_null(pc.binary_join(cells, ", "), "")


def split_cells(raw: pa.Array, separator: str | None) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Cells split at ``separator`` (``None``: each cell one part; a list column's lists, their items): each part's
    cell index, the parts (whitespace trimmed) and which are not empty."""
    if pa.types.is_list(raw.type):
        values = pc.utf8_trim_whitespace(pc.list_flatten(raw).fill_null(""))
        return pc.list_parent_indices(raw).to_numpy(), values, pc.not_equal(values, "").to_numpy(zero_copy_only=False)
    if separator is None:
        values = pc.utf8_trim_whitespace(raw.fill_null(""))
        return np.arange(len(raw)), values, pc.not_equal(values, "").to_numpy(zero_copy_only=False)
    parts = pc.split_pattern(raw.fill_null(""), separator)
    values = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    return pc.list_parent_indices(parts).to_numpy(), values, pc.not_equal(values, "").to_numpy(zero_copy_only=False)


def target_cells(raw: pa.Array, separator: str | None, decimal: str = ".") -> tuple[np.ndarray, np.ndarray]:
    """Of a regression task's label cells: which hold targets the loader keeps (at least one, every one a number with
    ``decimal`` as its decimal mark or a ``name=value`` pair, none with a thousands separator), and which hold text
    that is none."""
    if pa.types.is_list(raw.type):  # a Parquet list column: each item one target
        parent, values, keep = split_cells(raw, None)
        values, separator, raw = plain_minus(values), None, list_text(raw)
    else:
        raw = plain_minus(raw)
        parent, values, keep = split_cells(raw, separator)
    odd = _odd_parts(values, keep, decimal)
    bad = _non_numeric_rows(parent, odd, len(raw)) | _grouped_rows(raw, parent, values, keep, odd, separator, decimal)
    return (np.bincount(parent[keep], minlength=len(raw)) > 0) & ~bad, bad


def target_hint(cell: pa.Array, separator: str | None, decimal: str) -> str:
    """The fix of a regression ``cell`` (an array of one) that :func:`target_cells` finds no target in, after a dash:
    writing its numbers without a thousands separator, or the other decimal mark's (:func:`_decimal_hint`); ``""``
    when it is text."""
    if pa.types.is_list(cell.type):  # a Parquet list column's list: its items, as the cell ``a, b``
        cell, separator = list_text(cell), ","
    cell = plain_minus(cell)
    parent, values, keep = split_cells(cell, separator)
    odd = _odd_parts(values, keep, decimal)
    if _grouped_rows(cell, parent, values, keep, odd, separator, decimal).any():
        return f" — it has a thousands separator: {thousands_fix(cell[0].as_py().strip(), decimal)}"
    text = cell[0].as_py() or ""
    if ambiguous_parts(values, odd, decimal).any():
        return " — it " + ambiguous_why(text, "it", decimal).split(" in it ", 1)[1]
    if not text.isascii() and (why := typographic_why(text, "it", decimal, re.compile(_number_re(decimal)))):
        return " — it " + why.split(" in it ", 1)[1]
    return _decimal_hint(values, keep, decimal)


class TargetCounts:
    """How many regression targets the rows a catalog keeps have, batch by batch: the number of rows of each count, and
    the first :attr:`room` rows of each (row number, track id, targets) — memory bounded whatever the row count —
    to name the rows whose count is not the one most rows have (:func:`~repeval.datasets.catalog._same_target_count`)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.rows: dict[int, int] = {}
        self.first: dict[int, list[tuple[int, str, list[str]]]] = {}

    def add(self, rows: np.ndarray, ids: pa.Array, labels: pa.ListArray) -> None:
        """Count the kept rows ``rows`` (their manifest row numbers), with their track ids and targets."""
        lengths = pc.list_value_length(labels).to_numpy(zero_copy_only=False)
        for n in np.unique(lengths).tolist():
            idx = np.flatnonzero(lengths == n)
            self.rows[n] = self.rows.get(n, 0) + len(idx)
            first = self.first.setdefault(n, [])
            if (room := self.room - len(first)) > 0:
                take = pa.array(idx[:room])
                cells = labels.take(take).to_pylist()
                first += zip(rows[idx[:room]].tolist(), ids.take(take).to_pylist(), cells, strict=True)

    def most(self) -> int | None:
        """The count most rows have (the smallest of equally many), ``None`` when every row has the same."""
        if len(self.rows) < 2:
            return None
        return max(sorted(self.rows), key=lambda n: self.rows[n])

    def others(self, most: int) -> tuple[list[tuple[int, str, list[str]]], int]:
        """The first :attr:`room` rows whose count is not ``most``, in row order, and how many such rows there are."""
        named = sorted(r for n, first in self.first.items() if n != most for r in first)[: self.room]
        return named, sum(k for n, k in self.rows.items() if n != most)


#: a regression cell that ``label_separator`` ``,`` splits into a number and groups of three digits — ``1,234``,
#: ``-12,345,678``: one number with a thousands separator, one with a decimal comma, or several targets. Also the
#: targets of a row :func:`~repeval.datasets.catalog._same_target_count` refuses, joined again, that it names as such a
#: number (a fraction after them never gets there: the load refuses ``1,234.5`` as a number with a thousands separator)
COMMA_GROUPED = r"^\s*[-+]?[1-9]\d{0,2}(?:,\d{3})+\s*$"
#: a whole number below 1,000 — ``523``: how a column that groups its thousands with ``,`` writes its small numbers
_BELOW_GROUPS = r"^\s*[-+]?\d{1,3}\s*$"


class CommaGroups:
    """Of a regression column's target cells (:func:`target_cells`) read with ``decimal`` ``.`` and split at
    ``label_separator`` ``,``: how many hold a number with ``,`` between groups of three digits (:data:`COMMA_GROUPED`),
    how many one number — a whole number below 1,000 (:data:`_BELOW_GROUPS`, as such a column writes its small
    numbers) or another — and whether any holds several targets of another shape (``0.1,0.2``: counted up to the batch
    of the first, one settles it), with the first cell of each kind and its row (0-based, counted as the load counts
    rows). A column of the first two kinds only, one at least with ``,``, is ambiguous when its other cells are whole
    numbers below 1,000 or most of its target cells hold ``,`` (the load kept those, read as several targets, and
    dropped the others): refused alike by the load and by ``repeval validate`` (:meth:`why`)."""

    def __init__(self) -> None:
        self.grouped = self.small = self.single = self.other = 0
        self.example: tuple[str, int] | None = None
        self.small_example: tuple[str, int] | None = None
        self.single_example: tuple[str, int] | None = None

    def add(self, raw: pa.Array, start: int, split: bool = True) -> None:
        """Count the target cells of ``raw``, the column's cells of rows ``start`` on; with ``split`` ``False`` (a
        Parquet column of numbers or of lists, or cells split at another separator) as targets of another kind."""
        if not split or self.other:  # one target of another kind settles it: the rest is not read
            self.other += 1
            return
        if self.single_example is not None and not pc.any(pc.match_substring(raw, ",")).as_py():
            # most batches of most columns (0.31, 120.5): one number a cell, counted without a closer look
            self.single += int(pc.sum(pc.not_equal(pc.utf8_trim_whitespace(raw), "")).as_py() or 0)
            return
        ok, _ = target_cells(raw, ",", ".")
        if not ok.any():
            return
        cells = plain_minus(raw).filter(pa.array(ok))
        rows = start + np.flatnonzero(ok)
        shaped = pc.fill_null(pc.match_substring_regex(cells, COMMA_GROUPED), False).to_numpy(zero_copy_only=False)
        one = ~pc.fill_null(pc.match_substring(cells, ","), False).to_numpy(zero_copy_only=False)
        small = one & pc.fill_null(pc.match_substring_regex(cells, _BELOW_GROUPS), False).to_numpy(zero_copy_only=False)
        single = one & ~small
        self.grouped += int(shaped.sum())
        self.small += int(small.sum())
        self.single += int(single.sum())
        self.other += int((~shaped & ~one).sum())
        for kind, found in (("example", shaped), ("small_example", small), ("single_example", single)):
            if getattr(self, kind) is None and found.any():
                first = int(np.flatnonzero(found)[0])
                setattr(self, kind, (cells[first].as_py().strip(), int(rows[first])))

    def why(self, column: str, rowref: Callable[[int], str]) -> str | None:
        """Why the column is refused when every target cell is such a number, or a whole number below 1,000 beside
        them, or one number beside more of them (``rowref``: a row as the manifest's rows are named): its three
        readings, each with its fix; ``None`` otherwise."""
        if not self.grouped or self.other or self.example is None:
            return None
        n, ones = self.grouped, self.small + self.single
        if self.single and n <= ones:  # most cells one number: the few with ',' are refused by row, each with its fix
            return None
        cell, row = self.example[0], rowref(self.example[1])
        parts = cell.split(",")
        if self.single_example is not None:
            few, at = min((e for e in (self.single_example, self.small_example) if e is not None), key=lambda e: e[1])
            others = "the other cell" if ones == 1 else f"the other {counted(ones, 'cell')}"  # not "the other 1 cell"
            what = (
                f"{counted(n, 'target cell')} of {column!r} {'holds' if n == 1 else 'hold'} a number with ',' between "
                f"groups of three digits (e.g. {cell!r}, {row}) and {others} one number "
                f"(e.g. {few!r}, {rowref(at)}), so that its rows differ in their number of targets; label_separator "
                f"',' splits {cell!r}"
            )
        elif self.small_example is not None:
            few, at = self.small_example
            what = (
                f"{counted(n, 'target cell')} of {column!r} {'holds' if n == 1 else 'hold'} a number with ',' between "
                f"groups of three digits (e.g. {cell!r}, {row}) and the others a whole number below 1,000 "
                f"(e.g. {few!r}, {rowref(at)}), as a column whose thousands ',' groups writes them; label_separator "
                f"',' splits {cell!r}"
            )
        else:
            what = (
                f"{'each' if n > 1 else 'the'} target cell of {column!r} {f'(all {n:,}) holds' if n > 1 else 'holds'} "
                f"a number with ',' between groups of three digits (e.g. {cell!r}, {row}), which label_separator ',' "
                "splits"
            )
        return (
            f"label_column: {what} into {len(parts)} targets ({', '.join(parts)}) — "
            f"ambiguous: if ',' groups its thousands, write the numbers without it ({cell.replace(',', '')!r}; in a "
            "spreadsheet, a number format without a 1000 separator); if ',' is its decimal mark, set decimal: ','; "
            f"if a cell holds {len(parts)} targets, separate them by another character and set label_separator to "
            f"it ({cell.replace(',', ';')!r} with label_separator: ';') or name them "
            f"({','.join(f'y{i}={p}' for i, p in enumerate(parts))!r})"
        )


#: a regression target written with a decimal point, as the rows keep them (:func:`target_why`'s quick answer)
TARGET = re.compile(_number_re("."), re.ASCII)


def target_why(item: str, decimal: str = ".", where: str = "the label") -> str | None:
    """Why one regression target — a number with ``decimal`` as its decimal mark, or a ``name=value`` pair, as a
    catalog reads its cells (the minus sign U+2212 read as ``-``) — that a loader gives one by one is refused: a
    typographic character (:func:`typographic_why`), a thousands separator, the other decimal mark, or no number at
    all (``nan``, ``inf``, a word); ``None`` for a target. What Python's ``float`` read (``1_000``, ``nan``) or
    refused (``−0.5``) no longer differs from a catalog's reading."""
    if decimal == "." and TARGET.match(item) and not _overflows(item, decimal):
        return None
    text = item.replace(MINUS, "-").strip()
    number = re.compile(_number_re(decimal), re.ASCII)  # \d: 0-9, as the catalog's Arrow kernels read it
    if number.match(text):
        return huge_why(text, where) if _overflows(text, decimal) else None
    if not text.isascii() and (why := typographic_why(text, where, decimal, number)):
        return why
    other = "," if decimal == "." else "."
    if re.match(_grouped_re(decimal), text, re.ASCII) and not re.match(_number_re(other), text, re.ASCII):
        return f"regression target {text!r} in {where} has a thousands separator — {thousands_fix(text, decimal)}"
    if re.match(_number_re(other), text, re.ASCII):
        grouped = re.sub(rf"(?<=\d){re.escape(other)}(?=\d{{3}}\s*$)", "", text)
        ambiguous = re.match(_ambiguous_re(decimal), text, re.ASCII)
        either = f", or {grouped!r} if {other!r} groups its thousands" if ambiguous else ""
        return (
            f"regression target {text!r} in {where} is not a number with {decimal!r} as its decimal mark — write it "
            f"{text.replace(other, decimal)!r} if {other!r} is its decimal mark{either}"
        )
    return (
        f"regression target {text!r} in {where} is not a number — write a number with the digits 0-9 and "
        f"{decimal!r} as its decimal mark (or name=number)"
    )


def plain_target(item: str) -> str:
    """A regression target a loader gives (checked by :func:`target_why`) as the rows keep it: ``−0.5`` → ``-0.5``."""
    return item.replace(MINUS, "-").strip()
