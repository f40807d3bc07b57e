"""A year of a large organisation's AI bills through `aispend materialize`: where the time and memory go.

    .venv/bin/python benchmarks/scale_benchmark.py --scale 0.01 [--scale 0.1 ...]

A synthetic organisation (at `--scale 1`: 5,000 people in 300 teams, 2,000 OpenAI projects and 2,000
Anthropic workspaces, six cost lines each a day: ~8.8 M OpenAI and Anthropic line items a year) is
rendered AHEAD of the run into the providers' wire formats: OpenAI `/v1/organization/costs` pages of up
to 180 daily buckets (a quarter of the amounts as JSON strings, as seen live), Anthropic
`/v1/organizations/cost_report` pages of up to 31 buckets with amounts in cents as decimal strings. A
threaded HTTP server on 127.0.0.1 only looks the pre-rendered bytes up by cursor, so what is measured is
the pipeline, not the server. GitHub Copilot (5,000 seats held by the organisation's people, `Link`
pages of 100) and AWS Cost Explorer (300 linked accounts with Amazon Bedrock and Amazon Q, awsJson1.1
over `POST /`, NextPageToken pages) are rendered and served the same way (`scale_seats_cloud.py`). GCP,
Azure and OpenRouter are left unconfigured: their raw assets materialise as "not configured" and cost
only their bookkeeping.

Each size runs `aispend materialize --start <a year ago> --end <yesterday>` as a subprocess with a fresh
persistent Dagster instance (`DAGSTER_HOME`), as users run it, and prints: wall time per layer (read
from the run's "run seconds" log line in the instance's event log), Dagster bookkeeping (wall minus the
step's own time: process start, imports, events), peak memory (that process's VmHWM, or the PSS of it
and its pull workers, whichever is larger), API calls per source against the minimum the page sizes
allow, whether every provider-day total equals the generator's exactly, and the transforms (line
items, allocation, rollup) against a floor: the same tables computed by hand-written DuckDB SQL over
the same raw rows, in the same run, checked to match.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import numpy as np
import scale_seats_cloud as more

REPO = Path(__file__).resolve().parents[1]
AISPEND = str(Path(sys.executable).with_name("aispend"))
DAYS = 365
OPENAI_KEY, ANTHROPIC_KEY = "sk-admin-scale", "sk-ant-admin-scale"
OPENAI_PATH, ANTHROPIC_PATH = "/v1/organization/costs", "/v1/organizations/cost_report"
OPENAI_USAGE_PATH, ANTHROPIC_USAGE_PATH = (
    "/v1/organization/usage/completions",
    "/v1/organizations/usage_report/messages",
)
OPENAI_PAGE, ANTHROPIC_PAGE, USAGE_PAGE = 180, 31, 31  # daily buckets per page, the providers' maxima
OPENAI_ITEMS = (
    ("gpt-4o-2024-08-06, input", 0.25),
    ("gpt-4o-2024-08-06, output", 0.35),
    ("gpt-4o-2024-08-06, cached input", 0.05),
    ("gpt-4o-mini-2024-07-18, input", 0.10),
    ("gpt-4o-mini-2024-07-18, output", 0.20),
    ("text-embedding-3-small, input", 0.05),
)
CACHE_WRITE = "cache_creation.ephemeral_5m_input_tokens"
ANTHROPIC_ITEMS = (  # description, model, token_type, share
    ("Claude Sonnet 4.5 Usage - Input Tokens", "claude-sonnet-4-5", "uncached_input_tokens", 0.25),
    ("Claude Sonnet 4.5 Usage - Output Tokens", "claude-sonnet-4-5", "output_tokens", 0.35),
    ("Claude Sonnet 4.5 Usage - Cache Read", "claude-sonnet-4-5", "cache_read_input_tokens", 0.08),
    ("Claude Sonnet 4.5 Usage - Cache Write (5m)", "claude-sonnet-4-5", CACHE_WRITE, 0.12),
    ("Claude Haiku 4.5 Usage - Input Tokens", "claude-haiku-4-5", "uncached_input_tokens", 0.08),
    ("Claude Haiku 4.5 Usage - Output Tokens", "claude-haiku-4-5", "output_tokens", 0.12),
)
DAILY = "daily"  # the cursor key of the pre-rendered one-day pages
UNMAPPED_SHARE = 0.02  # projects and workspaces no org_mapping rule names (their spend is unallocated)


@dataclass
class Organisation:
    """The synthetic organisation at a scale and its answers, rendered in the providers' wire formats."""

    scale: float
    first: date
    teams: int = 0
    people: int = 0
    seats: int = 0  # GitHub Copilot seats, one per person
    accounts: int = 0  # AWS linked accounts
    projects: list[str] = field(default_factory=list)
    workspaces: list[str] = field(default_factory=list)
    # (path, cursor) -> body; Cost Explorer's: (operation, first day, SERVICE, LINKED_ACCOUNT, NextPageToken)
    pages: dict[tuple[str, ...], bytes] = field(default_factory=dict)
    links: dict[tuple[str, ...], str] = field(default_factory=dict)  # the `Link` header of a page that has one
    mapping: list[str] = field(default_factory=list)  # org_mapping.csv rows of the sources rendered elsewhere
    expected_usd: dict[tuple[str, date], Decimal] = field(default_factory=dict)  # exact, per provider-day
    lines: dict[str, int] = field(default_factory=dict)
    ce_minimum: int = 0  # Cost Explorer requests a year at CE_PAGE groups a page

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(DAYS)]


