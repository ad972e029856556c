#!/usr/bin/env bash
# A rolling release of Chatsite on one EC2 host (deploy/README.md, "Releases on EC2").
#
#   sudo deploy/release.sh <git-ref> <target-group-arn> [port ...]     (default ports: 8000 8001)
#
# Once per host: check out <git-ref> as the chatsite user, install the hashed lock, collect
# the static files and migrate. Then one process at a time, so the others keep serving:
#   1. deregister it from the target group (no new sockets reach it),
#   2. drain it: SIGUSR1 makes /healthz answer 503 and closes its sockets with 1001 spread
#      over CHAT_DRAIN_SECONDS (chatsite/ops/drain.py); the clients resume elsewhere,
#   3. wait until the balancer has finished deregistering it (the deregistration delay,
#      which outlasts the drain), restart it on the new code,
#   4. wait for its /healthz, register it again and wait until the balancer sees it healthy.
# Any failure stops the release with that process out of the balancer and the others
# untouched: fix, then run the script again (every step is safe to repeat).
set -euo pipefail

ref=${1:?usage: release.sh <git-ref> <target-group-arn> [port ...]}
target_group=${2:?usage: release.sh <git-ref> <target-group-arn> [port ...]}
shift 2
if [ "$#" -gt 0 ]; then ports=("$@"); else ports=(8000 8001); fi
app=/opt/chatsite
env_file=/etc/chatsite/chatsite.env

as_chatsite() { sudo -u chatsite -H "$@"; }
with_env() { as_chatsite sh -c "set -a; . $env_file; set +a; cd $app; exec $*"; }

# The instance's own id, from the instance metadata service (IMDSv2).
token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
instance=$(curl -sf -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id)

echo "== $ref on $instance"
as_chatsite git -C "$app" fetch --quiet origin
as_chatsite git -C "$app" checkout --quiet --detach "$ref"
as_chatsite "$app/.venv/bin/pip" install --quiet --require-hashes --no-deps -r "$app/requirements.lock"
if [ -f "$app/frontend/package-lock.json" ] && command -v npm >/dev/null; then
    as_chatsite sh -c "cd $app/frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build"
fi
with_env .venv/bin/python manage.py collectstatic --noinput -v0
with_env .venv/bin/python manage.py migrate --noinput

for port in "${ports[@]}"; do
    target="Id=$instance,Port=$port"
    echo "== chatsite@$port: deregister and drain"
    aws elbv2 deregister-targets --target-group-arn "$target_group" --targets "$target"
    systemctl kill --signal=SIGUSR1 "chatsite@$port"
    aws elbv2 wait target-deregistered --target-group-arn "$target_group" --targets "$target"
    echo "== chatsite@$port: restart"
    systemctl restart "chatsite@$port"
    for _ in $(seq 1 60); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 1
    done
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "chatsite@$port did not come back" >&2; exit 1; }
    aws elbv2 register-targets --target-group-arn "$target_group" --targets "$target"
    aws elbv2 wait target-in-service --target-group-arn "$target_group" --targets "$target"
    echo "== chatsite@$port: in service"
done
echo "== released $ref"
