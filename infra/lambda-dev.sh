#!/usr/bin/env bash
# Runs the real Lambda binaries locally under `cargo lambda watch`, against a
# moto server standing in for DynamoDB, EventBridge and Secrets Manager, so
# the samples in events/ can be sent to them:
#
#   bash infra/lambda-dev.sh            # leaves it running; Ctrl-C stops both
#   CHANGEHUB_GITHUB_SECRET=dev-secret changehub replay --allow-ignored \
#       --url http://127.0.0.1:9000/lambda-url/ingest events/github/*.json
#   cargo lambda invoke aws-events --data-file events/aws/cloudwatch.alarm_state_change.json
#   cargo lambda invoke api --data-file events/apigw/health.json
#
# The webhook secrets document it creates holds "dev-secret" for every
# source but incident.io, which gets the Standard Webhooks example key
# whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tests/venv.sh .venv tests/requirements.txt
bash tests/venv.sh .venv-deploy infra/requirements-deploy.txt
port="${MOTO_PORT:-5055}"
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto-lambda-dev.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.2; done
.venv/bin/python - "$port" <<'PY'
import boto3, json, sys
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
boto3.client("dynamodb", **kw).create_table(
    TableName="changehub-local", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK")],
    KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}])
boto3.client("events", **kw).create_event_bus(Name="changehub-local-hub")
secrets = {s: ["dev-secret"] for s in ("github", "gitlab", "pagerduty", "alertmanager")}
secrets["incidentio"] = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
boto3.client("secretsmanager", **kw).create_secret(Name="changehub-webhooks", SecretString=json.dumps({"default": secrets}))
print("moto: table changehub-local, bus changehub-local-hub, secret changehub-webhooks")
PY
env_file="$(mktemp)"
cat > "$env_file" <<ENV
AWS_ENDPOINT_URL=http://127.0.0.1:$port
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
CHANGEHUB_TABLE=changehub-local
CHANGEHUB_EVENT_BUS=changehub-local-hub
CHANGEHUB_SECRETS_ID=changehub-webhooks
ENV
PATH="$root/.venv-deploy/bin:$PATH" cargo lambda watch --env-file "$env_file"
