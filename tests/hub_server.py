"""A loopback stand-in for the Hugging Face Hub's UPLOAD API, for tests. It is not a Hub.

No installable program implements the Hub's upload API (FIELD-NOTES), so the tests run the real
huggingface_hub client over real HTTP against this server. It implements exactly the routes that
huggingface_hub 2.4 calls for ``create_repo``, ``create_branch``, ``list_repo_files``,
``repo_info`` and ``create_commit`` with ``HF_HUB_DISABLE_XET=1`` (the classic LFS protocol):

====== ================================================ ============================================
POST   /api/repos/create                                create a repo (409 if it exists); the
                                                        first commit holds ``.gitattributes``
GET    /api/{models|datasets}/{repo}[/revision/{rev}]   repo info (``sha``, ``siblings``)
GET    /api/{models|datasets}/{repo}/tree/{rev}         the files at a revision (recursive)
POST   /api/{models|datasets}/{repo}/branch/{branch}    create a branch at main's head (409 if any)
POST   /api/validate-yaml                               400 if the card's YAML header does not parse
POST   /api/{models|datasets}/{repo}/preupload/{rev}    upload mode per file (lfs by .gitattributes
                                                        or size > 10 MB), remote oid if present
POST   /[datasets/]{repo}.git/info/lfs/objects/batch    LFS batch: an upload URL per missing object
PUT    /lfs-upload/{models|datasets}/{repo}/{sha256}    the object; refused if its sha256 differs
POST   /api/{models|datasets}/{repo}/commit/{rev}       NDJSON commit, applied all at once or not at
                                                        all (every LFS object must have arrived)
====== ================================================ ============================================

It checks what the Hub checks on these routes: a bearer token it knows (401 otherwise; the 401
text quotes the presented token, so tests can check that clients redact it), write permission on
the namespace (403), existing revisions (404), LFS objects present before the commit that names
them (422). It records every request and every commit (a full snapshot of the files) so tests
can assert what arrived. ``fail(route, status)`` makes the next call of a route fail.
Not implemented: Xet, downloads (``/resolve``; olah serves those in the tests), git, pull request
merges, multipart LFS, ``.gitignore`` handling, rate limits.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
)
GITATTRIBUTES += b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_REPO = r"(?P<kind>models|datasets)/(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, name, pattern)
    ("POST", "create", r"/api/repos/create"),
    ("POST", "validate-yaml", r"/api/validate-yaml"),
    ("GET", "info", rf"/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?"),
    ("GET", "tree", rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/.*)?"),
    ("POST", "branch", rf"/api/{_REPO}/branch/(?P<rev>[^/]+)"),
    ("POST", "preupload", rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)"),
    ("POST", "commit", rf"/api/{_REPO}/commit/(?P<rev>[^/]+)"),
    ("POST", "lfs-batch", r"/(?P<prefix>datasets/)?(?P<repo>[\w.-]+/[\w.-]+)\.git/info/lfs/objects/batch"),
    ("PUT", "lfs-upload", rf"/lfs-upload/{_REPO}/(?P<oid>[0-9a-f]{{64}})"),
]


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]  # the whole tree after the commit
    parent: str | None
    pr: int | None = None


@dataclass
class Repo:
    kind: str  # "model" | "dataset"
    repo_id: str
    private: bool
    branches: dict[str, list[Commit]] = field(default_factory=dict)  # oldest first
    prs: list[Commit] = field(default_factory=list)
    lfs: dict[str, bytes] = field(default_factory=dict)  # LFS objects by sha256, per repository as on the Hub

    def head(self, rev: str) -> Commit | None:
        if rev in self.branches:
            return self.branches[rev][-1]
        if m := re.fullmatch(r"refs/pr/(\d+)", rev):
            n = int(m.group(1))
            return self.prs[n - 1] if 0 < n <= len(self.prs) else None
        return next((c for commits in self.branches.values() for c in commits if c.oid == rev), None)


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: str):
        super().__init__(message)
        self.status = status
        self.extra = extra  # more JSON fields of the answer


class HubServer:
    """The server. ``tokens`` maps each valid token to the namespaces it may write to.

    Example:
        >>> server = HubServer({"hf_test": {"org"}}).start()  # doctest: +SKIP
        >>> server.url, server.commits("model", "org/x")  # doctest: +SKIP
    """

    def __init__(self, tokens: dict[str, set[str]]):
        self.tokens = tokens
        self.lock = threading.Lock()
        self.reset()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.repos: dict[tuple[str, str], Repo] = {}
            self.requests: list[tuple[str, str, str]] = []  # (method, route name, path)
            self.failures: dict[str, list[int]] = {}
            self.interlopers: list[tuple[str, str, str, bytes]] = []  # (kind, repo_id, path, content)

    def start(self) -> HubServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, route: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``route`` (a name in ROUTES) with ``status``."""
        self.failures.setdefault(route, []).extend([status] * times)

    def commit_first(self, kind: str, repo_id: str, path: str, content: bytes) -> None:
        """Before the next commit request is applied, another writer's commit adding ``path`` lands
        on main (a push racing a concurrent one)."""
        self.interlopers.append((kind, repo_id, path, content))

    def commits(self, kind: str, repo_id: str, branch: str = "main") -> list[Commit]:
        repo = self.repos.get((kind, repo_id))
        return list(repo.branches.get(branch, [])) if repo else []

    def routes_called(self) -> list[str]:
        return [name for _, name, _ in self.requests]

    # ------------------------------------------------------------------ route handlers

    def _repo(self, kind: str, repo_id: str) -> Repo:
        repo = self.repos.get((kind.rstrip("s"), repo_id))
        if repo is None:
            raise HttpError(404, f"Repository {repo_id} not found")
        return repo

    def _commit_ref(self, repo: Repo, rev: str) -> Commit:
        commit = repo.head(unquote(rev))
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {unquote(rev)}")
        return commit

    def _check_write(self, token: str, repo_id: str) -> None:
        if repo_id.split("/")[0] not in self.tokens[token]:
            raise HttpError(403, f"You don't have the rights to write to {repo_id}")

    def handle(self, method: str, name: str, params: dict, query: dict, body: bytes, token: str, base: str):
        if name == "create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            self._check_write(token, repo_id)
            kind = payload.get("type") or "model"
            prefix = "" if kind == "model" else f"{kind}s/"
            if (kind, repo_id) in self.repos:  # the Hub's 409 carries the url; create_repo(exist_ok) reads it
                raise HttpError(409, "You already created this repo", url=f"{base}/{prefix}{repo_id}")
            initial = Commit(
                _oid("initial", repo_id), "initial commit", {".gitattributes": GITATTRIBUTES}, None
            )
            private = payload.get("visibility") == "private"
            self.repos[(kind, repo_id)] = Repo(kind, repo_id, private, {"main": [initial]})
            return 200, {"url": f"{base}/{prefix}{repo_id}", "name": repo_id}
        if name == "validate-yaml":
            content = json.loads(body)["content"]
            match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            try:
                metadata = yaml.safe_load(match.group(1)) if match else {}
            except yaml.YAMLError as error:
                return 400, {"errors": [{"message": f"YAML: {error}"}]}
            if not isinstance(metadata, dict):
                return 400, {"errors": [{"message": "metadata must be a mapping"}]}
            return 200, {"warnings": [] if metadata else [{"message": "empty or missing yaml metadata"}]}
        repo_id = params["repo"]
        repo = self._repo(
            "dataset" if params.get("prefix") or params.get("kind") == "datasets" else "model", repo_id
        )
        if name == "lfs-upload":
            if hashlib.sha256(body).hexdigest() != params["oid"]:
                raise HttpError(400, "content does not match its sha256")
            repo.lfs[params["oid"]] = body
            return 200, {}
        if name == "info":
            commit = self._commit_ref(repo, params.get("rev") or "main")
            siblings = [{"rfilename": path} for path in sorted(commit.files)]
            return 200, {"id": repo_id, "sha": commit.oid, "private": repo.private, "siblings": siblings}
        if name == "tree":
            return 200, _tree(self._commit_ref(repo, params["rev"]).files)
        self._check_write(token, repo_id)
        if name == "branch":
            branch = unquote(params["rev"])
            if branch in repo.branches:
                raise HttpError(409, f"Branch {branch} already exists")
            repo.branches[branch] = [repo.head("main")]
            return 200, {}
        if name == "preupload":
            files = self._commit_ref(repo, params["rev"]).files
            lfs_patterns = _lfs_patterns(files.get(".gitattributes", b""))
            answer = []
            for item in json.loads(body)["files"]:
                path = item["path"]
                lfs = item["size"] > LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(path, p) for p in lfs_patterns)
                remote = files.get(path)
                oid = (
                    None
                    if remote is None
                    else (hashlib.sha256(remote).hexdigest() if lfs else git_blob_oid(remote))
                )
                answer.append(
                    {
                        "path": path,
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": oid,
                    }
                )
            return 200, {"files": answer}
        if name == "lfs-batch":
            objects = []
            for obj in json.loads(body)["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in repo.lfs:
                    href = f"{base}/lfs-upload/{repo.kind}s/{repo.repo_id}/{obj['oid']}"
                    entry["actions"] = {"upload": {"href": href}}
                objects.append(entry)
            return 200, {"transfer": "basic", "objects": objects}
        if name == "commit":
            for kind, interloper_repo, path, content in self.interlopers:
                head = self.repos[(kind, interloper_repo)].head("main")
                commit = Commit(
                    _oid("concurrent", head.oid), "concurrent commit", {**head.files, path: content}, head.oid
                )
                self.repos[(kind, interloper_repo)].branches["main"].append(commit)
            self.interlopers.clear()
            return 200, self._commit(
                repo, unquote(params["rev"]), body, create_pr="create_pr" in query, base=base
            )
        raise HttpError(404, "no such route")

    def _commit(self, repo: Repo, rev: str, body: bytes, create_pr: bool, base: str) -> dict:
        parent = self._commit_ref(repo, rev)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HttpError(400, "the first NDJSON line must be the header")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            raise HttpError(412, "parent commit is not the head of the revision")
        files = dict(parent.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                content = repo.lfs.get(value["oid"])
                if content is None or len(content) != value["size"]:
                    raise HttpError(422, f"LFS object of {value['path']} was never uploaded")
                files[value["path"]] = content
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HttpError(404, f"A file with this name doesn't exist: {value['path']}")
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HttpError(400, f"unknown commit operation {key}")
        commit = Commit(
            _oid(header["summary"], repo.repo_id, parent.oid, *sorted(files)),
            header["summary"],
            files,
            parent.oid,
        )
        prefix = "" if repo.kind == "model" else f"{repo.kind}s/"
        answer = {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{base}/{prefix}{repo.repo_id}/commit/{commit.oid}",
        }
        if create_pr:
            repo.prs.append(commit)
            commit.pr = len(repo.prs)
            answer["pullRequestUrl"] = f"{base}/{prefix}{repo.repo_id}/discussions/{commit.pr}"
        else:
            repo.branches[rev].append(commit)
        return answer


def _oid(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def _lfs_patterns(gitattributes: bytes) -> list[str]:
    return [line.split()[0] for line in gitattributes.decode().splitlines() if "filter=lfs" in line]


def _tree(files: dict[str, bytes]) -> list[dict]:
    entries, folders = [], set()
    for path, content in sorted(files.items()):
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        entries.append({"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)})
    entries += [{"type": "directory", "path": folder, "oid": _oid(folder)} for folder in sorted(folders)]
    return entries


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: tests read hub.requests instead
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Error-Message", str(payload.get("error", ""))[:200])  # type: ignore[union-attr]
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        hub = self.hub
        found = [(n, m) for verb, n, p in ROUTES if verb == method and (m := re.fullmatch(p, url.path))]
        if not found:
            self._send(404, {"error": f"no route for {method} {url.path}"})
            return
        name, match = found[0]
        with hub.lock:
            hub.requests.append((method, name, url.path))
            try:
                if hub.failures.get(name):
                    status = hub.failures[name].pop(0)
                    raise HttpError(status, f"injected failure {status} on {name}")
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
                if token not in hub.tokens and name != "lfs-upload":  # upload URLs are pre-signed
                    raise HttpError(401, f"Invalid credentials in Authorization header (token {token!r})")
                status, payload = hub.handle(
                    method, name, match.groupdict(), parse_qs(url.query), body, token, hub.url
                )
            except HttpError as error:
                status, payload = error.status, {"error": str(error), **error.extra}
        self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")
