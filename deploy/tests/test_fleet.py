"""Policy tests over every generated template: encrypted private data, least privilege, retention, drains.

cfn-guard-style rules as plain assertions: they read the templates deploy/stack.py writes
(the main stack, the load balancer, and the ECS fleet of deploy/fleet.py) resource by
resource, so a new resource that breaks a rule fails here before it reaches an account.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings

from chat import metrics as chat_metrics
from chat.connections import GOING_AWAY_WAIT_SECONDS
from chatsite.ops import emf
from deploy import fleet, stack
from deploy.tests.test_runtime import manage, variables_read_by_the_app

TEMPLATES: dict[str, dict[str, Any]] = {name: build() for name, build in stack.TEMPLATES.items()}
FLEET = TEMPLATES["fleet.yaml"]
FLEET_RESOURCES: dict[str, Any] = FLEET["Resources"]


def resources_of(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(template, logical name, properties) of every resource of `kind` in any template."""
    return [
        (template, name, resource.get("Properties", {}))
        for template, body in TEMPLATES.items()
        for name, resource in body["Resources"].items()
        if resource["Type"] == kind
    ]


def task_container() -> dict[str, Any]:
    (container,) = FLEET_RESOURCES["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    return dict(container)


def task_environment() -> dict[str, Any]:
    return {entry["Name"]: entry["Value"] for entry in task_container()["Environment"]}


# Data stores ------------------------------------------------------------------------------


def test_every_data_store_is_encrypted() -> None:
    """Tables, bucket, database, cache and image repository all encrypt at rest (and Redis in transit)."""
    found = {kind: resources_of(kind) for kind in DATA_STORES}
    assert all(found.values()), {k: len(v) for k, v in found.items()}  # each kind is really there
    for _, name, props in found["AWS::DynamoDB::Table"]:
        assert props["SSESpecification"]["SSEEnabled"] is True, name
    for _, name, props in found["AWS::S3::Bucket"]:
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
    for _, name, props in found["AWS::RDS::DBInstance"]:
        assert props["StorageEncrypted"] is True, name
    for _, name, props in found["AWS::ElastiCache::ReplicationGroup"]:
        assert props["AtRestEncryptionEnabled"] is True and props["TransitEncryptionEnabled"] is True, name
        assert "AuthToken" in props, name
        assert task_environment()["REDIS_URL"]["Fn::Sub"].startswith("rediss://")
    for _, name, props in found["AWS::ECR::Repository"]:
        assert props["EncryptionConfiguration"]["EncryptionType"] in {"AES256", "KMS"}, name


DATA_STORES = (
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::RDS::DBInstance",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ECR::Repository",
)


def test_every_data_store_is_private() -> None:
    """The database and Redis live in private subnets and admit the app tasks only; the bucket blocks public access."""
    private = set(fleet.PRIVATE_SUBNETS)
    (db,) = [p for _, _, p in resources_of("AWS::RDS::DBInstance")]
    assert db["PubliclyAccessible"] is False and db["MultiAZ"] is True
    assert {r["Ref"] for r in FLEET_RESOURCES["DatabaseSubnetGroup"]["Properties"]["SubnetIds"]} == private
    assert {r["Ref"] for r in FLEET_RESOURCES["RedisSubnetGroup"]["Properties"]["SubnetIds"]} == private
    (cache,) = [p for _, _, p in resources_of("AWS::ElastiCache::ReplicationGroup")]
    assert cache["MultiAZEnabled"] is True and cache["AutomaticFailoverEnabled"] is True
    assert cache["NumCacheClusters"] >= 2
    for group in ("DatabaseSecurityGroup", "RedisSecurityGroup"):
        for rule in FLEET_RESOURCES[group]["Properties"]["SecurityGroupIngress"]:
            assert rule["SourceSecurityGroupId"] == {"Ref": "AppSecurityGroup"}, group
            assert "CidrIp" not in rule, group
    # Private subnets have no route to the internet gateway and hand out no public address.
    for name in private:
        assert FLEET_RESOURCES[name]["Properties"]["MapPublicIpOnLaunch"] is False
    for name, resource in FLEET_RESOURCES.items():
        if resource["Type"] == "AWS::EC2::Route" and "Private" in resource["Properties"]["RouteTableId"]["Ref"]:
            assert "GatewayId" not in resource["Properties"], name
    for _, name, props in resources_of("AWS::S3::Bucket"):
        block = props["PublicAccessBlockConfiguration"]
        assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls")), name
    service = FLEET_RESOURCES["Service"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert service["AssignPublicIp"] == "DISABLED"
    assert {r["Ref"] for r in service["Subnets"]} == private


def test_only_the_load_balancer_is_open_to_the_internet() -> None:
    """0.0.0.0/0 reaches ports 80 and 443 of the load balancer, nothing else."""
    for template, name, props in resources_of("AWS::EC2::SecurityGroup"):
        for rule in props.get("SecurityGroupIngress", []):
            if rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0":
                assert name == "LoadBalancerSecurityGroup" and rule["FromPort"] in {80, 443}, (template, name)


# IAM ----------------------------------------------------------------------------------------

# Actions AWS authorises on no resource at all: "*" is the only Resource it accepts.
RESOURCELESS_ACTIONS = {"ecr:GetAuthorizationToken"}


def policy_statements() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for kind in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for template, name, props in resources_of(kind):
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
            if "PolicyDocument" in props:
                documents.append(props["PolicyDocument"])
            for document in documents:
                found += [(template, name, statement) for statement in document["Statement"]]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_role_is_least_privilege() -> None:
    """No wildcard action; "*" as a resource only for actions that take no resource; no managed admin policy."""
    statements = policy_statements()
    assert len(statements) >= 8
    for template, name, statement in statements:
        assert statement["Effect"] == "Allow", (template, name)
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), (template, name, actions)
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= RESOURCELESS_ACTIONS, (template, name, actions)
    for template, name, props in resources_of("AWS::IAM::Role"):
        assert not props.get("ManagedPolicyArns"), (template, name)


def test_the_execution_role_reads_exactly_the_secrets_the_task_gets() -> None:
    """ECS injects DJANGO_SECRET_KEY, REDIS_PASSWORD and the uploads distribution's signing
    key, and may read those secrets only. The database password rotates, so the task role
    reads it at run time (DATABASE_PASSWORD_SECRET names it), and reads nothing else."""
    secrets = {s["Name"]: s["ValueFrom"] for s in task_container()["Secrets"]}
    assert set(secrets) == {"DJANGO_SECRET_KEY", "REDIS_PASSWORD", "CHAT_UPLOADS_CDN_PRIVATE_KEY"}
    (read,) = [s for _, name, s in policy_statements() if name == "ExecutionRole" and s["Sid"] == "ReadTaskSecrets"]
    assert read["Resource"] == [
        {"Ref": "DjangoSecretKey"},
        {"Ref": "RedisAuthToken"},
        {"Ref": "UploadsCdnPrivateKeySecretArn"},
    ]
    database_secret = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
    assert task_environment()["DATABASE_PASSWORD_SECRET"] == database_secret
    (read,) = [s for _, name, s in policy_statements() if name == "DatabaseSecretPolicy"]
    assert (read["Action"], read["Resource"]) == ("secretsmanager:GetSecretValue", database_secret)
    # Nothing secret travels as a plain environment value (the two *_SECRET values are ARNs).
    for name, value in task_environment().items():
        if re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE", name) and name not in {
            "AUTH_SIGNING_KEYS_SECRET",
            "DATABASE_PASSWORD_SECRET",
        }:
            pytest.fail(f"{name} is a plain environment value: {value!r}")
    assert ":password@" not in json.dumps(task_environment())


