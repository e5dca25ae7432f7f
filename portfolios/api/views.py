"""REST API views (DESIGN.md "REST API"). Thin: ownership check, validate, one service/selector call.

Every object lookup goes through `portfolios.access`, so another user's portfolio or run answers 404
for every method, before the request body is even looked at.
"""

from __future__ import annotations

from django.db import transaction
from django.urls import Resolver404, resolve, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portfolios.access import portfolio_for_user, run_for_user
from portfolios.api import serializers as s
from portfolios.api.pagination import StrictPageNumberPagination
from portfolios.api.selectors import portfolio_detail_document
from portfolios.api.services import portfolio_create, portfolio_delete, portfolio_update
from portfolios.csv_export import TRADE_COLUMNS, csv_response, trades_csv_rows
from portfolios.holdings.importers import ImportFailed
from portfolios.holdings.services import ExecutionRefused, holdings_apply_executed, portfolio_import_file
from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.selectors import run_latest_done
from portfolios.recommendations.services import rebalance_run_request, run_inputs_for

_DETAIL = s.DetailSerializer
_AUTH_ERRORS = {
    401: OpenApiResponse(_DETAIL, description="No or invalid credentials"),
    403: OpenApiResponse(_DETAIL, description="Not allowed (e.g. session without CSRF token)"),
    429: OpenApiResponse(_DETAIL, description="Too many requests (per-user throttle)"),
}
_NOT_FOUND = {404: OpenApiResponse(_DETAIL, description="No such object, or it belongs to another user")}
_BAD_REQUEST = {400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: {field: [messages]}")}


# --- portfolios ----------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="List your portfolios",
        responses={200: s.PortfolioSummarySerializer(many=True), **_AUTH_ERRORS,
                   404: OpenApiResponse(_DETAIL, description="No such page")},
    ),
    post=extend_schema(
        summary="Create a portfolio",
        request=s.PortfolioWriteSerializer,
        responses={201: s.PortfolioDetailSerializer, **_BAD_REQUEST, **_AUTH_ERRORS},
    ),
)
class PortfolioListView(generics.ListCreateAPIView):
    pagination_class = StrictPageNumberPagination
    parser_classes = [JSONParser]

    def get_queryset(self):
        return Portfolio.objects.filter(owner=self.request.user).order_by("name", "id")

    def get_serializer_class(self):
        return s.PortfolioWriteSerializer if self.request.method == "POST" else s.PortfolioSummarySerializer

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = s.PortfolioWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio = portfolio_create(owner=request.user, **serializer.validated_data)
        document = portfolio_detail_document(portfolio=portfolio)
        return Response(document, status=status.HTTP_201_CREATED, headers={"Location": _portfolio_url(portfolio)})


@extend_schema_view(
    get=extend_schema(summary="A portfolio with its valued holdings",
                      responses={200: s.PortfolioDetailSerializer, **_AUTH_ERRORS, **_NOT_FOUND}),
    patch=extend_schema(
        summary="Rename a portfolio or change its risk profile, target, drift bands or plan limits",
        request=s.PortfolioWriteSerializer,
        responses={200: s.PortfolioDetailSerializer, **_BAD_REQUEST, **_AUTH_ERRORS, **_NOT_FOUND},
    ),
    delete=extend_schema(summary="Delete a portfolio with its accounts, holdings and runs",
                         responses={204: None, **_AUTH_ERRORS, **_NOT_FOUND}),
)
class PortfolioDetailView(APIView):
    parser_classes = [JSONParser]

    def get(self, request: Request, pk: int) -> Response:
        portfolio = portfolio_for_user(request.user, pk)
        return Response(portfolio_detail_document(portfolio=portfolio))

    def patch(self, request: Request, pk: int) -> Response:
        portfolio = portfolio_for_user(request.user, pk)
        serializer = s.PortfolioWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        portfolio_update(portfolio=portfolio, **serializer.validated_data)
        return Response(portfolio_detail_document(portfolio=portfolio))

    def delete(self, request: Request, pk: int) -> Response:
        portfolio = portfolio_for_user(request.user, pk)
        portfolio_delete(portfolio=portfolio)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- import --------------------------------------------------------------------------------------


class PortfolioImportView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Import a broker positions file",
        description=(
            "Multipart upload (field `file`; optional `mode`: replace|merge). A file with any bad line is "
            "refused as a whole: 400 with every problem (line, field, message) and nothing is written."
        ),
        request={"multipart/form-data": s.ImportRequestSerializer},
        responses={
            200: s.ImportResultSerializer,
            400: OpenApiResponse(
                s.ImportErrorsSerializer,
                description="The file was refused; nothing was written",
                examples=[OpenApiExample("Bad quantity", value={
                    "errors": [{"line": 7, "field": "Quantity", "message": "'abc' is not a number"}]})],
            ),
            **_AUTH_ERRORS,
            **_NOT_FOUND,
            415: OpenApiResponse(_DETAIL, description="Not a multipart/form-data or form request"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        portfolio = portfolio_for_user(request.user, pk)
        form = s.ImportRequestSerializer(data=request.data)
        if not form.is_valid():
            return Response({"errors": _problems_from(form.errors)}, status=status.HTTP_400_BAD_REQUEST)
        upload = form.validated_data["file"]
        try:
            with transaction.atomic():  # write, then request the run: one transaction
                outcome = portfolio_import_file(portfolio=portfolio, data=upload.read(), filename=upload.name or "",
                                                mode=form.validated_data["mode"])
                rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.IMPORT)
        except ImportFailed as exc:
            errors = [{"line": p.line, "field": p.field or "", "message": p.message} for p in exc.errors]
            if exc.more:  # the list is bounded whatever the file: the rest are counted
                errors.append({"line": None, "field": "", "message": f"… and {exc.more:,} more problems"})
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"holdings": outcome.holdings, "accounts": outcome.accounts, "warnings": list(outcome.warnings)}
        )


