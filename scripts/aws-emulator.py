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

moto's TransactWriteItems deep-copies every table it writes to before applying the
transaction, to put the copy back if the transaction is cancelled: each transaction costs a pass
over the whole table (an import of 2,000 files spent more time there than in its downloads, and
more with every file). Here the transaction saves only the items it names (a deep copy of each,
or their absence) and puts exactly those back if it is cancelled, so its cost does not grow with
the table; what it applies and when it is cancelled are moto's own.

moto's Query on a table (not an index) goes through every item of the table, sorted, for the
items of one partition. Here it is given only that partition's items.

moto's dispatcher lists its own package directory (a stat of each of its ~200 entries) on every
request to tell a service name from a host name; the list is read once here.

Usage: python scripts/aws-emulator.py PORT
"""

import copy
import inspect
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


def item_level_transaction_rollback():
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    state = threading.local()

    class TransactionCopy:
        """`copy` as moto's DynamoDB backend module sees it: inside a transaction whose items
        are saved here, its backup of a whole table is the table itself (nothing to put back
        wholesale; the saved items are put back instead)."""

        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x, memo=None):
            if getattr(state, "items_saved", False) and isinstance(x, Table):
                return x
            return copy.deepcopy(x, memo)

    def saved_items(backend, transact_items):
        """(table, hash, range, a deep copy of the item or None) for every item the transaction
        names, or None if one cannot be keyed here (moto's whole-table backup is kept then)."""
        saved = {}
        for entry in transact_items:
            if len(entry) != 1:
                return None
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue  # moto cancels the transaction without writing to it
            if table.stream_shard is not None:
                return None  # the stream's records are part of moto's table copy
            attrs = op.get("Item") if op_type == "Put" else op.get("Key")
            if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
                return None
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in attrs:
                    return None
                range_key = DynamoType(attrs[table.range_key_attr])
            where = (id(table), hash_key, range_key)
            if where not in saved:
                current = table.items.get(hash_key)
                if range_key is not None:
                    current = current.get(range_key) if current is not None else None
                saved[where] = (table, hash_key, range_key, copy.deepcopy(current))
        return list(saved.values())

    def put_back(saved):
        for table, hash_key, range_key, item in saved:
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is None:
                partition = table.items.get(hash_key)
                if partition is not None:
                    partition.pop(range_key, None)
                    if not partition:
                        table.items.pop(hash_key, None)
            else:
                table.items[hash_key][range_key] = item

    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(backend, transact_items):
        saved = saved_items(backend, transact_items)
        if saved is None:
            return transact(backend, transact_items)
        state.items_saved = True
        try:
            return transact(backend, transact_items)
        except BaseException:
            # moto raises only once it has put its (here: no-op) backups back, or before
            # writing anything.
            put_back(saved)
            raise
        finally:
            state.items_saved = False

    models.copy = TransactionCopy()
    models.DynamoDBBackend.transact_write_items = transact_write_items


def partition_scoped_queries():
    from moto.dynamodb.models.table import Table

    scope = threading.local()
    all_items = Table.all_items
    query = Table.query
    signature = inspect.signature(query)

    def scoped_all_items(table):
        on = getattr(scope, "on", None)
        if on is None or on[0] is not table:
            return all_items(table)
        partition = table.items.get(on[1])
        if partition is None:
            return []
        return sorted(partition.values(), key=lambda i: i.range_key) if table.range_key_attr else [partition]

    def scoped_query(table, *args, **kwargs):
        bound = signature.bind(table, *args, **kwargs).arguments
        if bound.get("index_name") or bound.get("hash_key") is None:
            return query(table, *args, **kwargs)
        scope.on = (table, bound["hash_key"])
        try:
            return query(table, *args, **kwargs)
        finally:
            scope.on = None

    Table.all_items = scoped_all_items
    Table.query = scoped_query


def module_list_read_once():
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def main():
    module_list_read_once()
    constant_time_sqs_sends()
    list_parts_result_root()
    item_level_transaction_rollback()
    partition_scoped_queries()
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
