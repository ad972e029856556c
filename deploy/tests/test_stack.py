"""The CloudFormation templates: valid, generated from the one schema, least privilege, and working on moto."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from django.conf import settings

from chat import metrics as chat_metrics
from chat.storage import dynamodb, schema
from chat.storage.base import NewMessage
from chatsite.ops import emf, health
from deploy import stack
from uploads.rules import DOWNLOAD_HEADERS

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))
TEMPLATE = stack.build_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


# The template itself ----------------------------------------------------------------------


def test_templates_pass_cfn_lint() -> None:
    """cfn-lint finds nothing in either template, informational checks included."""
    paths = [str(p) for p in sorted((ROOT / "deploy" / "cloudformation").glob("*.yaml"))]
    assert len(paths) == len(stack.TEMPLATES) == 3
    result = subprocess.run(
        [CFN_LINT, "--include-checks", "I", "--", *paths], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_templates_are_what_the_generator_writes() -> None:
    """deploy/cloudformation/*.yaml are up to date with deploy/stack.py and the schema."""
    assert stack.main(["--check"]) == 0, "run: python -m deploy.stack"
    committed = yaml.safe_load((ROOT / "deploy" / "cloudformation" / "chatsite.yaml").read_text())
    assert committed == json.loads(json.dumps(TEMPLATE))


def test_every_schema_table_is_in_the_template_exactly() -> None:
    """Each table of chat/storage/schema.py has its keys, indexes and TTL, plus PITR and encryption."""
    tables = of_type("AWS::DynamoDB::Table")
    assert set(tables) == {stack.table_resource_name(t) for t in schema.TABLES}
    for table in schema.TABLES:
        resource = tables[stack.table_resource_name(table)]
        properties = resource["Properties"]
        request = schema.create_table_request(table, "ignored")
        for key in ("KeySchema", "AttributeDefinitions", "BillingMode"):
            assert properties[key] == request[key], (table.logical_name, key)
        assert properties.get("GlobalSecondaryIndexes", []) == request.get("GlobalSecondaryIndexes", [])
        if table.ttl_attribute:
            assert properties["TimeToLiveSpecification"] == {"AttributeName": table.ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in properties
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def _indexes(template: dict[str, Any]) -> dict[str, set[str]]:
    return {
        name: {i["IndexName"] for i in resource["Properties"].get("GlobalSecondaryIndexes", [])}
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


def test_an_upgrade_adding_two_indexes_to_one_table_has_a_first_step_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first of deploy/README.md's two deploys: without the held-back index and its keys; it lints."""
    assert stack.main(["--without-index", schema.ROOM_CREATOR_INDEX]) == 0
    first = yaml.safe_load(capsys.readouterr().out)
    full, step = _indexes(TEMPLATE), _indexes(first)
    rooms = stack.table_resource_name(schema.ROOMS)
    assert full[rooms] - step[rooms] == {schema.ROOM_CREATOR_INDEX}
    assert {name: indexes for name, indexes in step.items() if name != rooms} == {
        name: indexes for name, indexes in full.items() if name != rooms
    }
    # CloudFormation refuses attribute definitions no key uses: createdBy and createdAt go too.
    defined = {a["AttributeName"] for a in first["Resources"][rooms]["Properties"]["AttributeDefinitions"]}
    assert schema.CREATED_BY not in defined and schema.CREATED_AT not in defined
    assert schema.PUBLIC_LISTING in defined
    path = tmp_path / "step1.yaml"
    path.write_text(stack.render(first))
    result = subprocess.run([CFN_LINT, "--", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_holding_back_an_unknown_index_names_the_real_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        stack.main(["--without-index", "RoomCreaterIndex"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "no such index: RoomCreaterIndex" in error and schema.ROOM_CREATOR_INDEX in error


def test_outputs_name_the_environment_variables_they_fill() -> None:
    """Each table output's description is the setting that names the table, as .env.example has it."""
    env_example = (ROOT / ".env.example").read_text()
    for table in schema.TABLES:
        output = TEMPLATE["Outputs"][f"{table.logical_name}TableName"]
        assert output["Description"] == table.setting
        assert table.setting in env_example


# Least privilege ---------------------------------------------------------------------------

# What each boto3 DynamoDB call needs from IAM; a transaction needs its items' actions.
CALL_ACTIONS = {
    "get_item": "GetItem",
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "query": "Query",
    "scan": "Scan",
    "batch_get_item": "BatchGetItem",
    "batch_write_item": "BatchWriteItem",
    "transact_get_items": "GetItem",
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def store_actions() -> set[str]:
    """The IAM actions the DynamoDB store's own calls need, read from its source."""
    tree = ast.parse((ROOT / "chat" / "storage" / "dynamodb.py").read_text())
    store = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DynamoDBStore")
    needed: set[str] = set()
    for node in ast.walk(store):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Attribute) and owner.attr == "client"):
            continue
        method = node.func.attr
        if method == "transact_write_items":
            keys = {
                k.value
                for d in ast.walk(node)
                if isinstance(d, ast.Dict)
                for k in d.keys
                if isinstance(k, ast.Constant)
            }
            needed |= {TRANSACT_ITEM_ACTIONS[k] for k in keys if k in TRANSACT_ITEM_ACTIONS}
        else:
            assert method in CALL_ACTIONS, f"DynamoDBStore calls {method}: add its IAM action to deploy/stack.py"
            needed.add(CALL_ACTIONS[method])
    return {f"dynamodb:{action}" for action in needed}


def app_statements() -> list[dict[str, Any]]:
    policies = RESOURCES["AppRole"]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_the_app_may_use_exactly_the_dynamodb_actions_its_store_calls() -> None:
    """The app role's DynamoDB actions equal what chat/storage/dynamodb.py calls: no more, no less."""
    statements = [s for s in app_statements() if any(a.startswith("dynamodb:") for a in s["Action"])]
    assert len(statements) == 1
    assert set(statements[0]["Action"]) == store_actions()


def test_the_app_may_touch_only_chatsites_tables_and_their_indexes() -> None:
    """Resources are the schema tables' ARNs (and /index/* where a table has indexes), never a wildcard."""
    [statement] = [s for s in app_statements() if s["Sid"] == "ChatTables"]
    expected: list[Any] = []
    for table in schema.TABLES:
        expected.append({"Fn::GetAtt": [stack.table_resource_name(table), "Arn"]})
        if table.indexes:
            expected.append({"Fn::Sub": f"${{{stack.table_resource_name(table)}.Arn}}/index/*"})
    assert statement["Resource"] == expected
    for s in app_statements():
        assert s["Effect"] == "Allow"
        assert "*" not in json.dumps(s["Action"]), s
        assert s["Resource"] != "*", s
    assert {a for s in app_statements() for a in s["Action"]} - store_actions() == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        *stack.APP_S3_OBJECT_ACTIONS,
        "s3:ListBucket",
    }


def test_shared_files_are_a_private_bucket_the_app_reaches_by_its_keys_only() -> None:
    """The uploads bucket (issue 18): private, encrypted, TLS only, CORS for the site's
    origins only, lifecycle rules by prefix; the app role gets object actions on its keys
    and ListBucket on it (a missing key is then a 404), nothing on any other bucket."""
    bucket = RESOURCES["UploadsBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    cors = bucket["CorsConfiguration"]["Fn::If"]
    assert cors[0] == "HasUploadOrigins" and cors[1]["CorsRules"][0]["AllowedOrigins"] == {"Ref": "UploadOrigins"}
    prefixes = {rule.get("Prefix"): rule.get("ExpirationInDays") for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert prefixes["files/"] == prefixes["thumbs/"] == 31 and prefixes["incoming/"] == 1
    policy = RESOURCES["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s.get("Sid") or s["Fn::If"][1]["Sid"] for s in policy] == ["TlsOnly", "UploadsDistributionReadsServedFiles"]
    s3 = {s["Sid"]: s for s in app_statements() if any(a.startswith("s3:") for a in s["Action"])}
    assert s3["SharedFiles"]["Resource"] == {"Fn::Sub": "${UploadsBucket.Arn}/*"}
    assert set(s3["SharedFiles"]["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert s3["SharedFilesMissingKeys"]["Resource"] == {"Fn::GetAtt": ["UploadsBucket", "Arn"]}
    assert set(s3) == {"SharedFiles", "SharedFilesMissingKeys"}


def test_shared_files_are_downloaded_through_their_own_distribution_with_nosniff() -> None:
    """S3 cannot add X-Content-Type-Options: the uploads distribution's response-headers
    policy adds it and the rest of what the site's own downloads carry; it serves signed
    URLs of the app's key only, caches nothing (a deleted file is gone at once), and reads
    files/ and thumbs/ only, through origin access control."""
    policy = RESOURCES["UploadsResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    assert security["ContentTypeOptions"] == {"Override": True}  # X-Content-Type-Options: nosniff
    assert DOWNLOAD_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert security["ContentSecurityPolicy"] == {
        "ContentSecurityPolicy": DOWNLOAD_HEADERS["Content-Security-Policy"],
        "Override": True,
    }
    assert security["ReferrerPolicy"] == {"ReferrerPolicy": DOWNLOAD_HEADERS["Referrer-Policy"], "Override": True}
    config = RESOURCES["UploadsDistribution"]["Properties"]["DistributionConfig"]
    behaviour = config["DefaultCacheBehavior"]
    assert "CacheBehaviors" not in config and behaviour["TargetOriginId"] == "uploads-bucket"
    assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "UploadsResponseHeadersPolicy"}
    assert behaviour["TrustedKeyGroups"] == [{"Ref": "UploadsKeyGroup"}]
    assert behaviour["CachePolicyId"] == stack.CACHING_DISABLED_POLICY_ID
    assert behaviour["ViewerProtocolPolicy"] == "https-only" and behaviour["AllowedMethods"] == ["GET", "HEAD"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["UploadsBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["UploadsOriginAccessControl", "Id"]}
    group = RESOURCES["UploadsKeyGroup"]["Properties"]["KeyGroupConfig"]
    assert group["Items"] == [{"Ref": "UploadsSigningKey"}]
    key = RESOURCES["UploadsSigningKey"]["Properties"]["PublicKeyConfig"]
    assert key["EncodedKey"] == {"Ref": "UploadsPublicKeyPem"}
    [allow] = [
        s["Fn::If"][1]
        for s in RESOURCES["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if "Fn::If" in s
    ]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == [
        {"Fn::Sub": "${UploadsBucket.Arn}/files/*"},
        {"Fn::Sub": "${UploadsBucket.Arn}/thumbs/*"},
    ]
    assert "${UploadsDistribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    made = ("UploadsSigningKey", "UploadsKeyGroup", "UploadsResponseHeadersPolicy", "UploadsOriginAccessControl")
    for name in (*made, "UploadsDistribution"):
        assert RESOURCES[name]["Condition"] == "HasUploadsDistribution"
    outputs = TEMPLATE["Outputs"]
    assert outputs["UploadsDistributionDomainName"]["Description"].startswith("CHAT_UPLOADS_CDN_DOMAIN")
    assert outputs["UploadsSigningKeyId"]["Description"].startswith("CHAT_UPLOADS_CDN_KEY_ID")


def test_the_static_push_may_write_only_its_bucket_and_invalidate_only_its_distribution() -> None:
    """The deploy policy names one bucket and one distribution."""
    statements = RESOURCES["StaticDeployPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    resources = json.dumps([s["Resource"] for s in statements])
    assert "StaticBucket" in resources and "StaticDistribution" in resources
    assert '"*"' not in resources
    assert {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])} == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "cloudfront:CreateInvalidation",
        "cloudfront:GetInvalidation",
    }


def test_the_bucket_is_private_and_read_only_through_its_distribution() -> None:
    """Public access is blocked; only CloudFront, signing for this distribution (OAC), may read."""
    bucket = RESOURCES["StaticBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    [allow] = [
        s
        for s in RESOURCES["StaticBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert "${StaticDistribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    origin = RESOURCES["StaticDistribution"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert origin["Id"] == "static-bucket"
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["StaticOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    oac = RESOURCES["StaticOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["SigningBehavior"], oac["SigningProtocol"]) == ("always", "sigv4")


def test_one_distribution_serves_the_app_from_s3_and_the_rest_from_the_load_balancer() -> None:
    """S3 answers at the root; /static/, /ws/, /api/, /accounts/, /admin/ go to the app, uncached but /static/."""
    config = RESOURCES["StaticDistribution"]["Properties"]["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "static-bucket"
    condition, app_origin, absent = config["Origins"][1]["Fn::If"]
    assert (condition, absent) == ("HasAppOrigin", {"Ref": "AWS::NoValue"})
    assert app_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]["Fn::If"][1]}
    assert set(behaviors) >= {"/static/*", "/ws/*", "/api/*", "/accounts/*", "/admin/*"}
    for path, behavior in behaviors.items():
        assert behavior["TargetOriginId"] == app_origin["Id"], path
        if path == "/static/*":
            assert behavior["CachePolicyId"] == {"Ref": "StaticCachePolicy"}
        else:
            assert behavior["CachePolicyId"] == stack.CACHING_DISABLED_POLICY_ID, path
            assert "POST" in behavior["AllowedMethods"], path
    # With the app behind it, the API's own 403 and 404 are never turned into index.html.
    assert config["CustomErrorResponses"]["Fn::If"][1] == {"Ref": "AWS::NoValue"}


# Monitoring --------------------------------------------------------------------------------


def emitted_metric_names() -> set[str]:
    """The metric names the EMF writer produces from chat.metrics' registry."""
    names = set()
    for family in chat_metrics.CONNECTIONS_OPEN.collect() + [
        f for m in vars(chat_metrics).values() if hasattr(m, "collect") and hasattr(m, "_name") for f in m.collect()
    ]:
        names.add(emf.emf_name(family.name))
        if family.type == "histogram":
            names.add(emf.emf_name(family.name) + "P99")  # the interval's p99 beside the mean
    return names


def referenced_app_metrics() -> set[str]:
    """Every metric of the app's namespace that the alarms and the dashboard read."""
    names: set[str] = set()
    for alarm in of_type("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties.get("Namespace") == {"Ref": "MetricsNamespace"}:
            names.add(properties["MetricName"])
        for query in properties.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == {"Ref": "MetricsNamespace"}:
                names.add(metric["MetricName"])
    body = json.loads(stack.dashboard_body())
    for widget in body["widgets"]:
        for row in widget["properties"]["metrics"]:
            if row[0] == "${MetricsNamespace}":
                names.add(row[1])
    return names


def test_alarms_and_dashboard_read_metrics_the_app_writes() -> None:
    """Every app metric an alarm or the dashboard reads is one the EMF writer emits."""
    referenced = referenced_app_metrics()
    assert referenced
    assert referenced <= emitted_metric_names(), referenced - emitted_metric_names()


def test_alarms_cover_error_rate_throttling_and_failed_connections() -> None:
    """The three alarms of the issue exist and watch the right signals, on every table for throttling."""
    alarms = of_type("AWS::CloudWatch::Alarm")
    rate = json.dumps(alarms["ErrorRateAlarm"]["Properties"]["Metrics"])
    assert "internal_error" in rate and "storage_unavailable" in rate and "MessagesStored" in rate
    throttle = alarms["ThrottlingAlarm"]["Properties"]["Metrics"]
    watched = {
        (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"])
        for q in throttle
        if "MetricStat" in q
    }
    assert watched == {
        (metric, stack.table_resource_name(t))
        for t in schema.TABLES
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
    }
    failed = alarms["FailedConnectionsAlarm"]["Properties"]
    assert (failed["MetricName"], failed["Dimensions"][1]) == ("Connections", {"Name": "Outcome", "Value": "failed"})
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


# The load balancer --------------------------------------------------------------------------


def test_the_load_balancer_fits_daphne() -> None:
    """Target checks hit /healthz; the idle timeout outlasts the 25 s heartbeat; a drain fits the
    deregistration delay, which beats systemd's stop."""
    lb = stack.build_load_balancer_template()
    group = lb["Resources"]["TargetGroup"]["Properties"]
    assert group["HealthCheckPath"] == health.HEALTH_PATH != health.READY_PATH
    assert group["Matcher"] == {"HttpCode": "200"}
    assert lb["Parameters"]["IdleTimeoutSeconds"]["Default"] > 25 * 2
    assert lb["Parameters"]["IdleTimeoutSeconds"]["MinValue"] > 25
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    unit = (ROOT / "deploy" / "systemd" / "chatsite@.service").read_text()
    stop = int(next(line.split("=")[1] for line in unit.splitlines() if line.startswith("TimeoutStopSec=")))
    assert int(attributes["deregistration_delay.timeout_seconds"]) < stop
    # The drain window, plus the balancer noticing a drain by its target check, fits the delay.
    noticed = group["HealthCheckIntervalSeconds"] * group["UnhealthyThresholdCount"]
    assert settings.CHAT_DRAIN_SECONDS + noticed <= int(attributes["deregistration_delay.timeout_seconds"])
    redirect = lb["Resources"]["HttpRedirectListener"]["Properties"]["DefaultActions"][0]
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"


# On moto ------------------------------------------------------------------------------------

# Resource types moto's CloudFormation creates; the rest (Cognito, CloudFront, alarms, bucket
# policy) are checked by structure above and by parity below.
MOTO_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::IAM::Role",
    "AWS::IAM::InstanceProfile",
    "AWS::Logs::LogGroup",
    "AWS::SNS::Topic",
    "AWS::CloudWatch::Dashboard",
}


def moto_stack_outputs(name: str) -> dict[str, str]:
    template = json.loads(json.dumps(TEMPLATE))
    template["Resources"] = {k: v for k, v in template["Resources"].items() if v["Type"] in MOTO_TYPES}
    kept = set(template["Resources"]) | {"AWS::Region"}
    template["Outputs"] = {
        k: v
        for k, v in template["Outputs"].items()
        if "Condition" not in v and (json.dumps(v["Value"]).split('"')[3] in kept)
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    deadline = time.monotonic() + 30
    while True:
        described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not described["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def table_shape(client: Any, name: str) -> dict[str, Any]:
    table = client.describe_table(TableName=name)["Table"]
    return {
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "Indexes": sorted(
            (i["IndexName"], json.dumps(i["KeySchema"]), i["Projection"]["ProjectionType"])
            for i in table.get("GlobalSecondaryIndexes", [])
        ),
        "BillingMode": table["BillingModeSummary"]["BillingMode"],
    }


def test_stack_tables_on_moto_equal_the_create_command_tables_and_serve_the_store(aws_env: dict[str, str]) -> None:
    """The stack's tables match `create_dynamodb_tables`' table for table, and the store reads and writes them."""
    name = f"chatsite-{uuid.uuid4().hex[:8]}"
    outputs = moto_stack_outputs(name)
    from_stack = schema.TableNames(
        connections=outputs["ConnectionsTableName"],
        messages=outputs["MessagesTableName"],
        rooms=outputs["RoomsTableName"],
    )
    client = dynamodb.make_client(region=aws_env["AWS_REGION"])
    from_command = schema.TableNames.with_prefix(f"cmd-{uuid.uuid4().hex[:8]}-")
    dynamodb.ensure_tables(client, from_command, poll_seconds=0.05)
    for table in schema.TABLES:
        assert table_shape(client, from_stack.of(table)) == table_shape(client, from_command.of(table)), table
    store = dynamodb.DynamoDBStore(client=client, tables=from_stack)
    now = datetime.now(UTC)
    store.ensure_room(room_id="general", name="General", created_by=None, now=now)
    new = NewMessage(
        room_id="general",
        user_id="u1",
        username="alice",
        text="hello",
        connection_id="c1",
        client_message_id="m1",
        timestamp=now,
        ttl_seconds=3600,
    )
    stored = store.append_message(new).message
    assert [m.text for m in store.messages_after(room_id="general", after_seq=0, limit=10, now=now)] == ["hello"]
    assert stored.seq == 1
    # The role moto created carries the template's policy.
    iam = boto3.client("iam")
    role = outputs["AppRoleArn"].rsplit("/", 1)[1]
    document = iam.get_role_policy(RoleName=role, PolicyName="chatsite-app")["PolicyDocument"]
    if isinstance(document, str):  # moto returns the document as a Python literal
        document = ast.literal_eval(document)
    [tables_statement] = [s for s in document["Statement"] if s["Sid"] == "ChatTables"]
    assert set(tables_statement["Action"]) == store_actions()
    arns = {client.describe_table(TableName=from_stack.of(t))["Table"]["TableArn"]: t for t in schema.TABLES}
    expected = set(arns) | {arn + "/index/*" for arn, t in arns.items() if t.indexes}
    assert set(tables_statement["Resource"]) == expected


def cognito_api_arguments() -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's user pool and app client as CreateUserPool / CreateUserPoolClient arguments."""
    pool = dict(RESOURCES["UserPool"]["Properties"])
    pool["PoolName"] = "chatsite-parity"
    del pool["UserPoolName"]
    enabled_mfas = pool.pop("EnabledMfas")
    client = {
        k: v
        for k, v in RESOURCES["UserPoolClient"]["Properties"].items()
        if not (isinstance(v, dict) and "Fn::If" in v) and k not in ("ClientName", "UserPoolId")
    }
    client["ClientName"] = "chatsite-parity-app"
    return {**pool, "_EnabledMfas": enabled_mfas}, client


def test_the_templates_user_pool_signs_users_in_on_moto(aws_env: dict[str, str]) -> None:
    """A pool and client made from the template's properties accept a sign-up and USER_PASSWORD_AUTH."""
    pool_args, client_args = cognito_api_arguments()
    pool_args.pop("_EnabledMfas")
    idp = boto3.client("cognito-idp")
    pool_id = idp.create_user_pool(**pool_args)["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(UserPoolId=pool_id, **client_args)["UserPoolClient"]["ClientId"]
    with pytest.raises(idp.exceptions.InvalidPasswordException):
        idp.sign_up(
            ClientId=client_id,
            Username="shortpw",
            Password="short1",
            UserAttributes=[{"Name": "email", "Value": "s@example.com"}],
        )
    idp.sign_up(
        ClientId=client_id,
        Username="alice",
        Password="a-long-passw0rd",
        UserAttributes=[{"Name": "email", "Value": "alice@example.com"}],
    )
    idp.admin_confirm_sign_up(UserPoolId=pool_id, Username="alice")
    tokens = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "a-long-passw0rd"},
    )["AuthenticationResult"]
    assert tokens["IdToken"].count(".") == 2 and tokens["RefreshToken"]


def test_every_port_the_readme_starts_and_registers_is_open_to_the_balancer() -> None:
    """The processes deploy/README.md starts (chatsite@PORT) and registers (Port=PORT) are reachable from the ALB."""
    lb = stack.build_load_balancer_template()
    (rule,) = lb["Resources"]["AppSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert rule["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"}
    readme = (ROOT / "deploy" / "README.md").read_text()
    unit = (ROOT / "deploy" / "systemd" / "chatsite@.service").read_text()
    started = {int(p) for p in re.findall(r"chatsite@(\d+)", readme + unit)}
    registered = {int(p) for p in re.findall(r"Port=(\d+)", readme)}
    assert started and registered <= started
    assert all(rule["FromPort"] <= port <= rule["ToPort"] for port in started), (started, rule)


def test_the_readme_builds_the_checkout_as_its_owner_not_root() -> None:
    """Every step of the EC2 path that writes the checkout runs as chatsite, so the next release can write it too."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    section = readme[readme.index("## 4a.") : readme.index("## 4b.")]
    writes = ("git clone", "git pull", "venv", "pip install", "npm ci", "npm run", "collectstatic", "migrate")
    lines = [line for line in section.splitlines() if any(w in line for w in writes) and not line.startswith("#")]
    assert any("git clone" in line for line in lines)
    for line in lines:
        if line.lstrip().startswith(("sudo", "(", ".venv", "cd", "git", "npm", "python")):
            assert line.startswith("sudo -u chatsite"), line
