"""NBIA's response conventions: dates, null keys left out, empty bodies, and ``format``.

NBIA answers a list of flat objects in the ``format`` asked for (JSON by
default; CSV with every field quoted; XML; an HTML table).  A key whose value
is null is left out of JSON (NBIA's JSON library drops it), and no results is
a 200 with an empty body, which tcia_utils reads as "No results found".
v4 dates are ``MM-DD-YYYY``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from xml.sax.saxutils import escape

from fastapi import Response

from dicomhub.errors import BadRequest

JSON = "json"
CSV = "csv"
CSV_DOWNLOAD = "csv-download"
XML = "xml"
HTML = "html"
#: ``format`` value (lower-cased) → how it is rendered.
FORMATS: Mapping[str, str] = {
    "json": JSON,
    "csv": CSV,
    "csvquoted": CSV,
    "csv-download": CSV_DOWNLOAD,
    "xml": XML,
    "html": HTML,
}
_NBIA_DATE = re.compile(r"(\d{1,2})[-/](\d{1,2})[-/](\d{4})")
_ISO_DATE = re.compile(r"(\d{4})[-/]?(\d{2})[-/]?(\d{2})")
_XML_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def parse_format(value: str | None, default: str = JSON) -> str:
    """The renderer a ``format`` value names; 400 for anything NBIA does not know."""
    if value is None or not value.strip():
        return default
    found = FORMATS.get(value.strip().lower())
    if found is None:
        raise BadRequest(
            f"Invalid format {value[:40]!r}. Allowed formats are: JSON, CSV, CSVQUOTED, "
            "CSV-DOWNLOAD, XML, HTML"
        )
    return found


def nbia_date(value: date | datetime | None) -> str | None:
    """A date as v4 writes it (``MM-DD-YYYY``); None stays None."""
    if value is None:
        return None
    # formatted by hand: strftime costs several times more, once per date of every row
    return f"{value.month:02d}-{value.day:02d}-{value.year:04d}"


def parse_nbia_date(value: str, what: str) -> date:
    """A ``fromDate``: ``MM-DD-YYYY`` as tcia_utils sends it (``MM/DD/YYYY`` and ISO too)."""
    text = value.strip()
    try:
        match = _NBIA_DATE.fullmatch(text)
        if match is not None:
            return date(int(match[3]), int(match[1]), int(match[2]))
        match = _ISO_DATE.fullmatch(text)
        if match is not None:
            return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise BadRequest(f"{what} is not a real date: {text[:40]!r}") from None
    raise BadRequest(f"{what} must be a date MM-DD-YYYY, got {text[:40]!r}")


def day_start(value: date) -> datetime:
    """Midnight UTC of ``value`` (release times are stored in UTC)."""
    return datetime.combine(value, time.min, tzinfo=UTC)


def clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` without null or empty values (NBIA omits null keys)."""
    return {key: value for key, value in row.items() if value is not None and value != ""}


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text  # a spreadsheet must not run a value as a formula
    return text


def _xml_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<rows>"]
    for row in rows:
        out.append("<row>")
        for column in columns:
            value = row.get(column)
            if value is None:
                continue
            tag = _XML_NAME.sub("_", column)
            out.append(f"<{tag}>{escape(str(value))}</{tag}>")
        out.append("</row>")
    out.append("</rows>")
    return "\n".join(out) + "\n"


def _html_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if row.get(c) is None else str(row.get(c)))}</td>"
            for c in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def render(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str = JSON,
    *,
    filename: str = "SeriesMetaData.csv",
) -> Response:
    """The response NBIA would give for ``rows`` (an empty body when there are none)."""
    listed = [clean(row) for row in rows]
    if not listed:
        return Response(status_code=200)
    if fmt == JSON:
        body = json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
        return Response(body, media_type="application/json")
    if fmt in (CSV, CSV_DOWNLOAD):
        headers = None
        if fmt == CSV_DOWNLOAD:
            headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(_csv_text(listed, columns), media_type="text/csv", headers=headers)
    if fmt == XML:
        return Response(_xml_text(listed, columns), media_type="application/xml")
    return Response(_html_text(listed, columns), media_type="text/html")


def render_json(value: Any) -> Response:
    """A JSON document as is (for bodies that are not lists of rows)."""
    return Response(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False), media_type="application/json"
    )