def build_organisation(scale: float, first: date, seed: int = 17) -> Organisation:
    rng = np.random.default_rng(seed)
    people = max(10, round(5000 * scale))
    teams = accounts = max(3, round(300 * scale))
    org = Organisation(scale, first, teams=teams, people=people, seats=people, accounts=accounts)
    count = max(2, round(2000 * scale))
    org.projects = [f"proj_{i:05d}" for i in range(count)]
    org.workspaces = [f"wrkspc_{i:05d}" for i in range(count)]
    level = rng.lognormal(np.log(40.0), 1.0, count)  # dollars a weekday per project (and workspace)
    for provider, keys, items, render, page_size, path, render_usage, usage_path in (
        (
            "openai",
            org.projects,
            OPENAI_ITEMS,
            _openai_bucket,
            OPENAI_PAGE,
            OPENAI_PATH,
            _openai_usage,
            OPENAI_USAGE_PATH,
        ),
        (
            "anthropic",
            org.workspaces,
            ANTHROPIC_ITEMS,
            _anthropic_bucket,
            ANTHROPIC_PAGE,
            ANTHROPIC_PATH,
            _anthropic_usage,
            ANTHROPIC_USAGE_PATH,
        ),
    ):
        shares = np.array([item[-1] for item in items])
        buckets, usage = [], []
        for n, day in enumerate(org.days):
            weekday = 1.0 if day.weekday() < 5 else 0.4
            growth = 1.0 + 0.5 * n / DAYS
            micro = np.maximum(
                1, (np.outer(level, shares) * weekday * growth * rng.lognormal(0, 0.3, (count, len(items))) * 1e6)
            ).astype(np.int64)
            org.expected_usd[(provider, day)] = Decimal(int(micro.sum())).scaleb(-6)
            buckets.append(render(day, keys, items, micro))
            usage.append(render_usage(day, keys, micro))
        org.lines[provider] = count * len(items) * DAYS
        _paginate(org.pages, path, buckets, page_size, provider == "openai")
        _paginate(org.pages, usage_path, usage, USAGE_PAGE, provider == "openai")
        # The daily run's answer: the last day alone (served when a request starts on that day).
        _paginate(org.pages, path, buckets[-1:], page_size, provider == "openai", DAILY)
        _paginate(org.pages, usage_path, usage[-1:], USAGE_PAGE, provider == "openai", DAILY)
    more.render_copilot(org, rng)
    more.render_aws(org, rng)
    return org


