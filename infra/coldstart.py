#!/usr/bin/env python3
"""Cold-start benchmark for the Lambda binaries.

Plays the Lambda Runtime API on a loopback port, starts each binary as Lambda
would (same environment variables), and measures, over several runs:
  init   - process start until its first GET /runtime/invocation/next
  first  - process start until it posts the response to the first event
The event is events/apigw/health.json for the api function (it needs no
table access) and the same JSON echoed for the baseline.

usage: coldstart.py [--runs N] NAME=BINARY [NAME=BINARY ...]
The first binary is the baseline the others are compared with.
"""
import argparse, http.server, json, os, socket, statistics, subprocess, threading, time, pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENT = (ROOT / "events/apigw/health.json").read_bytes()
BUNDLE = next((p for p in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"] if os.path.exists(p)), "")
TRUST_STORE = "al2023"


class Runtime(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        st = self.server.state
        if self.path.endswith("/runtime/invocation/next"):
            if st["init"] is None:
                st["init"] = time.perf_counter_ns()
            if st["served"]:
                # Only one invocation per run: park the runtime's next poll.
                st["done"].wait(10)
                return
            st["served"] = True
            self.send_response(200)
            for k, v in {
                "Lambda-Runtime-Aws-Request-Id": "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 10000),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:123456789012:function:bench",
                "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                "Content-Type": "application/json",
                "Content-Length": str(len(EVENT)),
            }.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(EVENT)

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if "/response" in self.path or "/error" in self.path:
            st["first"] = time.perf_counter_ns()
            st["ok"] = "/response" in self.path
            st["body"] = body
            st["done"].set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def run_once(binary):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.state = {"init": None, "first": None, "served": False, "done": threading.Event(), "ok": False, "body": b""}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/01/[$LATEST]bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "CHANGEHUB_TABLE": "changehub-bench",
        "CHANGEHUB_EVENT_BUS": "changehub-bench-hub",
        "CHANGEHUB_SECRETS_ID": "changehub-bench-secrets",
        "RUST_LOG": "info",
    }
    # Lambda's AL2023 image keeps its trust store in one bundle file; Debian's
    # /etc/ssl/certs also holds ~300 single-certificate files that the SDK's
    # TLS set-up would read one by one. --trust-store al2023 loads the bundle
    # only, as on Lambda; --trust-store host measures this machine as it is.
    if TRUST_STORE == "al2023":
        env["SSL_CERT_FILE"] = BUNDLE
    start = time.perf_counter_ns()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = server.state["done"].wait(15)
    proc.kill()
    proc.wait()
    server.shutdown()
    st = server.state
    if not finished or st["init"] is None:
        raise SystemExit(f"{binary}: no invocation completed (init seen: {st['init'] is not None})")
    if not st["ok"]:
        raise SystemExit(f"{binary}: the first invocation failed: {st['body'][:300]!r}")
    return (st["init"] - start) / 1e6, (st["first"] - start) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--trust-store", choices=["al2023", "host"], default="al2023")
    ap.add_argument("binaries", nargs="+", metavar="NAME=BINARY")
    args = ap.parse_args()
    global TRUST_STORE
    TRUST_STORE = args.trust_store
    results = []
    for spec in args.binaries:
        name, binary = spec.split("=", 1)
        run_once(binary)  # warm the page cache, as a reused Lambda host would have it
        runs = [run_once(binary) for _ in range(args.runs)]
        inits = [r[0] for r in runs]
        firsts = [r[1] for r in runs]
        size = os.path.getsize(binary)
        results.append((name, statistics.median(inits), statistics.quantiles(inits, n=10)[-1], statistics.median(firsts), size))
    base = results[0][1]
    print(f"cold start over {args.runs} runs each (process start on this machine, mock Runtime API on loopback, trust store: {TRUST_STORE})")
    print(f"{'binary':<12} {'init p50':>10} {'init p90':>10} {'first resp p50':>15} {'vs baseline':>12} {'size':>10}")
    for name, p50, p90, first, size in results:
        print(f"{name:<12} {p50:>8.2f}ms {p90:>8.2f}ms {first:>13.2f}ms {p50 / base:>11.2f}x {size / 1e6:>8.2f}MB")


if __name__ == "__main__":
    main()
