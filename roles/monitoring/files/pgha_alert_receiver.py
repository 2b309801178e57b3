# Managed by Ansible (pgha.cluster.monitoring).
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small webhook receiver for Alertmanager (the lab and the tests use it).

Appends every notification it receives, one JSON document per line, to the
file given as the second argument; listens on 127.0.0.1 at the port given as
the first argument. GET answers 'ok'.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

LOG = None  # the file the notifications go to: set from the second argument


class Receiver(BaseHTTPRequestHandler):
    """POST: append the body (JSON) as one line; GET: a health check."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        try:
            doc = json.loads(body.decode('utf-8'))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with open(LOG, 'a', encoding='utf-8') as out:
            out.write(json.dumps(doc, sort_keys=True) + '\n')
        self.send_response(200)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'ok\n')

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


if __name__ == '__main__':
    LOG = sys.argv[2]
    HTTPServer(('127.0.0.1', int(sys.argv[1])), Receiver).serve_forever()