def _openai_bucket(day: date, projects: list[str], items: tuple, micro: np.ndarray) -> str:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    results = []
    for p, project in enumerate(projects):
        for i, (item, _) in enumerate(items):
            m = int(micro[p, i])
            value = f"{m // 1_000_000}.{m % 1_000_000:06d}"
            if m % 4 == 0:  # about a quarter as JSON strings, as the live API does
                value = f'"{value}"'
            results.append(
                f'{{"object":"organization.costs.result","amount":{{"value":{value},"currency":"usd"}},'
                f'"line_item":"{item}","project_id":"{project}","quantity":{m // 3 + 1}.0,"quantity_unit":"tokens",'
                '"user_id":null,"api_key_id":null,"api_source":null}'
            )
    return f'{{"object":"bucket","start_time":{start},"end_time":{start + 86400},"results":[{",".join(results)}]}}'


def _openai_usage(day: date, projects: list[str], micro: np.ndarray) -> str:
    """Completions tokens per project and model (three models), sized by the day's cost."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    results = []
    for p, project in enumerate(projects):
        for m, model in enumerate(("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "text-embedding-3-small")):
            tokens = int(micro[p, 2 * m]) // 2 + 1
            results.append(
                f'{{"object":"organization.usage.completions.result","input_tokens":{tokens},'
                f'"output_tokens":{tokens // 3},"input_cached_tokens":{tokens // 5},"input_audio_tokens":0,'
                f'"output_audio_tokens":0,"num_model_requests":{tokens // 900 + 1},"project_id":"{project}",'
                f'"user_id":null,"api_key_id":null,"model":"{model}","batch":null}}'
            )
    return f'{{"object":"bucket","start_time":{start},"end_time":{start + 86400},"results":[{",".join(results)}]}}'


def _anthropic_usage(day: date, workspaces: list[str], micro: np.ndarray) -> str:
    """Message tokens per workspace and model (two models), sized by the day's cost."""
    results = []
    for w, workspace in enumerate(workspaces):
        for m, model in enumerate(("claude-sonnet-4-5", "claude-haiku-4-5")):
            tokens = int(micro[w, 4 * m]) // 3 + 1
            results.append(
                f'{{"uncached_input_tokens":{tokens},"cache_creation":{{"ephemeral_1h_input_tokens":0,'
                f'"ephemeral_5m_input_tokens":{tokens // 7}}},"cache_read_input_tokens":{tokens // 4},'
                f'"output_tokens":{tokens // 3},"server_tool_use":{{"web_search_requests":0}},'
                f'"api_key_id":null,"workspace_id":"{workspace}","model":"{model}","service_tier":"standard",'
                f'"context_window":"0-200k"}}'
            )
    nxt = day + timedelta(days=1)
    return f'{{"starting_at":"{day}T00:00:00Z","ending_at":"{nxt}T00:00:00Z","results":[{",".join(results)}]}}'


def _anthropic_bucket(day: date, workspaces: list[str], items: tuple, micro: np.ndarray) -> str:
    results = []
    for w, workspace in enumerate(workspaces):
        for i, (description, model, token_type, _) in enumerate(items):
            m = int(micro[w, i])  # micro-dollars = 1e-4 cents
            results.append(
                f'{{"currency":"USD","amount":"{m // 10_000}.{m % 10_000:04d}","workspace_id":"{workspace}",'
                f'"description":"{description}","cost_type":"tokens","model":"{model}","service_tier":"standard",'
                f'"token_type":"{token_type}","context_window":"0-200k"}}'
            )
    nxt = day + timedelta(days=1)
    return f'{{"starting_at":"{day}T00:00:00Z","ending_at":"{nxt}T00:00:00Z","results":[{",".join(results)}]}}'


def _paginate(pages: dict, path: str, buckets: list[str], size: int, openai: bool, first_cursor: str = "") -> None:
    chunks = [buckets[i : i + size] for i in range(0, len(buckets), size)]
    for n, chunk in enumerate(chunks):
        more = n + 1 < len(chunks)
        nxt = f'"page_{n + 1:04d}"' if more else "null"
        head = '{"object":"page",' if openai else "{"
        body = f'{head}"data":[{",".join(chunk)}],"has_more":{"true" if more else "false"},"next_page":{nxt}}}'
        pages[(path, first_cursor if n == 0 else f"page_{n:04d}")] = body.encode()


