"""moto's server, with DynamoDB requests taken one at a time and SQS sends in constant time.

moto's DynamoDB backend reads an item, evaluates a ConditionExpression and writes the item
without a lock, so two threads of its server can both pass a condition that only one of them
should pass (two schedulers claiming the same due connection, two transactions on one
counter). DynamoDB itself applies each conditional write and each transaction atomically; the
tests rely on that, so this launcher restores it by serializing DynamoDB requests. Other
services (SQS long polls among them) keep moto's threaded server.

moto's SendMessage reads one queue attribute (ContentBasedDeduplication) through a property
that computes them all, the approximate message counts among them: a pass over every message
in the queue. Enqueuing n jobs then costs n² clock reads (a 10,000-connection scheduler tick
did not finish in an hour). While a message is being sent, the property here returns only the
attributes that do not count messages; GetQueueAttributes still gets them all.

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


def constant_time_sqs_sends():
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs import models

    counting = {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
    sending = threading.local()
    all_attributes = models.Queue.attributes.fget

    def attributes(queue):
        if not getattr(sending, "active", False):
            return all_attributes(queue)
        names = [a for a in queue.BASE_ATTRIBUTES if a not in counting]
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        result = {}
        for name in names:
            value = getattr(queue, camelcase_to_underscores(name), None)
            result[name] = str(value).lower() if isinstance(value, bool) else value
        return result

    send_message = models.SQSBackend.send_message

    def send(backend, *args, **kwargs):
        sending.active = True
        try:
            return send_message(backend, *args, **kwargs)
        finally:
            sending.active = False

    models.Queue.attributes = property(attributes)
    models.SQSBackend.send_message = send


def list_parts_result_root():
    """S3 answers ListParts with a `ListPartsResult` root; this moto names it
    `ListPartsResponse`, which the AWS SDK refuses to parse. Renamed in the body moto built."""
    from moto.s3.responses import S3Response

    original = S3Response.list_parts

    def list_parts(self):
        status, headers, body = original(self)
        if isinstance(body, bytes):
            body = body.replace(b"<ListPartsResponse", b"<ListPartsResult").replace(
                b"</ListPartsResponse>", b"</ListPartsResult>"
            )
        elif isinstance(body, str):
            body = body.replace("<ListPartsResponse", "<ListPartsResult").replace(
                "</ListPartsResponse>", "</ListPartsResult>"
            )
        if isinstance(headers, dict):
            headers.pop("content-length", None)
            headers.pop("Content-Length", None)
        return status, headers, body

    S3Response.list_parts = list_parts


def main():
    constant_time_sqs_sends()
    list_parts_result_root()
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
