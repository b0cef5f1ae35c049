"""A W&B-compatible GraphQL test server for the real wandb SDK, on 127.0.0.1.

No W&B server can run on these machines, so the tests point ``WANDB_BASE_URL`` here. The
schema holds exactly the operations the pinned SDK sends (wandb 0.31); graphql-core
validates every query against it, so an SDK upgrade that changes its queries fails the
tests loudly instead of passing silently. Every request is logged for request budgets.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from graphql import build_schema, graphql_sync

SDL = """
scalar JSONString
scalar DateTime
scalar JSON

type Query {
  viewer: User
  project(name: String, entityName: String): Project
  serverInfo: ServerInfo
}

type ServerInfo { features: [ServerFeature!]! }
type ServerFeature { name: String!, isEnabled: Boolean! }

type Mutation {
  upsertBucket(input: UpsertBucketInput!): UpsertBucketPayload
  createRunFiles(input: CreateRunFilesInput!): CreateRunFilesPayload
}

input CreateRunFilesInput { entityName: String!, projectName: String!, runName: String!, files: [String!]! }
type CreateRunFilesPayload { runID: ID!, uploadHeaders: [String!]!, files: [RunFile!]! }
type RunFile { name: String!, uploadUrl: String }

input UpsertBucketInput {
  id: String
  description: String
  displayName: String
  notes: String
  tags: [String!]
  config: JSONString
  groupName: String
  jobType: String
  summaryMetrics: JSONString
}

type UpsertBucketPayload { bucket: Run }

type User {
  id: ID!
  entity: String
  username: String
  email: String
  flags: JSONString
  name: String
  teams: EntityConnection
}

type EntityConnection { edges: [EntityEdge!]! }
type EntityEdge { node: Entity }
type Entity { name: String! }

type Project {
  id: ID!
  internalId: ID!
  name: String!
  readOnly: Boolean
  runCount(filters: JSONString): Int!
  runs(filters: JSONString, after: String, first: Int, order: String): RunConnection
  run(name: String!): Run
}

type RunConnection { edges: [RunEdge!]!, pageInfo: PageInfo! }
type RunEdge { node: Run, cursor: String! }
type PageInfo { endCursor: String, hasNextPage: Boolean! }

type Run {
  id: ID!
  projectId: ID!
  name: String!
  displayName: String
  tags: [String!]!
  sweepName: String
  state: String
  config: JSONString
  group: String
  jobType: String
  commit: String
  readOnly: Boolean
  createdAt: DateTime
  heartbeatAt: DateTime
  description: String
  notes: String
  systemMetrics: JSONString
  summaryMetrics: JSONString
  historyLineCount: Int
  historyKeys: JSONString
  user: User
  sampledHistory(specs: [JSONString!]!, packVersion: Int): [JSON]
  fileCount: Int
  files(names: [String], after: String, first: Int, pattern: String): FileConnection
}