class PageServer(ThreadingHTTPServer):
    """Serves pre-rendered pages by (path, cursor), Cost Explorer's by its request key (`POST /`); checks the
    credential; counts requests per path (per operation for Cost Explorer) and the CPU seconds its threads
    spend answering (on 2 cores, time the pipeline did not have: the target excludes simulator time)."""

    daemon_threads = True

    def __init__(self, pages: dict[tuple[str, ...], bytes], links: dict[tuple[str, ...], str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages = pages
        self.links = {key: link.replace(more.BASE_URL, self.url) for key, link in links.items()}
        self.daily_day: date | None = None  # a request starting on this day gets the one-day page
        self.daily_start = 0
        self.requests: dict[str, int] = {}
        self.cpu_seconds = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, what: str) -> None:
        with self.lock:
            self.requests[what] = self.requests.get(what, 0) + 1

    def add_cpu(self, seconds: float) -> None:
        with self.lock:
            self.cpu_seconds += seconds


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waited for the client's
    # delayed ACK of the headers, 40 ms a request on a kept-alive connection (35 s of the Cost Explorer
    # pull's 801 requests were the simulator's stalls, not the pipeline's time).
    disable_nagle_algorithm = True

    def handle(self) -> None:
        """Every request of one connection, in this thread: its CPU time is the simulator's."""
        started = time.thread_time()
        try:
            super().handle()
        finally:
            self.server.add_cpu(time.thread_time() - started)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        server: PageServer = self.server  # type: ignore[assignment]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        cursor = (query.get("page") or [""])[0]
        starts = (query.get("start_time") or query.get("starting_at") or [""])[0]
        if not cursor and starts in (str(server.daily_start), f"{server.daily_day}T00:00:00Z"):
            cursor = DAILY
        server.count(parts.path)
        if parts.path.startswith(("/orgs/", "/organizations/")):
            authorised = self.headers.get("Authorization") == f"Bearer {more.GITHUB_TOKEN}" and (
                self.headers.get("X-GitHub-Api-Version") == more.GITHUB_API_VERSION
            )
        else:
            authorised = self.headers.get("Authorization") == f"Bearer {OPENAI_KEY}" or (
                self.headers.get("x-api-key") == ANTHROPIC_KEY
            )
        key = (parts.path, cursor)
        body = server.pages.get(key) if authorised else None
        status = 200 if body is not None else (404 if authorised else 401)
        link = server.links.get(key) if body is not None else None
        self.answer(status, body or b'{"error":{"message":"not found or unauthorised"}}', "application/json", link)

    def do_POST(self) -> None:
        """Cost Explorer (awsJson1.1): the operation from `X-Amz-Target`, the answer by the request's key."""
        server: PageServer = self.server  # type: ignore[assignment]
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        operation = (self.headers.get("X-Amz-Target") or "").removeprefix(more.CE_TARGET)
        server.count(operation)
        if not more.ce_authorised(self.headers.get("Authorization")):
            status, body = 400, b'{"__type":"UnrecognizedClientException","message":"The security token is invalid"}'
        else:
            body = server.pages.get(more.ce_request_key(operation, request))
            status, body = (200, body) if body else (400, b'{"__type":"ValidationException","message":"not rendered"}')
        self.answer(status, body, "application/x-amz-json-1.1")

    def answer(self, status: int, body: bytes, content_type: str, link: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def write_seeds(org: Organisation, folder: Path) -> None:
    """org_mapping.csv naming a team for all but ~2% of projects and workspaces; no manual invoices."""
    folder.mkdir(parents=True)
    rows = ["provider,dimension,value,team,cost_centre,product,valid_from,valid_to"]
    for provider, dimension, keys in (
        ("openai", "project_id", org.projects),
        ("anthropic", "workspace_id", org.workspaces),
    ):
        mapped = keys[: max(1, round(len(keys) * (1 - UNMAPPED_SHARE)))]
        rows += [
            f"{provider},{dimension},{key},team-{i % org.teams:03d},CC-{i % org.teams:03d},Product {i % 50},,"
            for i, key in enumerate(mapped)
        ]
    rows += org.mapping
    (folder / "org_mapping.csv").write_text("\n".join(rows) + "\n")
    shutil.copyfile(REPO / "seeds" / "fx_rates.csv", folder / "fx_rates.csv")
    header = (REPO / "seeds" / "manual_invoices.csv").read_text().splitlines()[0]
    (folder / "manual_invoices.csv").write_text(header + "\n")


SAMPLE_SECONDS = 0.25  # the memory sampler's period: every 50 ms it took ~18 % of a core (one sample of a
# 1.9 GB process tree reads every mapping of every process, ~14 ms per 0.7 GB), slowing what it measured


def run_materialize(env: dict[str, str], first: date, last: date, cwd: Path) -> tuple[float, int, float, str]:
    """(wall seconds, peak memory bytes, the sampler's own CPU seconds, what held the peak) of one `aispend
    materialize` process and the pull workers it starts: the larger of its own peak RSS and the peak of the
    process tree's sampled PSS (shared pages counted once)."""
    command = [AISPEND, "materialize", "--start", str(first), "--end", str(last)]
    started, sampler_began = time.perf_counter(), time.thread_time()
    tree_peak, tree_held, own_peak = 0, "", 0
    with open(cwd / "materialize.log", "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            own_peak = max(own_peak, _high_water_mark(process.pid))
            by_process = _tree_pss(process.pid)
            if sum(by_process.values()) > tree_peak:
                tree_peak = sum(by_process.values())
                shares = ", ".join(f"{name} {size / 1e9:.2f}" for name, size in sorted(by_process.items()))
                tree_held = f"tree PSS at {time.perf_counter() - started:.0f} s: {shares} GB"
            time.sleep(SAMPLE_SECONDS)
    wall, sampler_cpu = time.perf_counter() - started, time.thread_time() - sampler_began
    if process.returncode != 0:
        sys.exit(f"materialize failed:\n{(cwd / 'materialize.log').read_text()[-3000:]}")
    if own_peak >= tree_peak:
        return wall, own_peak, sampler_cpu, "the run process's own peak RSS"
    return wall, tree_peak, sampler_cpu, tree_held


def _high_water_mark(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, bytes). Not `wait4`'s ru_maxrss: that also counts the pages the
    child shared with this process (hundreds of MB of pre-rendered answers) before it exec'd."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _tree_pss(pid: int) -> dict[str, int]:
    """The proportional set size of the process and its descendants now, by process name (bytes; workers are
    named pull-<source>): a pull worker forked from the forkserver shares its imported modules' pages, which
    RSS would count once per process."""
    sizes: dict[str, int] = defaultdict(int)
    pending = [pid]
    while pending:
        current = pending.pop()
        try:  # a process's children are listed per thread: pull workers are started from pull threads
            children = [
                c for task in Path(f"/proc/{current}/task").iterdir() for c in (task / "children").read_text().split()
            ]
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
            name = Path(f"/proc/{current}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
        pending += [int(child) for child in children]
        sizes[name] += next((int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:")), 0)
    return sizes


def run_timings(dagster_home: Path, backfill: bool) -> dict[str, float]:
    """The backfill's (or the daily run's) "run seconds" log line, read from the instance's event log."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    from aispend_pipeline.defs.run import TIMINGS_PREFIX

    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=2)[1 if backfill else 0]  # newest first: the daily run, then the backfill
        for entry in instance.all_logs(run.run_id):
            if entry.user_message.startswith(TIMINGS_PREFIX):
                return json.loads(entry.user_message.removeprefix(TIMINGS_PREFIX))
    raise SystemExit("the run logged no timings")


def floor_seconds(database: Path, seeds: Path, first: date, after: date) -> tuple[float, bool]:
    """The transforms by hand-written DuckDB SQL over the run's raw rows; True when the tables match."""
    from aispend_pipeline.sources.anthropic.source import NORMALISE_SQL as ANTHROPIC_SQL
    from aispend_pipeline.sources.aws.source import NORMALISE_SQL as AWS_SQL
    from aispend_pipeline.sources.github_copilot.source import NORMALISE_SQL as COPILOT_SQL
    from aispend_pipeline.sources.openai.source import NORMALISE_SQL as OPENAI_SQL

    copy = database.with_name("floor.duckdb")
    shutil.copyfile(database, copy)
    con = duckdb.connect(str(copy))
    params = {"start": first, "end": after}
    started = time.perf_counter()
    sources = (OPENAI_SQL, ANTHROPIC_SQL, COPILOT_SQL, AWS_SQL)
    union = " UNION ALL BY NAME ".join(f"({sql})" for sql in sources)
    # Line ids stored as the pipeline stores them: UUIDs (writing their hex text would cost the floor more).
    con.execute(f"CREATE TABLE f_li AS SELECT * REPLACE (CAST(line_id AS UUID) AS line_id) FROM ({union})", params)
    con.execute(f"CREATE TABLE f_map AS SELECT * FROM read_csv('{seeds / 'org_mapping.csv'}', all_varchar = true)")
    # A line's most specific rule first (a Copilot user, an AWS tag, a project or workspace), else its
    # Copilot team's or AWS account's rule: one equi-join each.
    con.execute(
        """CREATE TABLE f_cli AS
        SELECT l.*, coalesce(m1.team, m2.team, 'unallocated') AS team,
               if(m1.team IS NULL, m2.cost_centre, m1.cost_centre) AS cost_centre,
               if(m1.team IS NULL, m2.product, m1.product) AS product
        FROM f_li l
        LEFT JOIN f_map m1 ON m1.provider = l.provider
          AND m1.dimension = CASE l.provider WHEN 'openai' THEN 'project_id' WHEN 'anthropic' THEN 'workspace_id'
                                             WHEN 'github_copilot' THEN 'user' WHEN 'aws' THEN 'tag' END
          AND m1.value = coalesce(l.project_id, l.workspace_id, l.user_name, l.team_tag)
        LEFT JOIN f_map m2 ON m2.provider = l.provider
          AND m2.dimension = CASE l.provider WHEN 'github_copilot' THEN 'github_team' WHEN 'aws' THEN 'account_id' END
          AND m2.value = coalesce(l.github_team, l.account_id)"""
    )
    con.execute(
        """CREATE TABLE f_tds AS
        SELECT usage_date, team, provider, sum(cost_usd) AS cost_usd, count(*) AS line_count
        FROM f_cli GROUP BY ALL"""
    )
    seconds = time.perf_counter() - started
    same = con.execute(
        """SELECT (SELECT count(*) FROM f_li) = (SELECT count(*) FROM staging.line_items)
           AND (SELECT count(*) FROM f_cli) = (SELECT count(*) FROM main.cost_line_items)
           AND (SELECT count(*) FROM (SELECT line_id, team FROM f_cli
                                      EXCEPT SELECT cost_line_id, team FROM main.cost_line_items)) = 0
           AND (SELECT count(*) FROM (SELECT usage_date, team, provider, cost_usd, line_count FROM f_tds
                EXCEPT SELECT usage_date, team, provider, cost_usd, line_count FROM main.team_daily_spend)) = 0"""
    ).fetchone()[0]
    con.close()
    copy.unlink()
    return seconds, bool(same)


def reconciled(database: Path, org: Organisation) -> bool:
    con = duckdb.connect(str(database), read_only=True)
    stored = {
        (p, d): t
        for p, d, t in con.execute(
            "SELECT provider, usage_date, sum(cost_usd) FROM main.cost_line_items GROUP BY 1, 2"
        ).fetchall()
    }
    con.close()
    return stored == org.expected_usd


def measure(scale: float, workdir: Path, stock_event_log: bool = False) -> dict[str, object]:
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    began = time.perf_counter()
    org = build_organisation(scale, first)
    render_seconds = time.perf_counter() - began
    folder = workdir / f"scale-{scale}"
    write_seeds(org, folder / "seeds")
    server = PageServer(org.pages, org.links)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_", "AZURE_", "GCP_", "GOOGLE_", "GITHUB_", "COPILOT_"))
        and not k.startswith(("OPENROUTER_", "AISPEND_", "DAGSTER_"))
    }
    database = folder / "aispend.duckdb"
    env |= {
        "OPENAI_ADMIN_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{server.url}/v1",
        "ANTHROPIC_ADMIN_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": server.url,
        "AISPEND_DUCKDB_PATH": str(database),
        "AISPEND_SEEDS_DIR": str(folder / "seeds"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
        **more.env(server.url),
    }
    if stock_event_log:  # the instance settings without the batched event log (what main had)
        from aispend_pipeline.instance import TEMPLATE

        (folder / "dagster_home").mkdir()
        settings = TEMPLATE.read_text().split("event_log_storage:")
        stock = settings[0] + "\n".join(settings[1].splitlines()[3:])
        (folder / "dagster_home" / "dagster.yaml").write_text(stock)
    server.daily_day, server.daily_start = last, int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp())
    try:
        wall, rss, sampler_cpu, peak_held = run_materialize(env, first, last, folder)
        time.sleep(0.5)  # the closed connections' threads add their CPU time
        simulator_cpu = server.cpu_seconds
        backfill_calls = dict(server.requests)
        daily_wall, daily_rss, _, _ = run_materialize(env, last, last, folder)  # the next morning's run: one day
        daily_calls = {k: n - backfill_calls.get(k, 0) for k, n in server.requests.items()}
    finally:
        server.shutdown()
        server.server_close()
    timings = run_timings(folder / "dagster_home", backfill=True)
    daily_timings = run_timings(folder / "dagster_home", backfill=False)
    floor, same = floor_seconds(database, folder / "seeds", first, last + timedelta(days=1))
    transforms = timings["line_items"] + timings["cost_line_items"] + timings["team_daily_spend"]
    minimum = {  # what is counted (paths, or Cost Explorer's operations), and the fewest requests possible
        "openai": ((OPENAI_PATH,), math.ceil(DAYS / OPENAI_PAGE)),
        "anthropic": ((ANTHROPIC_PATH,), math.ceil(DAYS / ANTHROPIC_PAGE)),
        "openai usage": ((OPENAI_USAGE_PATH,), math.ceil(DAYS / USAGE_PAGE)),
        "anthropic usage": ((ANTHROPIC_USAGE_PATH,), math.ceil(DAYS / USAGE_PAGE)),
        **more.call_minimum(org),
    }
    return {
        "scale": scale,
        "event_log": "stock" if stock_event_log else "batched",
        "org": f"{org.people} people, {org.teams} teams, {len(org.projects)} projects, "
        f"{len(org.workspaces)} workspaces, {org.seats} Copilot seats, {org.accounts} AWS accounts",
        "lines": sum(org.lines.values()),
        "lines_by_source": org.lines,
        "page_mb": sum(len(b) for b in org.pages.values()) / 1e6,
        "render_s": render_seconds,
        "wall_s": wall,
        "simulator_cpu_s": simulator_cpu,
        "sampler_cpu_s": sampler_cpu,
        "wall_without_simulator_s": wall - simulator_cpu,
        "rss_gb": rss / 1e9,
        "peak_held_by": peak_held,
        "timings": timings,
        "daily_wall_s": daily_wall,
        "daily_rss_gb": daily_rss / 1e9,
        "daily_timings": daily_timings,
        "daily_bookkeeping_s": daily_wall - daily_timings["total"],
        "bookkeeping_s": wall - timings["total"],
        "floor_s": floor,
        "floor_matches": same,
        "transforms_s": transforms,
        "floor_ratio": transforms / floor if floor else float("nan"),
        "calls": {
            name: f"{sum(backfill_calls.get(p, 0) for p in counted)} (min {least})"
            for name, (counted, least) in minimum.items()
        },
        "daily_calls": {name: sum(daily_calls.get(p, 0) for p in counted) for name, (counted, _) in minimum.items()},
        "exact": reconciled(database, org),
    }


LAYERS = (
    ("fetch openai", "fetch:openai"),
    ("fetch anthropic", "fetch:anthropic"),
    ("fetch github_copilot", "fetch:github_copilot"),
    ("fetch aws", "fetch:aws"),
    ("raw validate openai", "validate_raw:openai"),
    ("raw validate anthropic", "validate_raw:anthropic"),
    ("raw validate github_copilot", "validate_raw:github_copilot"),
    ("raw validate aws", "validate_raw:aws"),
    ("pull (all sources, concurrent)", "pull"),
    ("store raw", "store_raw"),
    ("normalise+validate", "line_items"),
    ("allocate", "cost_line_items"),
    ("rollup", "team_daily_spend"),
    ("focus view + inventory", ("focus_view", "source_inventory")),
    ("anomalies", "anomalies"),
    ("report", "report"),
    ("publish/copy", "publish"),
    ("step total", "total"),
)


def layer(timings: dict[str, float], key: str | tuple[str, ...]) -> float:
    return sum(timings.get(k, 0.0) for k in ((key,) if isinstance(key, str) else key))


def _slowest(timings: dict[str, float], count: int = 3) -> str:
    layers = {k: v for k, v in timings.items() if k != "total" and ":" not in k}
    return ", ".join(f"{k} {v:.1f} s" for k, v in sorted(layers.items(), key=lambda kv: -kv[1])[:count])


def print_table(results: list[dict]) -> None:
    print("\n| measure | " + " | ".join(f"1/{round(1 / r['scale'])}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))

    def row(name: str, values: list[str]) -> None:
        print(f"| {name} | " + " | ".join(values) + " |")

    row("Dagster event log", [str(r["event_log"]) for r in results])
    row("organisation", [str(r["org"]) for r in results])
    row("line items / year", [f"{r['lines'] / 1e6:.2f} M" for r in results])
    for name in results[0]["lines_by_source"]:
        row(f"- {name}", [f"{r['lines_by_source'].get(name, 0) / 1e6:.3f} M" for r in results])
    row("pre-rendered pages (not timed)", [f"{r['page_mb']:.0f} MB in {r['render_s']:.0f} s" for r in results])
    row("**wall time**", [f"**{r['wall_s']:.1f} s**" for r in results])
    row("simulator CPU in it (answering requests)", [f"{r['simulator_cpu_s']:.1f} s" for r in results])
    row("memory sampler CPU in it (not subtracted)", [f"{r.get('sampler_cpu_s', 0):.1f} s" for r in results])
    row("**wall time without the simulator's CPU**", [f"**{r['wall_without_simulator_s']:.1f} s**" for r in results])
    for name, key in LAYERS:
        row(name, [f"{layer(r['timings'], key):.2f} s" for r in results])
    row("Dagster bookkeeping (wall - step)", [f"{r['bookkeeping_s']:.1f} s" for r in results])
    row("**peak memory** (RSS, or the tree's PSS with workers)", [f"**{r['rss_gb']:.2f} GB**" for r in results])
    row("peak memory held by", [str(r.get("peak_held_by", "-")) for r in results])
    row("**daily run (one day, after the year)**", [f"**{r['daily_wall_s']:.1f} s**" for r in results])
    row("daily run peak RSS", [f"{r['daily_rss_gb']:.2f} GB" for r in results])
    row(
        "daily run: step / Dagster bookkeeping",
        [f"{r['daily_timings']['total']:.1f} / {r['daily_bookkeeping_s']:.1f} s" for r in results],
    )
    row("daily run: its three slowest layers", [_slowest(r["daily_timings"]) for r in results])
    row("daily run API calls", [", ".join(f"{k} {n}" for k, n in r["daily_calls"].items()) for r in results])
    row("transforms (normalise+allocate+rollup)", [f"{r['transforms_s']:.2f} s" for r in results])
    row("DuckDB floor (same tables, matched)", [f"{r['floor_s']:.2f} s ({r['floor_matches']})" for r in results])
    row("**floor ratio**", [f"**{r['floor_ratio']:.1f}x**" for r in results])
    for name in results[0]["calls"]:
        row(f"API calls {name}", [r["calls"].get(name, "-") for r in results])
    row("provider-day totals exact", ["yes" if r["exact"] else "NO" for r in results])
    slow = [max(LAYERS[:-1], key=lambda item: layer(r["timings"], item[1]))[0] for r in results]
    row("slowest layer (besides Dagster)", slow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", choices=(0.01, 0.1, 0.33, 1.0))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--stock-event-log", action="store_true", help="Dagster's stock SQLite event log (one commit per event)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (database, Dagster instance)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aispend-scale-"))
    results = []
    try:
        for scale in args.scale or [0.01]:
            print(f"scale {scale}: rendering and running ...", flush=True)
            results.append(measure(scale, workdir, args.stock_event_log))
            print(json.dumps(results[-1], default=str), flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, default=str, indent=1))


if __name__ == "__main__":
    main()