def _problems_from(errors: dict) -> list[dict]:
    """Serializer errors in the import error shape: the form field stands in for the column."""
    return [
        {"line": None, "field": field, "message": str(message)}
        for field, messages in errors.items()
        for message in messages
    ]


# --- rebalance runs ------------------------------------------------------------------------------


class PortfolioRebalanceView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Request a rebalance run",
        description=(
            "Queues a run with these options (omitted ones take the portfolio's settings; the settings "
            "themselves are not changed). Answers 202 at once; poll `GET /api/runs/{run}/`. A run still "
            "pending for the portfolio is superseded (same id, new options)."
        ),
        request=s.RebalanceRequestSerializer,
        responses={202: s.RunAcceptedSerializer, **_BAD_REQUEST, **_AUTH_ERRORS, **_NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        portfolio = portfolio_for_user(request.user, pk)
        options = s.RebalanceRequestSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        inputs = {**run_inputs_for(portfolio), **options.validated_data}
        run = rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.API, inputs=inputs)
        url = reverse("api:run-detail", args=[run.pk])
        return Response({"run": run.pk, "status": run.status, "url": url}, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": url})


@extend_schema_view(
    get=extend_schema(summary="A rebalance run: status, and the result document once done",
                      responses={200: s.RunSerializer, **_AUTH_ERRORS, **_NOT_FOUND}),
)
class RunDetailView(APIView):
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.RunSerializer(run_for_user(request.user, pk)).data)


class RunExecutedView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Mark a run's trades as made at your broker: the holdings follow",
        description=(
            "All trades not marked yet, or the listed indexes of `result.trades`, at the plan's prices unless "
            "`prices` gives fills. In one transaction: sells take the lots the plan sold (lowest tax first), buys "
            "become lots dated today, cash moves; an audit record is kept and a new run is requested. Bad input "
            "(an unknown or already executed trade, a price not above 0, a run not done, a sale larger than the "
            "holding now) answers 400 naming the field, and nothing is written."
        ),
        request=s.ExecutedRequestSerializer,
        responses={200: s.ExecutedResultSerializer, **_BAD_REQUEST, **_AUTH_ERRORS, **_NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        run = run_for_user(request.user, pk)
        body = s.ExecutedRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                plan = holdings_apply_executed(run=run, selections=body.selections(), user=request.user,
                                               fill_prices=body.fill_prices())
                next_run = rebalance_run_request(portfolio=run.portfolio, trigger=RebalanceRun.Trigger.EDIT)
        except ExecutionRefused as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        document = portfolio_detail_document(portfolio=run.portfolio)
        return Response({**document, "executed_plan": plan.pk, "executed": plan.trades,
                         "cash_change": float(plan.cash_change_usd), "run": next_run.pk})


class PortfolioTradesView(APIView):
    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # Success is a CSV response built here; errors are JSON whatever the client accepts
        # (so `Accept: text/csv` is never refused with 406).
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        summary="Trade list of the latest finished run, as CSV",
        operation_id="portfolios_trades_csv",
        description="Columns: " + ", ".join(TRADE_COLUMNS) + ". Text cells that a spreadsheet would run as a "
        "formula are prefixed with a quote.",
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row"),
            **_AUTH_ERRORS,
            404: OpenApiResponse(_DETAIL, description="No such portfolio, or no finished run yet"),
        },
    )
    def get(self, request: Request, pk: int):
        portfolio = portfolio_for_user(request.user, pk)
        run = run_latest_done(portfolio=portfolio)
        if run is None:
            raise NotFound("No finished rebalance run for this portfolio yet: POST .../rebalance/ first.")
        filename = f"trades-portfolio{portfolio.pk}-run{run.pk}.csv"
        return csv_response(filename, TRADE_COLUMNS, trades_csv_rows(run.result))


class ApiNotFoundView(APIView):
    """Any other URL under /api/ (a malformed id, a missing trailing slash): a JSON 404, after authentication."""

    schema = None  # not an operation

    def _not_found(self, request: Request, *args, **kwargs) -> Response:
        detail = "No such API endpoint. See /api/docs/."
        if not request.path.endswith("/"):
            try:
                match = resolve(request.path + "/")
            except Resolver404:
                match = None
            if match is not None and match.url_name != "not-found":
                detail = f"No such API endpoint. Did you mean {request.path}/ (with the trailing slash)?"
        raise NotFound(detail)

    get = post = put = patch = delete = options = _not_found


def _portfolio_url(portfolio: Portfolio) -> str:
    return reverse("api:portfolio-detail", args=[portfolio.pk])
