#!/usr/bin/env python3
"""Cold-start benchmark for the Lambda binaries.

Plays the Lambda Runtime API on a loopback port, starts each binary as Lambda
would (same environment variables) and hands it two events of the same kind,
timing, per run:
  init   - process start until its first GET /runtime/invocation/next
  first  - the first event handed out until its response (the cold call)
  warm   - the second event handed out until its response
and the cold cost a first event pays, init + (first - warm), against the
baseline's (the first binary).

Events (--event):
  webhook  a signed GitHub deployment_status delivery as an API Gateway HTTP
           API (payload 2.0) event, for the ingest function. Needs AWS: a moto
           server from the project's .venv on a free port (default) or
           --aws-endpoint URL. The table, event bus and webhook secret are
           created there; the binary reaches them through AWS_ENDPOINT_URL.
           Each run signs two new bodies (new deployment_status id, new
           delivery id), so neither is a duplicate.
  aws      events/aws/cloudwatch.alarm_state_change.json under a new event id
           each time, for the aws-events function: as the webhook event, it
           reads the catalog, claims the event, publishes it and logs it.
  health   events/apigw/health.json, for the api function (no AWS call).
  stream   events/dynamodb/stream.other_item.json, for the publish function:
           a stream batch whose one record is not a change item, so the
           function skips it without an AWS call (init and the handler's
           decoding).
  outbox   events/dynamodb/stream.change_created.json, for the publish
           function: the stream record of a change's creation, whose audit
           entry it reads (the stub answers with infra/coldstart.outbox.json),
           claims, puts on the bus and tells on the topic.
  schedule events/scheduler/escalate.json, for the escalate function: one
           escalation tick, whose due-index queries find nothing due.
  deployment  the GitHub deployment_status sample as ingest puts it on the
           hub bus (`Deployment Status Changed`), for the deployments
           function: a change created for the deployment, an audited write.
  incident the PagerDuty incident.triggered sample as a hub event (`Incident
           Triggered`), for the correlate function: its incident recorded,
           no change to tag.
  drift    the CloudTrail AuthorizeSecurityGroupIngress sample as a hub event
           (`API Call Recorded`), for the drift function: no change
           authorizes it, so it becomes a finding, told on the topic.
  pull_request  the GitHub pull_request.opened sample as ingest puts it on
           the hub bus (`Pull Request Changed`), for the scm function: the
           merge gate reads the tenant's catalog; the stub has none, so the
           request is skipped without a secret read or a forge call (init and
           the first DynamoDB read).
  none     no event: init only.
The baseline echoes whatever it is sent.

--aws stub answers the AWS calls (every event but health and stream) from a
stub on loopback instead of moto: each call gets the answer the function
expects (no catalog, claims granted, every write and event put, every message
published, nothing due, no changes, the secrets document as the webhook
secrets and the audit key) after --aws-latency milliseconds (default 0). The
outbox, deployment, incident, drift and pull_request events are answered by the stub only.
Moto spends milliseconds of Python per call, which a loaded machine stretches
to tens, so first - warm is mostly emulator noise;
the stub's answers take well under a millisecond, so what is left is the
function's own cost, and a set latency shows how much of a round trip the
function hides (an AWS call from Lambda takes a few milliseconds).

Binaries are run in turn within each run (side by side), so a busy machine
weighs on all of them alike. --env NAME:VAR=VALUE sets a variable for one
binary, so one binary can be measured under two settings (two NAMEs).

--callgrind DIR counts instructions instead (valgrind's callgrind: the same
count on a busy machine): init, first and warm, each binary run three times
and stopped after 0, 1 and 2 events; the profiles stay in DIR for
callgrind_annotate (build with CARGO_PROFILE_RELEASE_STRIP=false for names).

usage: .venv/bin/python infra/coldstart.py [--runs N]
           [--event webhook|aws|health|stream|outbox|schedule|deployment|incident|drift|pull_request|none]
           [--aws moto|stub] [--aws-latency MS] [--aws-endpoint URL] [--env NAME:VAR=VALUE] [--callgrind DIR]
           NAME=BINARY [NAME=BINARY ...]
"""
import argparse, copy, hashlib, hmac, http.server, json, os, pathlib, socket, statistics, subprocess, threading, time
import urllib.error, urllib.parse, urllib.request, uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUNDLE = next((p for p in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"] if os.path.exists(p)), "")
REGION = "eu-west-1"
TABLE = "changehub-bench"
EVENT_BUS = "changehub-bench-hub"
SECRETS_ID = "changehub-bench-secrets"
# GitHub's published example secret (tests/src/samples.rs).
GITHUB_SECRET = "It's a Secret to Everybody"
SAMPLE = json.loads((ROOT / "events/github/deployment_status.success.json").read_bytes())
HEALTH = (ROOT / "events/apigw/health.json").read_bytes()
STREAM = (ROOT / "events/dynamodb/stream.other_item.json").read_bytes()
ALARM = json.loads((ROOT / "events/aws/cloudwatch.alarm_state_change.json").read_bytes())
SCHEDULE = (ROOT / "events/scheduler/escalate.json").read_bytes()
# A change's creation as the table's stream delivers it to the publish function,
# and the audit entry the function then reads (as the table holds it): both
# written by the api function on moto (events/apigw/create-change.json).
OUTBOX = ROOT / "events/dynamodb/stream.change_created.json"
OUTBOX_ENTRIES = ROOT / "infra/coldstart.outbox.json"
TRAIL = json.loads((ROOT / "events/aws/cloudtrail.ec2_authorize_security_group_ingress.json").read_bytes())


def aws_event():
    """The CloudWatch alarm sample under a new event id (the dedupe key)."""
    return json.dumps({**ALARM, "id": str(uuid.uuid4())}).encode()


class AwsStub(http.server.BaseHTTPRequestHandler):
    """The AWS calls of the ingest and aws-events functions, answered as the
    functions expect after the server's `latency` seconds."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.query_protocol(urllib.parse.parse_qs(raw.decode()))
        body = json.loads(raw or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        operation = target.rsplit(".", 1)[-1]
        if operation == "GetSecretValue":
            answer = {"ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{SECRETS_ID}-AbCdEf", "Name": SECRETS_ID,
                      "VersionId": "v1", "SecretString": json.dumps({"default": {"github": [GITHUB_SECRET]}})}
        elif operation == "PutEvents":
            answer = {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in body.get("Entries", [])]}
        elif operation in ("GetItem", "PutItem", "DeleteItem", "UpdateItem", "TransactWriteItems"):
            answer = self.items(operation, body)  # no catalog yet; every claim granted
        elif operation == "BatchGetItem":
            answer = {"Responses": {table: [] for table in body.get("RequestItems", {})}, "UnprocessedKeys": {}}
        elif operation == "Query":
            # Nothing due, no changes; the audit entries of the outbox sample's change.
            items = self.server.audit_entries if self.server.audit_pk in json.dumps(body.get("ExpressionAttributeValues", {})) else []
            answer = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        else:
            return self.unknown(target)
        self.answer(json.dumps(answer).encode(),
                    "application/x-amz-json-1.0" if target.startswith("DynamoDB") else "application/x-amz-json-1.1")

    def items(self, operation, body):
        """Change items are kept (the deployments function reads back the
        change it made); every other write is granted and forgotten."""
        kept = self.server.changes
        def key(item):
            return item.get("PK", {}).get("S"), item.get("SK", {}).get("S")
        puts = [body.get("Item", {})] if operation == "PutItem" else [
            t["Put"]["Item"] for t in body.get("TransactItems", []) if "Put" in t]
        for item in puts:
            if item.get("entity", {}).get("S") == "change":
                kept[key(item)] = item
        if operation == "GetItem" and key(body.get("Key", {})) in kept:
            return {"Item": kept[key(body["Key"])]}
        return {}

    def query_protocol(self, form):
        """SNS's query protocol: a form in, XML out."""
        action = form.get("Action", [""])[0]
        if action != "Publish":
            return self.unknown(f"SNS.{action}")
        self.answer((f'<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
                     f"<MessageId>{uuid.uuid4()}</MessageId></PublishResult><ResponseMetadata>"
                     f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishResponse>").encode(), "text/xml")

    def unknown(self, target):
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.unknown.append(target)

    def answer(self, out, content_type):
        time.sleep(self.server.latency)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def start_stub(latency_ms):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AwsStub)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # a binary killed mid-connection
    server.latency = latency_ms / 1000
    server.unknown = []
    server.changes = {}
    server.audit_pk, server.audit_entries = "\0", []
    if OUTBOX.exists():
        server.audit_pk = json.loads(OUTBOX.read_bytes())["Records"][0]["dynamodb"]["Keys"]["PK"]["S"]
        server.audit_entries = json.loads(OUTBOX_ENTRIES.read_bytes())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def hub_event(detail_type, origin, key, occurred_at, external_id, data, actor=None, service="payments"):
    """A canonical hub event as the hub bus delivers it to its rules' targets,
    under a new event id each time (the consumers' dedupe key)."""
    event_id = str(uuid.uuid4())
    return json.dumps({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": f"changehub.{origin}",
        "account": "123456789012", "time": occurred_at, "region": REGION, "resources": [],
        "detail": {
            "event_id": event_id, "tenant": "default", "origin": origin, "service": service,
            "service_resolution": {"key": key, "reason": None}, "environment": "production",
            "occurred_at": occurred_at, "actor": actor, "external_id": external_id, "url": None,
            "delivery_id": event_id, "data": data,
        },
    }).encode()


DEPLOYMENT_IDS = iter(range(int(time.time() * 1000), 1 << 62))


def deployment_event():
    """The GitHub deployment_status sample as ingest publishes it, each time
    for a new deployment: for the deployments function, which makes each
    one's change."""
    return hub_event("Deployment Status Changed", "github", {"by": "repository", "key": "acme-corp/checkout-service"},
                     "2026-09-14T10:34:11Z", f"deployment_status:{uuid.uuid4()}", {
                         "repository": "acme-corp/checkout-service", "deployment_id": str(next(DEPLOYMENT_IDS)),
                         "environment": "production", "state": "success", "ref": "main",
                         "sha": "64db262264ce70c5b2b5b871318525461ab8eb77", "description": None, "change_ids": ["CHG-1042"],
                     }, actor="github-actions[bot]")


def incident_event():
    """The PagerDuty incident.triggered sample as ingest publishes it: for the correlate function."""
    return hub_event("Incident Triggered", "pagerduty", {"by": "pagerduty_service", "key": "PSV7Q2K"},
                     "2026-09-14T10:41:07Z", "Q2LKX3U8ZP7WNM", {
                         "incident_id": "Q2LKX3U8ZP7WNM", "number": 4821,
                         "title": "[FIRING:2] HighErrorRate checkout-service (critical)", "status": "triggered",
                         "priority": "P1", "urgency": "high", "created_at": "2026-09-14T10:41:07Z",
                     })


def drift_event():
    """The CloudTrail AuthorizeSecurityGroupIngress sample as aws-events publishes it
    (`API Call Recorded`): for the drift function. No change authorizes it, so
    each is a finding, told on the topic."""
    trail = TRAIL["detail"]
    identity = trail["userIdentity"]
    issuer = identity["sessionContext"]["sessionIssuer"]
    return hub_event("API Call Recorded", "aws", None, trail["eventTime"], str(uuid.uuid4()), {
        "event_id": str(uuid.uuid4()), "action": "ec2:AuthorizeSecurityGroupIngress", "actor_arn": issuer["arn"],
        "actor_type": identity["type"], "principal_id": identity["principalId"], "source_ip": trail["sourceIPAddress"],
        "user_agent": trail["userAgent"], "resources": [f"arn:aws:ec2:us-east-1:123456789012:security-group/{trail['requestParameters']['groupId']}"],
        "error_code": None, "account": TRAIL["account"], "region": TRAIL["region"],
        "identity": {"kind": identity["type"], "arn": identity["arn"], "principal_id": identity["principalId"],
                     "account_id": identity["accountId"], "issuer_arn": issuer["arn"],
                     "session_name": identity["arn"].rsplit("/", 1)[-1], "mfa": False},
        "parameters": {"groupId": trail["requestParameters"]["groupId"]},
    }, actor=identity["arn"])


def pull_request_event():
    """The GitHub pull_request.opened sample as ingest publishes it: for the scm function."""
    return hub_event("Pull Request Changed", "github", {"by": "repository", "key": "acme-corp/checkout-service"},
                     "2026-09-14T09:12:44Z", "acme-corp/checkout-service#418", {
                         "repository": "acme-corp/checkout-service", "number": 418, "action": "opened",
                         "title": "CHG-1042: Raise checkout-service DB connection pool from 20 to 50", "merged": False,
                         "head_branch": "chg-1042/raise-db-pool", "base_branch": "main",
                         "head_sha": "7a24b6fb90f485ed5fb44ac8fe19513ba69a3d5a", "merge_sha": None, "author": "ana-acme",
                         "labels": [], "change_ids": ["3f6c2a9e-8b1d-4c55-9a0e-2d7f1b6e4c90"], "installation": 51234567,
                     }, actor="ana-acme")


HUB_EVENTS = {"deployment": deployment_event, "incident": incident_event, "drift": drift_event, "pull_request": pull_request_event}


def webhook_event(status_id):
    """A GitHub deployment_status delivery, signed, as API Gateway delivers it."""
    payload = copy.deepcopy(SAMPLE)
    payload["deployment_status"]["id"] = status_id
    body = json.dumps(payload)
    delivery = str(uuid.uuid4())
    signature = hmac.new(GITHUB_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    path = "/webhooks/github"
    return json.dumps({
        "version": "2.0", "routeKey": "POST /webhooks/{source}", "rawPath": path, "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-github-event": "deployment_status",
            "x-github-delivery": delivery,
            "x-github-hook-id": "123456789",
            "x-hub-signature-256": f"sha256={signature}",
        },
        "pathParameters": {"source": "github"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.30.252.1", "userAgent": "GitHub-Hookshot/abc"},
            "requestId": delivery, "routeKey": "POST /webhooks/{source}", "stage": "$default",
            "time": "01/Dec/2026:22:10:00 +0000", "timeEpoch": 1796170200000,
        },
        "body": body,
        "isBase64Encoded": False,
    }).encode()


class Runtime(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        st = self.server.state
        if not self.path.endswith("/runtime/invocation/next"):
            return
        if st["init"] is None:
            st["init"] = time.perf_counter_ns()
        if len(st["handed"]) == len(st["events"]):
            # Every event was answered: park the runtime's next poll.
            st["done"].set()
            st["stop"].wait(120)
            return
        event = st["events"][len(st["handed"])]
        request_id = str(uuid.uuid4())
        self.send_response(200)
        for k, v in {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 10000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:123456789012:function:bench",
            "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
            "Content-Type": "application/json",
            "Content-Length": str(len(event)),
        }.items():
            self.send_header(k, v)
        self.end_headers()
        st["handed"].append(time.perf_counter_ns())
        self.wfile.write(event)

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if "/response" in self.path or "/error" in self.path:
            st["answers"].append((time.perf_counter_ns(), "/response" in self.path, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def succeeded(ok, body):
    """A response, and for an HTTP event a 2xx status."""
    if not ok:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return True
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    return status is None or 200 <= int(status) < 300


# The answers of the last run_once (--show-answers).
LAST_ANSWERS = []


def run_once(binary, events, extra_env, trust_store, wrapper=()):
    """Runs `binary` until it has answered `events` and polls for the next one.
    With a `wrapper` (valgrind) it is then stopped with SIGTERM, so the tool
    writes its profile; otherwise it is killed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.state = {"init": None, "events": events, "handed": [], "answers": [], "done": threading.Event(), "stop": threading.Event()}
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
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "CHANGEHUB_TABLE": TABLE,
        "CHANGEHUB_EVENT_BUS": EVENT_BUS,
        "CHANGEHUB_SECRETS_ID": SECRETS_ID,
        "CHANGEHUB_AUDIT_KEY_SECRET": "changehub-bench-audit-key",
        "CHANGEHUB_FORGE_SECRET": "changehub-bench-forge-credentials",
        "CHANGEHUB_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:changehub-bench-notifications",
        "RUST_LOG": "info",
        **extra_env,
    }
    # Lambda's AL2023 image keeps its trust store in one bundle file; Debian's
    # /etc/ssl/certs also holds ~300 single-certificate files that the SDK's
    # TLS set-up would read one by one. --trust-store al2023 loads the bundle
    # only, as on Lambda; --trust-store host measures this machine as it is.
    if trust_store == "al2023":
        env["SSL_CERT_FILE"] = BUNDLE
    start = time.perf_counter_ns()
    proc = subprocess.Popen([*wrapper, binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = server.state["done"].wait(300 if wrapper else 15)
    if wrapper:
        proc.terminate()
    else:
        proc.kill()
    proc.wait()
    server.state["stop"].set()
    server.shutdown()
    st = server.state
    if not finished or st["init"] is None:
        raise SystemExit(f"{binary}: {len(st['answers'])} of {len(events)} invocations completed (init seen: {st['init'] is not None})")
    for i, (_, ok, body) in enumerate(st["answers"]):
        if not succeeded(ok, body):
            raise SystemExit(f"{binary}: invocation {i + 1} failed: {body[:300]!r}")
    LAST_ANSWERS[:] = [body for _, _, body in st["answers"]]
    ms = lambda ns: ns / 1e6
    return [ms(st["init"] - start)] + [ms(at - handed) for (at, _, _), handed in zip(st["answers"], st["handed"])]


def callgrind(name, binary, events, extra_env, trust_store, out_dir):
    """Instructions (callgrind Ir) up to the end of init, of the first and of
    the warm invocation: three runs under callgrind, stopped after 0, 1 and 2
    events. The profiles are left in out_dir for callgrind_annotate."""
    totals = []
    # Under valgrind the process runs ~50 times slower: the SDK's timeouts
    # (5 s a call by default) would fire on a loaded machine.
    extra_env = {"CHANGEHUB_SDK_OPERATION_TIMEOUT_MS": "120000", "CHANGEHUB_SDK_ATTEMPT_TIMEOUT_MS": "60000", **extra_env}
    for n in range(3 if events() else 1):
        out = out_dir / f"{name}.{n}.out"
        wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
        run_once(binary, events()[:n], extra_env, trust_store, wrapper)
        line = next(l for l in out.read_text().splitlines() if l.startswith(("totals:", "summary:")))
        totals.append(int(line.split()[1]))
    if len(totals) == 1:
        return totals[0], None, None
    return totals[0], totals[1] - totals[0], totals[2] - totals[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    moto = ROOT / ".venv/bin/moto_server"
    if not moto.exists():
        raise SystemExit("no .venv/bin/moto_server: run `bash tests/venv.sh .venv tests/requirements.txt` (or `make test`) first, or pass --aws-endpoint")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(ROOT / "target/coldstart-moto.log", "wb")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("moto server did not start; see target/coldstart-moto.log")
            time.sleep(0.2)
    return proc, endpoint


def provision(endpoint):
    """The table (as DynamoStore::create_table makes it), the hub bus and the webhook secret."""
    try:
        import boto3
    except ImportError:
        raise SystemExit("--event webhook needs boto3: run this script with the project's .venv/bin/python")
    kw = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    ddb = boto3.client("dynamodb", **kw)
    existing = ddb.list_tables()["TableNames"]
    if TABLE not in existing:
        key = lambda pk, sk: [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]
        ddb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=key("PK", "SK"),
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ["PK", "SK", "GSI1PK", "GSI1SK"]],
            GlobalSecondaryIndexes=[{"IndexName": "GSI1", "KeySchema": key("GSI1PK", "GSI1SK"), "Projection": {"ProjectionType": "ALL"}}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True})
    events = boto3.client("events", **kw)
    if EVENT_BUS not in [b["Name"] for b in events.list_event_buses()["EventBuses"]]:
        events.create_event_bus(Name=EVENT_BUS)
    secrets = boto3.client("secretsmanager", **kw)
    document = json.dumps({"default": {"github": [GITHUB_SECRET]}})
    try:
        secrets.create_secret(Name=SECRETS_ID, SecretString=document)
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId=SECRETS_ID, SecretString=document)


# The events whose handling calls AWS (the stub or moto).
AWS_EVENTS = ("webhook", "aws", "outbox", "schedule", "deployment", "incident", "drift", "pull_request")
STUB_ONLY = ("outbox", "deployment", "incident", "drift", "pull_request")


def pct(values):
    return statistics.median(values), statistics.quantiles(values, n=10)[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--event", choices=["webhook", "aws", "health", "stream", "outbox", "schedule", "deployment", "incident", "drift", "pull_request", "none"], default="webhook")
    ap.add_argument("--aws", choices=["moto", "stub"], default="moto", help="what answers the AWS calls (webhook, aws and schedule events)")
    ap.add_argument("--aws-latency", type=float, default=0, metavar="MS", help="the stub's delay before each answer")
    ap.add_argument("--aws-endpoint", help="an AWS emulator to use instead of starting moto (webhook and aws events)")
    ap.add_argument("--trust-store", choices=["al2023", "host"], default="al2023")
    ap.add_argument("--env", action="append", default=[], metavar="NAME:VAR=VALUE",
                    help="an environment variable for the binary named NAME (repeatable), e.g. ingest:CHANGEHUB_TLS_ROOTS=system")
    ap.add_argument("--callgrind", metavar="DIR", type=pathlib.Path,
                    help="count instructions per phase under valgrind's callgrind instead of timing (profiles left in DIR)")
    ap.add_argument("--show-answers", action="store_true", help="print each binary's answers to its first run's events")
    ap.add_argument("binaries", nargs="+", metavar="NAME=BINARY")
    args = ap.parse_args()
    specs = [spec.split("=", 1) for spec in args.binaries]
    extra = {name: {} for name, _ in specs}
    for e in args.env:
        name, var = e.split(":", 1)
        k, v = var.split("=", 1)
        extra[name][k] = v
    if args.event in STUB_ONLY and args.aws != "stub":
        raise SystemExit(f"--event {args.event} needs --aws stub (moto is provisioned for webhook and aws only)")
    moto = stub = None
    if args.event in AWS_EVENTS:
        endpoint = args.aws_endpoint
        if args.aws == "stub":
            stub, endpoint = start_stub(args.aws_latency)
        else:
            if endpoint is None:
                moto, endpoint = start_moto()
            provision(endpoint)
        for env in extra.values():
            env.setdefault("AWS_ENDPOINT_URL", endpoint)
    status_ids = iter(range(int(time.time() * 1000), 1 << 62))

    def events():
        if args.event == "none":
            return []
        if args.event == "health":
            return [HEALTH, HEALTH]
        if args.event == "stream":
            return [STREAM, STREAM]
        if args.event == "aws":
            return [aws_event(), aws_event()]
        if args.event == "schedule":
            return [SCHEDULE, SCHEDULE]
        if args.event == "outbox":
            return [OUTBOX.read_bytes()] * 2  # the stub grants every claim: the second is published again
        if args.event in HUB_EVENTS:
            return [HUB_EVENTS[args.event](), HUB_EVENTS[args.event]()]
        return [webhook_event(next(status_ids)), webhook_event(next(status_ids))]

    if args.callgrind is not None:
        args.callgrind.mkdir(parents=True, exist_ok=True)
        try:
            counts = {name: callgrind(name, binary, events, extra[name], args.trust_store, args.callgrind) for name, binary in specs}
        finally:
            if moto is not None:
                moto.terminate()
                moto.wait()
        backend = f", AWS: {'stub' if stub else 'moto'}" if args.event in AWS_EVENTS else ""
        print(f"instructions (callgrind Ir, millions; event: {args.event}{backend}, trust store: {args.trust_store}); profiles in {args.callgrind}")
        print(f"{'binary':<14} {'init':>8} {'first':>8} {'warm':>8} {'init+(first-warm)':>18}")
        for name, (init, first, warm) in counts.items():
            if first is None:
                print(f"{name:<14} {init / 1e6:>8.2f}")
            else:
                print(f"{name:<14} {init / 1e6:>8.2f} {first / 1e6:>8.2f} {warm / 1e6:>8.2f} {(init + first - warm) / 1e6:>18.2f}")
        return

    try:
        for name, binary in specs:
            run_once(binary, events(), extra[name], args.trust_store)  # warm the page cache, as a reused Lambda host would have it
            if args.show_answers:
                print(f"{name}: " + " | ".join(a.decode(errors="replace")[:300] for a in LAST_ANSWERS))
        runs = {name: [] for name, _ in specs}
        for _ in range(args.runs):
            for name, binary in specs:
                runs[name].append(run_once(binary, events(), extra[name], args.trust_store))
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait()

    if stub is not None and stub.unknown:
        raise SystemExit(f"the AWS stub was asked for calls it does not answer: {sorted(set(stub.unknown))}")
    backend = f", AWS: {'stub, ' + str(args.aws_latency) + ' ms a call' if stub else 'moto'}" if args.event in AWS_EVENTS else ""
    print(f"cold start, {args.runs} runs side by side (mock Runtime API on loopback, event: {args.event}{backend}, trust store: {args.trust_store}); milliseconds")
    if args.event == "none":
        print(f"{'binary':<14} {'init p50':>9} {'p90':>7} {'vs base':>8} {'size':>8}")
        base = None
        for name, binary in specs:
            (i50, i90), size = pct([r[0] for r in runs[name]]), os.path.getsize(binary) / 1e6
            base = base or i50
            print(f"{name:<14} {i50:>9.2f} {i90:>7.2f} {i50 / base:>7.2f}x {size:>6.2f}MB")
        return
    print(f"{'binary':<14} {'init p50':>9} {'p90':>7} {'first p50':>10} {'p90':>7} {'warm p50':>9} {'p90':>7} {'init+(first-warm)':>18} {'vs base':>8} {'size':>8}")
    base = None
    for name, binary in specs:
        rs = runs[name]
        init, first, warm = ([r[i] for r in rs] for i in range(3))
        cold = statistics.median([r[0] + r[1] - r[2] for r in rs])
        base = base or cold
        (i50, i90), (f50, f90), (w50, w90) = pct(init), pct(first), pct(warm)
        size = os.path.getsize(binary) / 1e6
        print(f"{name:<14} {i50:>9.2f} {i90:>7.2f} {f50:>10.2f} {f90:>7.2f} {w50:>9.2f} {w90:>7.2f} {cold:>18.2f} {cold / base:>7.2f}x {size:>6.2f}MB")


if __name__ == "__main__":
    main()