# Logs ---------------------------------------------------------------------------------------


def test_every_log_group_has_retention_and_the_task_logs_to_one() -> None:
    """Each log group expires its events; the task's awslogs group is the main stack's, which does."""
    groups = resources_of("AWS::Logs::LogGroup")
    assert groups
    for template, name, props in groups:
        assert props.get("RetentionInDays", 0) > 0, (template, name)
    options = task_container()["LogConfiguration"]["Options"]
    assert options["awslogs-group"] == {"Fn::ImportValue": {"Fn::Sub": "${MainStackName}-AppLogGroupName"}}


# The service --------------------------------------------------------------------------------


def test_the_stop_timeout_and_the_deregistration_delay_fit_the_drain() -> None:
    """The drain ends inside the deregistration delay; a SIGTERM's short drain ends inside the stop timeout."""
    group = FLEET_RESOURCES["TargetGroup"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    drain_window = float(task_environment()["CHAT_DRAIN_SECONDS"])
    ecs_poll = 2.0  # the drain begins within one task-metadata poll of ECS deciding to stop
    # A drain ends with two bounded waits: for the clients to answer, then for the silent ones to be cleaned up.
    assert drain_window + ecs_poll + 2 * GOING_AWAY_WAIT_SECONDS < delay
    stop = task_container()["StopTimeout"]
    assert 5.0 + 2 * GOING_AWAY_WAIT_SECONDS < stop <= 120  # CHAT_STOP_DRAIN_SECONDS's default; Fargate's limit
    assert settings.CHAT_STOP_REQUEST_SECONDS < stop  # the wait for HTTP requests, alongside the drain
    assert group["TargetType"] == "ip" and group["HealthCheckPath"] == "/healthz"
    deployment = FLEET_RESOURCES["Service"]["Properties"]["DeploymentConfiguration"]
    assert deployment["MinimumHealthyPercent"] == 100  # new tasks serve before old ones drain
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_autoscaling_tracks_cpu_and_the_sockets_the_app_reports() -> None:
    """Two target-tracking policies: CPU, and the app's own open-socket gauge averaged over tasks."""
    policies = {
        name: r["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for name, r in FLEET_RESOURCES.items()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    }
    assert set(policies) == {"CpuScaling", "SocketScaling"}
    cpu = policies["CpuScaling"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert cpu == "ECSServiceAverageCPUUtilization"
    sockets = policies["SocketScaling"]["CustomizedMetricSpecification"]
    assert sockets["MetricName"] == emf.emf_name(chat_metrics.CONNECTIONS_OPEN._name)
    assert sockets["Dimensions"] == [{"Name": "Service", "Value": {"Ref": "ServiceName"}}]
    assert task_environment()["METRICS_EMF"] == "1"
    assert task_environment()["METRICS_EMF_SERVICE"] == {"Ref": "ServiceName"}


def test_the_fleet_imports_only_what_the_main_stack_exports() -> None:
    """Every Fn::ImportValue names an output the main stack exports under its stack name."""
    text = json.dumps(FLEET)
    imported = set(re.findall(r'"Fn::ImportValue": \{"Fn::Sub": "\$\{MainStackName\}-(\w+)"\}', text))
    main = TEMPLATES["chatsite.yaml"]["Outputs"]
    exported = {
        name
        for name, output in main.items()
        if output.get("Export") == {"Name": {"Fn::Sub": "${AWS::StackName}-" + name}} and "Condition" not in output
    }
    assert imported and imported <= exported, imported - exported


def _placeholder(value: Any) -> str:
    """A stand-in for a value CloudFormation fills in at deploy time."""
    if isinstance(value, str):
        return value
    text = json.dumps(value)
    if "DomainName" in text:
        return "chat.example.com"
    if "Database.Endpoint" in text:
        return "postgres://chatsite@db.internal:5432/chatsite?sslmode=verify-full&sslrootcert=/x.pem&connect_timeout=5"
    if "Redis.PrimaryEndPoint" in text:
        return "rediss://redis.internal:6379/0"
    return "placeholder"


def test_the_task_environment_is_a_valid_production_configuration(tmp_path: Path) -> None:
    """The task's variables (with its secrets filled in) pass `check --deploy`, and each is one the app reads."""
    env = {k: _placeholder(v) for k, v in task_environment().items() if "Fn::If" not in json.dumps(v)}
    env.update(COGNITO_REGION="us-east-1", COGNITO_USER_POOL_ID="us-east-1_example", COGNITO_APP_CLIENT_ID="c")
    env.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(48), REDIS_PASSWORD="t" * 64)
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    env["CHAT_UPLOADS_CDN_PRIVATE_KEY"] = signing_key.private_bytes(
        Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
    ).decode()
    assert set(env) - variables_read_by_the_app() == set()
    from deploy.tests.conftest import clean_env

    result = manage(clean_env(CHATSITE_DATA_DIR=str(tmp_path), **env), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_carries_the_ca_bundle_the_database_url_names() -> None:
    """verify-full needs the RDS CA bundle at the path the task's DATABASE_URL gives."""
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
    assert re.search(rf"^ADD --chmod=0644 https://\S+ {re.escape(fleet.RDS_CA_BUNDLE)}$", dockerfile, re.MULTILINE)
    assert f"sslrootcert={fleet.RDS_CA_BUNDLE}" in json.dumps(task_environment()["DATABASE_URL"])


# Observability --------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["load-balancer.yaml", "fleet.yaml"])
def test_every_load_balancer_logs_its_requests_to_a_private_bucket(template: str) -> None:
    """Access logs on, to an encrypted bucket with public access blocked, expiring, writable by ELB only."""
    resources = TEMPLATES[template]["Resources"]
    attributes = {a["Key"]: a["Value"] for a in resources["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": "AccessLogBucket"}
    bucket = resources["AccessLogBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] > 0
    (allow,) = [
        s
        for s in resources["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert allow["Action"] == "s3:PutObject"
    assert "/alb/AWSLogs/${AWS::AccountId}/*" in allow["Resource"]["Fn::Sub"]


@pytest.mark.parametrize("template", ["load-balancer.yaml", "fleet.yaml"])
def test_operator_paths_are_off_the_public_listener(template: str) -> None:
    """/metrics, /readyz, /admin: 403 through the balancer except from the allow-list; never /healthz."""
    resources = TEMPLATES[template]["Resources"]
    deny = resources["OperatorPathsDeny"]["Properties"]
    paths = deny["Conditions"][0]["PathPatternConfig"]["Values"]
    assert set(paths) == {"/metrics*", "/readyz*", "/admin*"}
    assert deny["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "403"
    assert not any(re.fullmatch(p.replace("*", ".*"), "/healthz") for p in paths)
    allows = [r for name, r in resources.items() if name.startswith("OperatorPathAllow")]
    assert {a["Properties"]["Conditions"][0]["PathPatternConfig"]["Values"][0] for a in allows} == set(paths)
    for rule in allows:
        assert rule["Condition"] == "HasAdminAllowList"
        assert rule["Properties"]["Priority"] < deny["Priority"]
        assert rule["Properties"]["Conditions"][1]["Field"] == "source-ip"


def test_alarms_where_silence_means_down_treat_missing_data_as_breaching() -> None:
    """No healthy target and no metrics from any process alarm on silence too; the dashboard sums sockets."""
    main = TEMPLATES["chatsite.yaml"]["Resources"]
    silent = main["AppSilentAlarm"]["Properties"]
    assert silent["TreatMissingData"] == "breaching" and silent["ComparisonOperator"] == "LessThanThreshold"
    assert silent["MetricName"] == emf.emf_name(chat_metrics.CONNECTIONS_OPEN._name)
    for template in ("load-balancer.yaml", "fleet.yaml"):
        healthy = TEMPLATES[template]["Resources"]["NoHealthyTargetAlarm"]["Properties"]
        assert healthy["MetricName"] == "HealthyHostCount" and healthy["TreatMissingData"] == "breaching"
        assert (healthy["ComparisonOperator"], healthy["Threshold"]) == ("LessThanThreshold", 1)
    body = json.loads(stack.dashboard_body())
    (widget,) = [w for w in body["widgets"] if w["properties"]["metrics"][0][1] == "ConnectionsOpen"]
    assert widget["properties"]["stat"] == "Sum" and widget["properties"]["period"] == 60


def test_a_late_event_loop_alarms() -> None:
    """EventLoopLag, a gauge every process writes, alarms above half a second in 3 of 5 minutes."""
    lag = TEMPLATES["chatsite.yaml"]["Resources"]["EventLoopLagAlarm"]["Properties"]
    assert lag["MetricName"] == emf.emf_name(chat_metrics.EVENT_LOOP_LAG._name)
    assert (lag["Statistic"], lag["Threshold"], lag["DatapointsToAlarm"]) == ("Maximum", 0.5, 3)


def test_a_thread_pool_queue_that_does_not_drain_alarms() -> None:
    """ThreadPoolQueued, the gauge of calls waiting for a thread, alarms at 50 or more in 3 of 5 minutes."""
    queued = TEMPLATES["chatsite.yaml"]["Resources"]["ThreadPoolQueuedAlarm"]["Properties"]
    assert queued["MetricName"] == emf.emf_name(chat_metrics.THREAD_POOL_QUEUED._name)
    assert (queued["Statistic"], queued["Threshold"], queued["DatapointsToAlarm"]) == ("Maximum", 50, 3)
    assert queued["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
