"""A Python web service the way real ones start: many imported modules and a warm in-memory
dataset. GET / answers from a few entries of the dataset, rendered with pygments and json; GET
/check answers a digest of the whole dataset (to compare memory before and after a restore).

usage: /usr/bin/python3 pyservice.py PORT ENTRIES READY_FILE
"""
import asyncio  # noqa: F401  (imported, as a service would: its code is part of the memory)
import decimal  # noqa: F401
import email.mime.multipart  # noqa: F401
import hashlib
import http.server
import json
import sqlite3  # noqa: F401
import sys
import xml.etree.ElementTree  # noqa: F401

import cryptography.hazmat.primitives.hashes  # noqa: F401
import pygments
import pygments.formatters
import pygments.lexers
import yaml  # noqa: F401

PORT, ENTRIES, READY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
DATA = {f"user:{i}": {"id": i, "name": f"name-{i}", "score": (i * 7919) % 1000} for i in range(ENTRIES)}
LEXER = pygments.lexers.get_lexer_by_name("python")
FORMATTER = pygments.formatters.HtmlFormatter()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/check":
            h = hashlib.sha256()
            for k in sorted(DATA):
                h.update(json.dumps(DATA[k]).encode())
            body = h.hexdigest().encode()
        else:
            picked = [DATA[f"user:{(i * 104729) % ENTRIES}"] for i in range(50)]
            body = json.dumps({"picked": picked,
                               "html": pygments.highlight("x = 1", LEXER, FORMATTER)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", PORT), Handler)
with open(READY, "w") as f:
    f.write("ready\n")
server.serve_forever()
