"""moto's server, with DynamoDB requests taken one at a time.

moto's DynamoDB backend reads an item, evaluates a ConditionExpression and writes the item
without a lock, so two threads of its server can both pass a condition that only one of them
should pass (two schedulers claiming the same due connection, two transactions on one
counter). DynamoDB itself applies each conditional write and each transaction atomically; the
tests rely on that, so this launcher restores it by serializing DynamoDB requests. Other
services (SQS long polls among them) keep moto's threaded server.

Usage: python scripts/aws-emulator.py PORT
"""

import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def serialize_dynamodb(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                # moto builds the whole body inside the call; materialize it under the lock
                # all the same, so no part of a DynamoDB answer is computed outside it.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        "127.0.0.1",
        port,
        serialize_dynamodb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
