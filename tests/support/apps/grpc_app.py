"""A gRPC application and client for the proxy tests (Python `grpcio`, no generated code:
the service `demo.Greeter` takes and returns raw bytes through generic handlers).

    python3 grpc_app.py serve
        Serves HTTP/2 without TLS (h2c) on 127.0.0.1 (a free port), prints
        `listening on 127.0.0.1:PORT`. `Hello` (unary) answers `hello NAME; xfcc=<the
        x-forwarded-client-cert metadata>`; `Count` (server-streaming) answers `NAME 1`,
        `NAME 2`, `NAME 3` (for `nobody`: `nobody 1`, then the status NOT_FOUND in the trailers).

    python3 grpc_app.py call HOST:PORT CA CERT KEY NAME
        Calls both over TLS with a client certificate and prints each answer on a line of its
        own; a failed call prints `error code=<StatusCode name> details=<details>` (exit 3).
"""

import sys
from concurrent import futures

import grpc


def hello(request, context):
    metadata = dict(context.invocation_metadata())
    xfcc = metadata.get("x-forwarded-client-cert", "none")
    return b"hello " + request + b"; xfcc=" + xfcc.encode()


def count(request, context):
    for i in range(1, 4):
        if request == b"nobody" and i == 2:
            context.abort(grpc.StatusCode.NOT_FOUND, "nobody is here")
        yield request + b" " + str(i).encode()


def serve():
    handlers = grpc.method_handlers_generic_handler(
        "demo.Greeter",
        {
            "Hello": grpc.unary_unary_rpc_method_handler(hello),
            "Count": grpc.unary_stream_rpc_method_handler(count),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def call(target, ca, cert, key, name):
    read = lambda path: open(path, "rb").read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert)
    )
    with grpc.secure_channel(target, credentials) as channel:
        try:
            unary = channel.unary_unary("/demo.Greeter/Hello")
            print(unary(name.encode(), timeout=20).decode(), flush=True)
            stream = channel.unary_stream("/demo.Greeter/Count")
            for answer in stream(name.encode(), timeout=20):
                print(answer.decode(), flush=True)
        except grpc.RpcError as e:
            print(f"error code={e.code().name} details={e.details()}", flush=True)
            sys.exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(*sys.argv[2:7])
