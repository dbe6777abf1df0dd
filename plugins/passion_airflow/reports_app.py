"""The lake's daily reports and leaderboards as web pages: a FastAPI app the Passion plugin mounts in Airflow.

- ``GET /``: the days with a report, newest first, and the leaderboards;
- ``GET /reports/{day}``: ``reports/dt=<day>/index.html`` of the lake;
- ``GET /leaderboards/{corpus}``: ``leaderboards/<corpus>/leaderboard.html``;
- ``GET /runs/{dag_id}/{run_id}``: a redirect to the report of the day a daily run processes.

Nothing here imports Airflow: where the lake is, who may read what and which day a run processes are
given to ``create_app`` (``passion_reports_plugin`` gives it Airflow's), so the app also runs under
FastAPI's ``TestClient`` over any ``Lake``.

The pages are files of the lake served on Airflow's origin, where a script could call Airflow's API as
the user: a Content-Security-Policy keeps any script in them from running (they need inline styles and
data-URI images, nothing else).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment

from passion_tasks.errors import PassionError
from passion_tasks.lake.datasets import LEADERBOARDS, REPORT_PAGE, REPORTS

if TYPE_CHECKING:
    from fastapi.params import Depends as Dependency

    from passion_tasks.lake import Lake

SCORE_DAG = "passion_score"
BENCHMARK_DAG = "passion_benchmark"
#: The DAGs whose runs each process one day: the ``day`` Param, else the run's data interval.
DAILY_DAGS = ("passion_ingest", "passion_score")

LEADERBOARD_PAGE = "leaderboard.html"

DAY = r"\d{4}-\d{2}-\d{2}"
CORPUS = r"[a-z0-9][a-z0-9_-]{0,63}"
_REPORT_PATH = re.compile(rf"{REPORTS}/dt=({DAY})/{re.escape(REPORT_PAGE)}")
_LEADERBOARD_PATH = re.compile(rf"{LEADERBOARDS}/({CORPUS})/{re.escape(LEADERBOARD_PAGE)}")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    # A re-run replaces a day's report under the same URL.
    "Cache-Control": "no-cache",
}

LakeOpener = Callable[[], "Lake"]
#: Returns if the request's user may read the runs of the DAG named; raises an HTTPException if not.
Authorizer = Callable[[Request, str], Awaitable[None]]
#: The day a run of a daily DAG processes, from its DAG id and run id; None when there is no such run.
RunDay = Callable[[str, str], dt.date | None]

_PAGES = Environment(autoescape=True)
_INDEX = _PAGES.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Passion reports</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a202c; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
li { margin: 0.2rem 0; } .lake { color: #718096; font-size: 0.85rem; }
</style>
</head>
<body>
<h1>Passion</h1>
<h2>Daily reports</h2>
{% if days %}<ul id="reports">
{% for day in days %}<li><a href="reports/{{ day }}">{{ day }}</a></li>
{% endfor %}</ul>
{% else %}<p>No report yet: each <code>passion_score</code> run writes the report of its day.</p>
{% endif %}
<h2>Leaderboards</h2>
{% if corpora %}<ul id="leaderboards">
{% for corpus in corpora %}<li><a href="leaderboards/{{ corpus }}">{{ corpus }}</a></li>
{% endfor %}</ul>
{% else %}<p>No leaderboard yet: a <code>passion_benchmark</code> run writes its corpus' leaderboard.</p>
{% endif %}
<p class="lake">Lake: {{ lake }}</p>
</body>
</html>
"""
)
_MESSAGE = _PAGES.from_string(
    """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ title }}</title>
<style>body { font-family: system-ui, sans-serif; margin: 2rem; }</style></head>
<body><h1>{{ title }}</h1><p>{{ message }}</p></body>
</html>
"""
)


def report_path(day: dt.date) -> str:
    """Where the report of ``day`` is in the lake, as ``reporting.report`` writes it."""
    return f"{REPORTS}/dt={day.isoformat()}/{REPORT_PAGE}"


def leaderboard_path(corpus: str) -> str:
    return f"{LEADERBOARDS}/{corpus}/{LEADERBOARD_PAGE}"


