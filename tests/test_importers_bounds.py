"""An upload of any shape answers with a bounded list of problems, in bounded memory (issue 13, item 1).

Memory is measured with tracemalloc (peak bytes allocated while parsing), never with a timing.
"""

from __future__ import annotations

import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portfolios.holdings.importers import ImportFailed, parse_positions
from portfolios.holdings.importers.base import MAX_PROBLEMS
from portfolios.models import Portfolio
from tests.test_api_fixtures import _fresh_throttle_history, token_client  # noqa: F401

MILLION_COLUMNS = b"ticker,shares" + b",x" * 1_000_000 + b"\nAAPL,1" + b",1" * 10 + b"\n"


def _refusal(data: bytes, **kwargs) -> tuple[ImportFailed, int]:
    """The refusal and the peak memory (bytes) allocated while parsing."""
    tracemalloc.start()
    try:
        with pytest.raises(ImportFailed) as caught:
            parse_positions(data, max_bytes=4 * 1024 * 1024, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, peak


def test_a_million_columns_is_refused_with_one_problem_in_flat_memory():
    assert len(MILLION_COLUMNS) > 2_000_000
    refusal, peak = _refusal(MILLION_COLUMNS)
    assert len(refusal.errors) == 1 and refusal.more == 0
    assert "longer than 10,000 characters" in refusal.errors[0].message
    # The bytes and their decoded text (one copy each) and little more: no per-column objects.
    assert peak < 3 * len(MILLION_COLUMNS), f"peak {peak:,} bytes for a {len(MILLION_COLUMNS):,}-byte file"


def test_many_columns_on_short_lines_are_refused_before_they_are_read():
    data = b"ticker,shares" + b",x" * 300 + b"\n" + b"AAPL,1\n" * 10
    refusal, _ = _refusal(data)
    assert [p.line for p in refusal.errors] == [1]
    assert "the limit is 200" in refusal.errors[0].message


def test_thousands_of_bad_rows_keep_the_first_problems_and_count_the_rest():
    data = b"ticker,shares\n" + b"=bad,-1\n" * 5000
    refusal, peak = _refusal(data, max_rows=10_000)
    assert len(refusal.errors) == MAX_PROBLEMS
    assert refusal.total == 10_000 and refusal.more == 10_000 - MAX_PROBLEMS
    assert refusal.errors[0].line == 2
    assert str(refusal).endswith(f"… and {refusal.more:,} more")
    assert peak < 20 * 1024 * 1024


def test_memory_does_not_grow_with_the_number_of_problems():
    """Ten times the bad rows: about the same peak (the rows themselves aside, nothing per problem)."""
    small = _refusal(b"ticker,shares\n" + b"=bad,-1\n" * 500, max_rows=100_000)
    large = _refusal(b"ticker,shares\n" + b"=bad,-1\n" * 5000, max_rows=100_000)
    assert len(small[0].errors) == len(large[0].errors) == MAX_PROBLEMS
    per_row_small = small[1] / 500
    per_row_large = large[1] / 5000
    assert per_row_large < per_row_small, "the cost per bad row must fall, not stay, once problems are capped"


def test_a_refusal_with_more_problems_survives_pickling():
    import pickle

    from portfolios.holdings.importers import ImportProblem

    refusal = ImportFailed([ImportProblem(n, "", "bad") for n in range(1, 120)])
    copy = pickle.loads(pickle.dumps(refusal))  # noqa: S301 (our own bytes)
    assert (len(copy.errors), copy.more, copy.total) == (MAX_PROBLEMS, 19, 119)


@pytest.mark.django_db
def test_the_api_answers_a_million_columns_with_a_short_error_list(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    upload = SimpleUploadedFile("wide.csv", MILLION_COLUMNS[: 2 * 1024 * 1024 - 10], content_type="text/csv")
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": upload},
                                        format="multipart")
    assert response.status_code == 400
    assert len(response.content) < 10_000
    assert len(response.json()["errors"]) == 1


@pytest.mark.django_db
def test_the_api_and_the_form_say_how_many_more_problems_there_are(alice, alice_client):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    data = b"ticker,shares\n" + b"=bad,-1\n" * 1000
    upload = SimpleUploadedFile("bad.csv", data, content_type="text/csv")
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": upload},
                                        format="multipart")
    errors = response.json()["errors"]
    assert response.status_code == 400 and len(errors) == MAX_PROBLEMS + 1
    assert errors[-1]["message"] == f"… and {2000 - MAX_PROBLEMS:,} more problems"

    response = alice_client.post(reverse("holdings_upload", args=[portfolio.pk]),
                                 {"file": SimpleUploadedFile("bad.csv", data, content_type="text/csv")})
    html = response.content.decode()
    assert response.status_code == 400
    assert html.count('data-testid="import-problem"') == MAX_PROBLEMS
    assert "2000 problems found" in html and f"and {2000 - MAX_PROBLEMS} more" in html


# --- OFX: bounded before the parser sees it (it recurses once per level: 600,000 levels crashed it) ---

OFX_HEAD = b"OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\n\r\n"


def test_an_ofx_file_nested_deeper_than_any_statement_is_refused_before_parsing():
    refusal, peak = _refusal(OFX_HEAD + b"<OFX>" + b"<X>" * 2000 + b"</OFX>")
    assert "nests more than 40 levels" in refusal.errors[0].message
    assert peak < 2 * 1024 * 1024


def test_an_ofx_file_with_more_elements_than_positions_need_is_refused_at_once():
    refusal, _ = _refusal(OFX_HEAD + b"<OFX>" + b"<A>1" * 500_000 + b"</OFX>")
    assert "far more elements" in refusal.errors[0].message


def test_an_ofx_file_over_the_row_limit_is_refused():
    from pathlib import Path

    data = (Path(__file__).parent / "fixtures" / "brokers" / "Fidelity_X12345678.qfx").read_bytes()
    start, end = data.index(b"<POSSTOCK>"), data.index(b"</POSSTOCK>") + len(b"</POSSTOCK>")
    refusal, _ = _refusal(data[:start] + data[start:end] * 30 + data[end:], max_rows=20)
    assert refusal.errors[0].message.endswith("the limit is 20")
