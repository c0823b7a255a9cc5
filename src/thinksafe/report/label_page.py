"""``thinksafe label DIR``: a labelling page on 127.0.0.1 for the drawn answers of a run folder.

The page shows one answer at a time (the prompt, the final answer, the trace folded away) beside the
rubric of ``docs/judges.md`` (shipped as ``thinksafe/judges/rubric.md``), never the judge's verdict nor
which side (before or after) wrote the answer. Each label goes to ``labels/ANNOTATOR.jsonl`` as it is
given (:func:`thinksafe.evals.labels.put_label`); a new session of the same annotator starts at the first
answer it has not labelled. Standard library HTTP server, one process, one lock around the file.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from thinksafe.errors import ThinksafeError
from thinksafe.evals.labels import (
    DEFAULT_N,
    all_items,
    check_annotator,
    draw,
    labels_dir,
    put_label,
    queue,
    read_labels,
)

log = logging.getLogger(__name__)


def rubric_html() -> str:
    from markdown_it import MarkdownIt

    text = (resources.files("thinksafe.judges") / "rubric.md").read_text(encoding="utf-8")
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


class LabelSession:
    """The drawn queue of a folder and one annotator's labels, behind a lock."""

    def __init__(self, run_dir: str | Path, annotator: str, *, n: int = DEFAULT_N, seed: int = 0,
                 sets: Sequence[str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.annotator = check_annotator(annotator)
        items = all_items(self.run_dir)
        self.draw = draw(self.run_dir, items, n=n, seed=seed, sets=sets)
        self.queue = queue(items, self.draw)
        self.known = {i.key for i in self.queue}
        every = {i.key for by_set in items.values() for its in by_set.values() for i in its}
        self.path = labels_dir(self.run_dir) / f"{self.annotator}.jsonl"
        self.labels = read_labels(self.path, every)  # a bad file stops here, before anything is served
        self.lock = threading.Lock()

    def items_payload(self) -> dict[str, Any]:
        return {"items": [{"key": i.key, "benchmark": i.benchmark, "split_type": i.split_type, "prompt": i.prompt,
                           "trace": i.trace, "answer": i.answer} for i in self.queue],
                "labels": {k: v for k, v in self.labels.items() if k in self.known}}

    def label(self, key: str, label: str, note: str) -> dict[str, Any]:
        if key not in self.known:
            raise ThinksafeError(f"{key!r} is not one of the drawn answers")
        with self.lock:
            return put_label(self.path, self.labels, key, label, note)

    def page(self) -> str:
        from jinja2 import Environment, PackageLoader, select_autoescape

        env = Environment(loader=PackageLoader("thinksafe.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
        return env.get_template("label.html.j2").render(annotator=self.annotator, run_dir=str(self.run_dir),
                                                         rubric_html=rubric_html())

    def done(self) -> int:
        return sum(1 for k in self.labels if k in self.known)


def _handler(session: LabelSession) -> type[BaseHTTPRequestHandler]:
    page = session.page().encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the terminal shows the URL and the count
            log.debug(fmt, *args)

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif self.path == "/api/items":
                with session.lock:
                    self._json(HTTPStatus.OK, session.items_payload())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/api/label":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                row = session.label(str(body.get("key")), str(body.get("label")), str(body.get("note") or ""))
            except (json.JSONDecodeError, ThinksafeError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._json(HTTPStatus.OK, {"row": row, "done": session.done()})

    return Handler


def serve(session: LabelSession, *, port: int = 0) -> ThreadingHTTPServer:
    """A server for ``session`` on 127.0.0.1 (``port`` 0: a free one); call ``serve_forever`` on it."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(session))
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