def report_days(lake: Lake) -> list[dt.date]:
    """The days with a report, newest first."""
    matches = (_REPORT_PATH.fullmatch(path) for path in lake.list_files(REPORTS))
    return sorted((dt.date.fromisoformat(match[1]) for match in matches if match), reverse=True)


def leaderboard_corpora(lake: Lake) -> list[str]:
    """The corpora with a leaderboard, by name."""
    matches = (_LEADERBOARD_PATH.fullmatch(path) for path in lake.list_files(LEADERBOARDS))
    return sorted(match[1] for match in matches if match)


def valid_day(day: Annotated[str, Path(pattern=f"^{DAY}$")]) -> dt.date:
    """The ``day`` of a URL: a real date written YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        raise HTTPException(422, f"not a day: {day!r} (expected YYYY-MM-DD)") from None


def page(html: str | bytes, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def message_page(title: str, message: str, status_code: int) -> HTMLResponse:
    return page(_MESSAGE.render(title=title, message=message), status_code=status_code)


def not_found(message: str) -> HTMLResponse:
    return message_page("Not found", message, 404)


def lake_page(lake: Lake, path: str, missing: str) -> HTMLResponse:
    """The lake's file at ``path`` as it is, or a 404 page saying ``missing`` and where it was looked for."""
    # Imported here, not at the top: every Airflow process that loads plugins imports this module.
    from passion_tasks.lake import LakeError

    try:
        return page(lake.read_bytes(path))
    except LakeError:
        return not_found(f"{missing}: {lake.uri(path)} does not exist.")


def create_app(*, open_lake: LakeOpener, authorize: Authorizer, day_of_run: RunDay) -> FastAPI:
    """The app. ``open_lake`` is called for each request: a change of the lake's settings applies at once."""
    app = FastAPI(title="Passion reports", docs_url=None, redoc_url=None, openapi_url=None)

    def reader_of(dag_id: str) -> Dependency:
        async def may_read(request: Request) -> None:
            await authorize(request, dag_id)

        return Depends(may_read)

    async def may_read_the_run(request: Request, dag_id: str) -> None:
        await authorize(request, dag_id)

    @app.exception_handler(PassionError)
    async def passion_error(request: Request, error: PassionError) -> HTMLResponse:
        # Bad lake settings, say: the page says what Passion says, where a bare 500 would say nothing.
        return message_page("Passion cannot read the lake", str(error), 500)

    # Lake reads block: the routes are plain functions, which FastAPI runs in its thread pool.
    @app.get("/", dependencies=[reader_of(SCORE_DAG)])
    def index() -> HTMLResponse:
        lake = open_lake()
        return page(_INDEX.render(days=report_days(lake), corpora=leaderboard_corpora(lake), lake=lake.uri()))

    @app.get("/reports/{day}", dependencies=[reader_of(SCORE_DAG)])
    def report(day: Annotated[dt.date, Depends(valid_day)]) -> HTMLResponse:
        return lake_page(open_lake(), report_path(day), f"No report for {day}")

    @app.get("/leaderboards/{corpus}", dependencies=[reader_of(BENCHMARK_DAG)])
    def leaderboard(corpus: Annotated[str, Path(pattern=f"^{CORPUS}$")]) -> HTMLResponse:
        return lake_page(open_lake(), leaderboard_path(corpus), f"No leaderboard for {corpus}")

    @app.get("/runs/{dag_id}/{run_id}", dependencies=[Depends(may_read_the_run)], response_model=None)
    def run_report(dag_id: str, run_id: str) -> HTMLResponse | RedirectResponse:
        if dag_id not in DAILY_DAGS:
            return not_found(f"Runs of {dag_id} have no daily report; {SCORE_DAG} runs write them.")
        day = day_of_run(dag_id, run_id)
        if day is None:
            return not_found(f"{dag_id} has no run {run_id!r}.")
        # Relative to /<prefix>/runs/<dag_id>/<run_id>, so it holds under any mount and base URL.
        return RedirectResponse(f"../../reports/{day.isoformat()}", status_code=303)

    return app
