"""The AWS emulator for the tests: moto's own server, except that DynamoDB
writes are applied one at a time.

DynamoDB evaluates a conditional write or a transaction atomically, so of
two writers racing on one item exactly one wins. moto's threaded server
checks a condition and then writes, without a lock, so two racing
transactions can both pass their conditions. The tests race writers on
purpose (dedupe claims, approvals, version conflicts), so the server
serializes DynamoDB write calls, as the service itself isolates them.
Everything else (reads, SQS long polls, other services) stays concurrent.

usage: python tests/moto_server.py HOST PORT
"""
import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

WRITES = (
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
)


class DynamoWritesOneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, action = target.partition(".")
        if service.startswith("DynamoDB_") and action in WRITES:
            with self.lock:
                # The whole answer is produced inside the lock.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DynamoWritesOneAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