type FileConnection { edges: [FileEdge!]!, pageInfo: PageInfo! }
type FileEdge { node: File, cursor: String! }
type File {
  id: ID!
  name: String!
  url(upload: Boolean): String
  directUrl: String
  sizeBytes: Int
  mimetype: String
  updatedAt: DateTime
  md5: String
}
"""


@dataclass
class StoredRun:
    name: str
    display_name: str = ""
    state: str = "finished"
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # rows as logged: {key: value, "_step": n}
    files: dict[str, bytes] = field(default_factory=dict)  # uploaded files by name
    created_at: str = "2026-11-01T00:00:00"
    heartbeat_at: str = "2026-11-01T01:00:00"


class WandbTestServer:
    """``with WandbTestServer() as srv: srv.url``; runs live in ``srv.runs[(entity, project)]``."""

    def __init__(self, entity: str = "ent"):
        self.entity = entity
        self.schema = build_schema(SDL)
        self.runs: dict[tuple[str, str], list[StoredRun]] = {}
        self.requests: list[dict] = []  # {"operation", "variables"}
        self.throttle: dict[str, int] = {}  # operation -> how many of its next requests get 429
        self.broken_runs: set[str] = set()  # runs whose history answers a GraphQL error
        self.api_key: str | None = None  # when set, any other key is answered 401
        self.delay: dict[str, float] = {}  # operation ("*": any) -> seconds each of its requests takes
        self.in_flight: dict[str, int] = {}  # operation -> requests being answered now
        self.max_in_flight: dict[str, int] = {}  # operation -> most answered at once
        self.lock = threading.Lock()
        self._httpd = None

    # -- resolvers: plain dicts, graphql-core's default resolver reads keys -------------------

    def _run_dict(self, project: str, r: StoredRun) -> dict:
        return {"id": f"run-{r.name}", "projectId": "1", "name": r.name,
                "displayName": r.display_name or r.name, "tags": list(r.tags), "sweepName": None,
                "state": r.state, "config": json.dumps({k: {"value": v} for k, v in r.config.items()}),
                "group": None, "jobType": None, "commit": None, "readOnly": False, "createdAt": r.created_at,
                "heartbeatAt": r.heartbeat_at, "description": r.notes, "notes": r.notes,
                "systemMetrics": "{}", "summaryMetrics": json.dumps(r.summary),
                "historyLineCount": len(r.history),
                "historyKeys": json.dumps({"lastStep": max((h.get("_step", -1) for h in r.history), default=-1),
                                           "keys": _history_keys(r.history)}),
                "user": {"id": "u1", "name": "me", "username": "me"},
                "sampledHistory": lambda _info, specs, packVersion=None: [self._sampled(r, json.loads(x))
                                                                          for x in specs],
                "fileCount": len(r.files), "files": lambda _info, names=None, **_page: self._files(r, names)}

    def _files(self, run: StoredRun, names) -> dict:
        chosen = [n for n in run.files if not names or n in names]
        return {"edges": [{"node": {"id": f"file-{n}", "name": n, "url": f"{self.url}/files/{run.name}/{n}",
                                    "directUrl": f"{self.url}/files/{run.name}/{n}", "sizeBytes": len(run.files[n]),
                                    "mimetype": "application/octet-stream", "updatedAt": _now(), "md5": ""},
                           "cursor": n} for n in chosen],
                "pageInfo": {"endCursor": chosen[-1] if chosen else None, "hasNextPage": False}}

    def _sampled(self, run: StoredRun, spec: dict) -> list[dict]:
        """W&B's semantics: only rows holding every requested key, sampled down evenly."""
        if run.name in self.broken_runs:
            raise ValueError(f"history of {run.name} is unavailable")
        keys = spec.get("keys", [])
        rows = [{k: row[k] for k in keys} for row in run.history if all(k in row for k in keys)]
        n = int(spec.get("samples", 500))
        if len(rows) > n:
            step = len(rows) / n
            rows = [rows[int(i * step)] for i in range(n)]
        return rows

    def _project(self, name: str, entity: str) -> dict | None:
        runs = self.runs.get((entity, name))
        if runs is None:
            return None

        def page(_info=None, filters=None, after=None, first=50, order=None):
            start = int(after) if after else 0
            chunk = runs[start:start + (first or 50)]
            edges = [{"node": self._run_dict(name, r), "cursor": str(start + i + 1)} for i, r in enumerate(chunk)]
            end = start + len(chunk)
            return {"edges": edges, "pageInfo": {"endCursor": str(end) if chunk else after,
                                                  "hasNextPage": end < len(runs)}}

        def one(_info, name=None):
            found = next((r for r in runs if r.name == name), None)
            return self._run_dict(project_name, found) if found else None

        project_name = name
        return {"id": f"proj-{name}", "internalId": "1", "name": name, "readOnly": False,
                "runCount": lambda _info, filters=None: len(runs), "runs": page, "run": one}

    def _upsert(self, _info, input):
        """Whole values replace whole values, as on W&B: tags, notes, summary."""
        for (_, project), runs in self.runs.items():
            for r in runs:
                if f"run-{r.name}" == input.get("id"):
                    if input.get("tags") is not None:
                        if any(len(t) > 64 for t in input["tags"]):
                            raise ValueError("tags must be at most 64 characters")
                        r.tags = list(input["tags"])
                    if input.get("notes") is not None:
                        r.notes = input["notes"]
                    if input.get("summaryMetrics") is not None:
                        r.summary = json.loads(input["summaryMetrics"])
                    r.heartbeat_at = _now()  # assume the worst: a write moves the heartbeat
                    return {"bucket": self._run_dict(project, r)}
        raise ValueError(f"no run with id {input.get('id')!r}")

    def _create_run_files(self, _info, input):
        """Upload URLs on this server (PUT /upload/ENTITY/PROJECT/RUN/NAME)."""
        runs = self.runs.get((input["entityName"], input["projectName"]), [])
        if not any(r.name == input["runName"] for r in runs):
            raise ValueError(f"no run {input['runName']!r}")
        base = f"/upload/{input['entityName']}/{input['projectName']}/{input['runName']}"
        return {"runID": f"run-{input['runName']}", "uploadHeaders": ["Content-Type:application/octet-stream"],
                "files": [{"name": f, "uploadUrl": f"{self.url}{base}/{f}"} for f in input["files"]]}

    def execute(self, body: dict) -> dict:
        root = {"upsertBucket": self._upsert, "createRunFiles": self._create_run_files,"viewer": {"id": "u1", "entity": self.entity, "username": "me", "email": "me@example.com",
                           "flags": "{}", "name": "me", "teams": {"edges": []}},
                "project": lambda _info, name=None, entityName=None: self._project(name, entityName),
                "serverInfo": {"features": []}}  # no optional feature: the SDK takes its oldest paths
        result = graphql_sync(self.schema, body.get("query", ""), root_value=root,
                              variable_values=body.get("variables"), operation_name=body.get("operationName") or None)
        with self.lock:
            self.requests.append({"operation": body.get("operationName") or _first_field(body.get("query", "")),
                                  "variables": body.get("variables"),
                                  "errors": [e.message for e in result.errors or []]})
        out = {"data": result.data}
        if result.errors:
            out["errors"] = [{"message": e.message} for e in result.errors]
        return out

    # -- HTTP ----------------------------------------------------------------------------------

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if server.api_key is not None and not _authorised(self.headers.get("authorization"), server.api_key):
                    with server.lock:
                        server.requests.append({"operation": "(unauthorised)", "variables": None,
                                                "errors": ["401"], "status": 401})
                    payload = b'{"errors": [{"message": "invalid API key"}]}'
                    self.send_response(401)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                op = body.get("operationName") or _first_field(body.get("query", ""))
                with server.lock:
                    throttled = server.throttle.get(op, 0) > 0
                    if throttled:
                        server.throttle[op] -= 1
                        server.requests.append({"operation": op, "variables": body.get("variables"),
                                                "errors": ["429"], "status": 429})
                if throttled:
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with server.lock:
                    server.in_flight[op] = server.in_flight.get(op, 0) + 1
                    server.max_in_flight[op] = max(server.max_in_flight.get(op, 0), server.in_flight[op])
                try:
                    time.sleep(server.delay.get(op, server.delay.get("*", 0)))
                    answer = server.execute(body)
                    try:  # wandb-core cannot parse a bare NaN token: a test must not rely on one
                        payload = json.dumps(answer, allow_nan=False).encode()
                    except ValueError as exc:
                        payload = json.dumps({"data": None, "errors": [{"message": f"test server: {exc}"}]}).encode()
                finally:
                    with server.lock:
                        server.in_flight[op] -= 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_PUT(self):
                """A file upload to a URL that createRunFiles handed out."""
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                parts = self.path.split("/", 5)  # "", "upload", entity, project, run, name
                run = None
                if len(parts) == 6 and parts[1] == "upload":
                    run = next((r for r in server.runs.get((parts[2], parts[3]), []) if r.name == parts[4]), None)
                with server.lock:
                    server.requests.append({"operation": "(upload)", "variables": {"path": self.path},
                                            "errors": [] if run else ["404"]})
                    if run is not None:
                        run.files[parts[5]] = data
                self.send_response(200 if run else 404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


def _history_keys(history: list[dict]) -> dict:
    """W&B's per-key type counts: {key: {"typeCounts": [{"type": "number", "count": n}]}}."""
    counts: dict[str, dict[str, int]] = {}
    for row in history:
        for k, v in row.items():
            number = (isinstance(v, int | float) and not isinstance(v, bool)) or v in ("NaN", "Infinity", "-Infinity")
            kind = "number" if number else type(v).__name__
            counts.setdefault(k, {}).setdefault(kind, 0)
            counts[k][kind] += 1
    return {k: {"typeCounts": [{"type": t, "count": n} for t, n in c.items()]} for k, c in counts.items()}


def _authorised(header: str | None, key: str) -> bool:
    """W&B's HTTP basic auth: user "api", password the API key."""
    import base64

    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return user == "api" and password == key


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _first_field(query: str) -> str:
    """The operation's own name when the SDK sends no operationName."""
    from graphql import GraphQLError, OperationDefinitionNode, parse

    try:
        doc = parse(query)
    except GraphQLError:
        return "(unparsable)"
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    return ops[0].name.value if ops and ops[0].name else "(anonymous)"
