"""The fleet template: network, PostgreSQL, Redis, secrets and Chatsite on ECS Fargate.

deploy/cloudformation/fleet.yaml is the second stack of the ECS path (deploy/README.md): it
takes the main stack's tables, app role, log group and alarm topic by import
(`<MainStackName>-<Output>`) and adds everything a running Chatsite needs besides them:

- a VPC over two availability zones: public subnets (the load balancer, one NAT gateway
  each) and private subnets (tasks, PostgreSQL, Redis), and a DynamoDB gateway endpoint so
  chat traffic to the tables never crosses a NAT gateway (nor pays for one);
- RDS PostgreSQL, Multi-AZ, encrypted, private, its master password managed by RDS in
  Secrets Manager;
- ElastiCache Redis, cluster mode disabled (channels-redis needs one keyspace per host),
  a replica in the other zone with automatic failover, TLS in transit, encryption at rest
  and an AUTH token from Secrets Manager;
- an ECR repository, an ECS cluster, the task definition (the image of deploy/Dockerfile,
  secrets injected from Secrets Manager, never in plain text), the service behind the load
  balancer of deploy/stack.py (target type ip), and target-tracking autoscaling on CPU and
  on open sockets per task.

The resource shapes the policy tests in deploy/tests/test_fleet.py hold it to: every data
store encrypted and private, every role least privilege, every log group with retention,
and an ECS stop timeout and a deregistration delay that fit the drain window.
"""

from __future__ import annotations

from typing import Any, Final

from deploy.cfn import getatt, ref, sub, tags

# Fargate gives a stopping task at most 120 s after SIGTERM. A drain begins when ECS decides
# to stop the task (chatsite/ops/drain.py) and ends inside the deregistration delay; the
# SIGTERM that follows finds no socket left, or drains what remains over
# CHAT_STOP_DRAIN_SECONDS (5 s), and meanwhile waits up to CHAT_STOP_REQUEST_SECONDS (10 s)
# for HTTP requests still running, before the stop timeout.
ECS_STOP_TIMEOUT_SECONDS: Final = 30
CONTAINER_NAME: Final = "chatsite"
APP_PORT: Final = 8000
VPC_CIDR: Final = "10.40.0.0/16"
SUBNETS: Final = {
    "PublicSubnetA": ("10.40.0.0/20", 0, True),
    "PublicSubnetB": ("10.40.16.0/20", 1, True),
    "PrivateSubnetA": ("10.40.128.0/20", 0, False),
    "PrivateSubnetB": ("10.40.144.0/20", 1, False),
}
PRIVATE_SUBNETS: Final = ["PrivateSubnetA", "PrivateSubnetB"]
PUBLIC_SUBNETS: Final = ["PublicSubnetA", "PublicSubnetB"]
POSTGRES_VERSION: Final = "17.9"
DATABASE_NAME: Final = "chatsite"
DATABASE_USER: Final = "chatsite"
# The RDS CA bundle the image carries (deploy/Dockerfile): verify-full checks the server's
# certificate and its name, so a task cannot be pointed at an impostor.
RDS_CA_BUNDLE: Final = "/etc/ssl/certs/rds-global-bundle.pem"


def imported(output: str) -> dict[str, Any]:
    """A value the main stack exports as <MainStackName>-<output>."""
    return {"Fn::ImportValue": sub("${MainStackName}-" + output)}


def parameters() -> dict[str, Any]:
    return {
        "MainStackName": {
            "Type": "String",
            "Default": "chatsite",
            "Description": "The stack of deploy/cloudformation/chatsite.yaml (tables, app role, log group, alarms).",
        },
        "DomainName": {
            "Type": "String",
            "Description": "The host name users open (DJANGO_ALLOWED_HOSTS), e.g. chat.example.com.",
        },
        "ImageTag": {
            "Type": "String",
            "Default": "bootstrap",
            "Description": "The image tag in the ECR repository to run (a release's git commit, say).",
        },
        "DesiredCount": {"Type": "Number", "Default": 2, "MinValue": 0, "Description": "Tasks at first deploy."},
        "MinTasks": {"Type": "Number", "Default": 2, "MinValue": 1},
        "MaxTasks": {"Type": "Number", "Default": 20, "MinValue": 1},
        "TaskCpu": {"Type": "String", "Default": "1024", "AllowedValues": ["512", "1024", "2048", "4096"]},
        "TaskMemory": {"Type": "String", "Default": "2048", "Description": "MiB, valid for TaskCpu on Fargate."},
        "CpuArchitecture": {
            "Type": "String",
            "Default": "ARM64",
            "AllowedValues": ["ARM64", "X86_64"],
            "Description": "The image's architecture (Graviton, ARM64, costs about a fifth less).",
        },
        "CpuTargetPercent": {"Type": "Number", "Default": 60, "MinValue": 10, "MaxValue": 90},
        "SocketsPerTaskTarget": {
            "Type": "Number",
            "Default": 2000,
            "MinValue": 100,
            "Description": "Scale out above this many open sockets per task on average (docs/operations.md).",
        },
        "DatabaseInstanceClass": {"Type": "String", "Default": "db.t4g.small"},
        "DatabaseStorageGiB": {"Type": "Number", "Default": 20, "MinValue": 20},
        "CacheNodeType": {"Type": "String", "Default": "cache.t4g.small"},
        "SigningKeysSecretArn": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: the built-in issuer's shared keys (manage.py signing_keys new). "
            "Empty: sign-in through the main stack's Cognito user pool.",
        },
        "CertificateArn": {
            "Type": "String",
            "Description": "ACM certificate for DomainName, in this region (the load balancer's HTTPS listener).",
        },
        # Shared files are downloaded from the main stack's uploads distribution (deploy/README.md
        # "Shared files"): its outputs, and the secret holding the private key it trusts.
        "UploadsCdnDomain": {
            "Type": "String",
            "AllowedPattern": "[a-z0-9][a-z0-9.-]*[a-z0-9]",
            "Description": "The main stack's UploadsDistributionDomainName (CHAT_UPLOADS_CDN_DOMAIN).",
        },
        "UploadsCdnKeyId": {
            "Type": "String",
            "AllowedPattern": "[A-Z0-9]+",
            "Description": "The main stack's UploadsSigningKeyId (CHAT_UPLOADS_CDN_KEY_ID).",
        },
        "UploadsCdnPrivateKeySecretArn": {
            "Type": "String",
            "AllowedPattern": "arn:.+:secretsmanager:.+",
            "Description": "A Secrets Manager secret whose text is the private key (PEM) of the main stack's "
            "UploadsPublicKeyPem (CHAT_UPLOADS_CDN_PRIVATE_KEY).",
        },
        "IdleTimeoutSeconds": {"Type": "Number", "Default": 120, "MinValue": 60, "MaxValue": 4000},
        "MetricsNamespace": {"Type": "String", "Default": "Chatsite"},
        "ServiceName": {"Type": "String", "Default": "chatsite", "Description": "METRICS_EMF_SERVICE."},
    }


def conditions() -> dict[str, Any]:
    return {
        "HasSigningKeys": {"Fn::Not": [{"Fn::Equals": [ref("SigningKeysSecretArn"), ""]}]},
        "UsesCognito": {"Fn::Equals": [ref("SigningKeysSecretArn"), ""]},
    }


# Network -----------------------------------------------------------------------------------


def network_resources() -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Vpc": {
            "Type": "AWS::EC2::VPC",
            "Properties": {
                "CidrBlock": VPC_CIDR,
                "EnableDnsSupport": True,
                "EnableDnsHostnames": True,
                "Tags": tags("vpc"),
            },
        },
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway", "Properties": {"Tags": tags("igw")}},
        "InternetGatewayAttachment": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": ref("Vpc"), "InternetGatewayId": ref("InternetGateway")},
        },
        "PublicRouteTable": {
            "Type": "AWS::EC2::RouteTable",
            "Properties": {"VpcId": ref("Vpc"), "Tags": tags("public")},
        },
        "PublicDefaultRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "InternetGatewayAttachment",
            "Properties": {
                "RouteTableId": ref("PublicRouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": ref("InternetGateway"),
            },
        },
        # Chat traffic to DynamoDB stays on AWS's network and skips the NAT gateways (which
        # charge per GB); the endpoint admits only Chatsite's tables.
        "DynamoDbEndpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": ref("Vpc"),
                "VpcEndpointType": "Gateway",
                "ServiceName": sub("com.amazonaws.${AWS::Region}.dynamodb"),
                "RouteTableIds": [ref(f"PrivateRouteTable{zone}") for zone in "AB"],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ChatsiteTablesOnly",
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "dynamodb:*",
                            "Resource": _table_arns(),
                        }
                    ],
                },
            },
        },
    }
    for name, (cidr, zone_index, public) in SUBNETS.items():
        resources[name] = {
            "Type": "AWS::EC2::Subnet",
            "Properties": {
                "VpcId": ref("Vpc"),
                "CidrBlock": cidr,
                "AvailabilityZone": {"Fn::Select": [zone_index, {"Fn::GetAZs": ""}]},
                "MapPublicIpOnLaunch": False,
                "Tags": tags(name),
            },
        }
        zone = name[-1]
        table = "PublicRouteTable" if public else f"PrivateRouteTable{zone}"
        resources[f"{name}RouteTableAssociation"] = {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {"SubnetId": ref(name), "RouteTableId": ref(table)},
        }
    for zone in "AB":
        # One NAT gateway per zone: tasks in a zone keep reaching ECR, Secrets Manager and
        # Cognito when the other zone is down.
        resources[f"NatAddress{zone}"] = {
            "Type": "AWS::EC2::EIP",
            "DependsOn": "InternetGatewayAttachment",
            "Properties": {"Domain": "vpc", "Tags": tags(f"nat-{zone}")},
        }
        resources[f"NatGateway{zone}"] = {
            "Type": "AWS::EC2::NatGateway",
            "Properties": {
                "AllocationId": getatt(f"NatAddress{zone}", "AllocationId"),
                "SubnetId": ref(f"PublicSubnet{zone}"),
                "Tags": tags(f"nat-{zone}"),
            },
        }
        resources[f"PrivateRouteTable{zone}"] = {
            "Type": "AWS::EC2::RouteTable",
            "Properties": {"VpcId": ref("Vpc"), "Tags": tags(f"private-{zone}")},
        }
        resources[f"PrivateDefaultRoute{zone}"] = {
            "Type": "AWS::EC2::Route",
            "Properties": {
                "RouteTableId": ref(f"PrivateRouteTable{zone}"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "NatGatewayId": ref(f"NatGateway{zone}"),
            },
        }
    return resources


def _table_arns() -> list[Any]:
    arns: list[Any] = []
    for output in ("ConnectionsTableName", "MessagesTableName", "RoomsTableName"):
        table = {
            "Fn::Sub": [
                "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}",
                {"T": imported(output)},
            ]
        }
        index = {
            "Fn::Sub": [
                "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}/index/*",
                {"T": imported(output)},
            ]
        }
        arns += [table, index]
    return arns


# Data stores ---------------------------------------------------------------------------------


def _ingress_from_app(port: int, description: str) -> dict[str, Any]:
    return {
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "SourceSecurityGroupId": ref("AppSecurityGroup"),
        "Description": description,
    }


def data_resources() -> dict[str, Any]:
    return {
        "DatabaseSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Chatsite PostgreSQL: the app tasks only",
                "VpcId": ref("Vpc"),
                "SecurityGroupIngress": [_ingress_from_app(5432, "daphne tasks")],
                "Tags": tags("database"),
            },
        },
        "DatabaseSubnetGroup": {
            "Type": "AWS::RDS::DBSubnetGroup",
            "Properties": {
                "DBSubnetGroupDescription": "Chatsite PostgreSQL: private subnets in two zones",
                "SubnetIds": [ref(name) for name in PRIVATE_SUBNETS],
                "Tags": tags("database"),
            },
        },
        "Database": {
            "Type": "AWS::RDS::DBInstance",
            # Accounts and sessions: a snapshot is taken if the stack deletes or replaces it.
            "DeletionPolicy": "Snapshot",
            "UpdateReplacePolicy": "Snapshot",
            "Properties": {
                "Engine": "postgres",
                # A minor version cfn-lint knows to be current; minor upgrades apply themselves.
                "EngineVersion": POSTGRES_VERSION,
                "DBInstanceClass": ref("DatabaseInstanceClass"),
                "AllocatedStorage": ref("DatabaseStorageGiB"),
                "MaxAllocatedStorage": 200,
                "StorageType": "gp3",
                "StorageEncrypted": True,
                "MultiAZ": True,
                "PubliclyAccessible": False,
                "DBName": DATABASE_NAME,
                "MasterUsername": DATABASE_USER,
                # RDS keeps the password in Secrets Manager and rotates it (every 7 days);
                # the app reads it from there when a connection opens, and again when a login
                # is refused (DATABASE_PASSWORD_SECRET), so a rotation needs no restart.
                "ManageMasterUserPassword": True,
                "DBSubnetGroupName": ref("DatabaseSubnetGroup"),
                "VPCSecurityGroups": [ref("DatabaseSecurityGroup")],
                "BackupRetentionPeriod": 7,
                "CopyTagsToSnapshot": True,
                "DeletionProtection": True,
                "AutoMinorVersionUpgrade": True,
                "EnableCloudwatchLogsExports": ["postgresql"],
                "Tags": tags("database"),
            },
        },
        "RedisSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Chatsite Redis: the app tasks only",
                "VpcId": ref("Vpc"),
                "SecurityGroupIngress": [_ingress_from_app(6379, "daphne tasks")],
                "Tags": tags("redis"),
            },
        },
        "RedisSubnetGroup": {
            "Type": "AWS::ElastiCache::SubnetGroup",
            "Properties": {
                "Description": "Chatsite Redis: private subnets in two zones",
                "SubnetIds": [ref(name) for name in PRIVATE_SUBNETS],
            },
        },
        # ElastiCache's AUTH token: 16-128 printable characters without @, " or /.
        "RedisAuthToken": {
            "Type": "AWS::SecretsManager::Secret",
            # Made again with the cluster it opens; nothing else holds it.
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "Description": "Chatsite Redis AUTH token (REDIS_PASSWORD)",
                "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
                "Tags": tags("redis-auth"),
            },
        },
        "Redis": {
            "Type": "AWS::ElastiCache::ReplicationGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "ReplicationGroupDescription": "Chatsite channel layer (pub/sub) and rate limits",
                "Engine": "redis",
                "EngineVersion": "7.1",
                "CacheNodeType": ref("CacheNodeType"),
                # Cluster mode disabled: one primary and a replica in the other zone, promoted
                # automatically; the Redis watchdog (chat/connections.py) rejoins every
                # socket after a failover.
                "NumCacheClusters": 2,
                "AutomaticFailoverEnabled": True,
                "MultiAZEnabled": True,
                "TransitEncryptionEnabled": True,
                "AtRestEncryptionEnabled": True,
                "AuthToken": sub("{{resolve:secretsmanager:${RedisAuthToken}}}"),
                "Port": 6379,
                "CacheSubnetGroupName": ref("RedisSubnetGroup"),
                "SecurityGroupIds": [ref("RedisSecurityGroup")],
                "SnapshotRetentionLimit": 1,
                "AutoMinorVersionUpgrade": True,
                "Tags": tags("redis"),
            },
        },
        "DjangoSecretKey": {
            "Type": "AWS::SecretsManager::Secret",
            # A new key would sign every user out: kept if the stack goes.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": "Chatsite DJANGO_SECRET_KEY",
                "GenerateSecretString": {"PasswordLength": 64, "ExcludeCharacters": "\"'\\`$"},
                "Tags": tags("django-secret-key"),
            },
        },
    }


# ECS -----------------------------------------------------------------------------------------


def _environment() -> list[dict[str, Any]]:
    values: dict[str, Any] = {
        "CHATSITE_ENV": "production",
        "DJANGO_ALLOWED_HOSTS": ref("DomainName"),
        "CHAT_STORAGE_BACKEND": "dynamodb",
        "DYNAMODB_CONNECTIONS_TABLE": imported("ConnectionsTableName"),
        "DYNAMODB_MESSAGES_TABLE": imported("MessagesTableName"),
        "DYNAMODB_ROOMS_TABLE": imported("RoomsTableName"),
        "CHAT_UPLOADS_BUCKET": imported("UploadsBucketName"),
        "CHAT_UPLOADS_CDN_DOMAIN": ref("UploadsCdnDomain"),
        "CHAT_UPLOADS_CDN_KEY_ID": ref("UploadsCdnKeyId"),
        "AWS_REGION": ref("AWS::Region"),
        # The password comes from RDS's own secret, read at run time (DATABASE_PASSWORD_SECRET:
        # it rotates); TLS with the server's certificate and name verified against the CA
        # bundle in the image.
        "DATABASE_URL": sub(
            f"postgres://{DATABASE_USER}@${{Database.Endpoint.Address}}:${{Database.Endpoint.Port}}/{DATABASE_NAME}"
            f"?sslmode=verify-full&sslrootcert={RDS_CA_BUNDLE}&connect_timeout=5"
        ),
        "DATABASE_PASSWORD_SECRET": getatt("Database", "MasterUserSecret.SecretArn"),
        "REDIS_URL": sub("rediss://${Redis.PrimaryEndPoint.Address}:${Redis.PrimaryEndPoint.Port}/0"),
        "METRICS_EMF": "1",
        "METRICS_EMF_NAMESPACE": ref("MetricsNamespace"),
        "METRICS_EMF_SERVICE": ref("ServiceName"),
        "CHAT_DRAIN_SECONDS": "20",
        "AUTH_SIGNING_KEYS_SECRET": {"Fn::If": ["HasSigningKeys", ref("SigningKeysSecretArn"), ref("AWS::NoValue")]},
        "COGNITO_REGION": {"Fn::If": ["UsesCognito", ref("AWS::Region"), ref("AWS::NoValue")]},
        "COGNITO_USER_POOL_ID": {"Fn::If": ["UsesCognito", imported("UserPoolId"), ref("AWS::NoValue")]},
        "COGNITO_APP_CLIENT_ID": {"Fn::If": ["UsesCognito", imported("UserPoolClientId"), ref("AWS::NoValue")]},
    }
    return [{"Name": name, "Value": value} for name, value in values.items()]


def _secrets() -> list[dict[str, Any]]:
    """Injected by ECS at task start from Secrets Manager (the execution role reads them)."""
    return [
        {"Name": "DJANGO_SECRET_KEY", "ValueFrom": ref("DjangoSecretKey")},
        {"Name": "REDIS_PASSWORD", "ValueFrom": ref("RedisAuthToken")},
        {"Name": "CHAT_UPLOADS_CDN_PRIVATE_KEY", "ValueFrom": ref("UploadsCdnPrivateKeySecretArn")},
    ]


def ecs_resources() -> dict[str, Any]:
    log_group_arn = {
        "Fn::Sub": [
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${G}:*",
            {"G": imported("AppLogGroupName")},
        ]
    }
    return {
        "Repository": {
            "Type": "AWS::ECR::Repository",
            "Properties": {
                # A tag names one image forever: a rollback runs exactly what ran before.
                "ImageTagMutability": "IMMUTABLE",
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "EncryptionConfiguration": {"EncryptionType": "AES256"},
                "LifecyclePolicy": {
                    "LifecyclePolicyText": (
                        '{"rules": [{"rulePriority": 1, "description": "keep the last 30 images",'
                        ' "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30},'
                        ' "action": {"type": "expire"}}]}'
                    )
                },
                "Tags": tags("images"),
            },
        },
        "Cluster": {
            "Type": "AWS::ECS::Cluster",
            "Properties": {
                "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
                "Tags": tags("cluster"),
            },
        },
        "ExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "ECS starting a Chatsite task: pull its image, read its secrets, write its logs.",
                "AssumeRolePolicyDocument": _trust("ecs-tasks.amazonaws.com"),
                "Policies": [
                    {
                        "PolicyName": "chatsite-task-start",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    # ECR's sign-in has no resource: AWS accepts only "*" here.
                                    "Sid": "EcrSignIn",
                                    "Effect": "Allow",
                                    "Action": "ecr:GetAuthorizationToken",
                                    "Resource": "*",
                                },
                                {
                                    "Sid": "PullImage",
                                    "Effect": "Allow",
                                    "Action": [
                                        "ecr:BatchCheckLayerAvailability",
                                        "ecr:BatchGetImage",
                                        "ecr:GetDownloadUrlForLayer",
                                    ],
                                    "Resource": getatt("Repository", "Arn"),
                                },
                                {
                                    "Sid": "ReadTaskSecrets",
                                    "Effect": "Allow",
                                    "Action": "secretsmanager:GetSecretValue",
                                    "Resource": [
                                        ref("DjangoSecretKey"),
                                        ref("RedisAuthToken"),
                                        ref("UploadsCdnPrivateKeySecretArn"),
                                    ],
                                },
                                {
                                    "Sid": "WriteTaskLogs",
                                    "Effect": "Allow",
                                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                    "Resource": log_group_arn,
                                },
                            ],
                        },
                    }
                ],
                "Tags": tags("execution"),
            },
        },
        # The task role is the main stack's AppRole (its tables and log group); here it may
        # also read the database's password, which RDS rotates, and, on the built-in issuer,
        # the shared signing keys; nothing else.
        "DatabaseSecretPolicy": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "chatsite-database-secret",
                "Roles": [imported("AppRoleName")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ReadDatabasePassword",
                            "Effect": "Allow",
                            "Action": "secretsmanager:GetSecretValue",
                            "Resource": getatt("Database", "MasterUserSecret.SecretArn"),
                        }
                    ],
                },
            },
        },
        "SigningKeysPolicy": {
            "Type": "AWS::IAM::Policy",
            "Condition": "HasSigningKeys",
            "Properties": {
                "PolicyName": "chatsite-signing-keys",
                "Roles": [imported("AppRoleName")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ReadSigningKeys",
                            "Effect": "Allow",
                            "Action": "secretsmanager:GetSecretValue",
                            "Resource": ref("SigningKeysSecretArn"),
                        }
                    ],
                },
            },
        },
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": sub("${AWS::StackName}-chatsite"),
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": ref("TaskCpu"),
                "Memory": ref("TaskMemory"),
                "RuntimePlatform": {"CpuArchitecture": ref("CpuArchitecture"), "OperatingSystemFamily": "LINUX"},
                "ExecutionRoleArn": getatt("ExecutionRole", "Arn"),
                "TaskRoleArn": imported("AppRoleArn"),
                "ContainerDefinitions": [
                    {
                        "Name": CONTAINER_NAME,
                        "Image": sub("${Repository.RepositoryUri}:${ImageTag}"),
                        "Essential": True,
                        "PortMappings": [{"ContainerPort": APP_PORT, "Protocol": "tcp"}],
                        "Environment": _environment(),
                        "Secrets": _secrets(),
                        "StopTimeout": ECS_STOP_TIMEOUT_SECONDS,
                        # Every open WebSocket is a file descriptor.
                        "Ulimits": [{"Name": "nofile", "SoftLimit": 65536, "HardLimit": 65536}],
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {
                                "awslogs-group": imported("AppLogGroupName"),
                                "awslogs-region": ref("AWS::Region"),
                                "awslogs-stream-prefix": "chatsite",
                            },
                        },
                    }
                ],
                "Tags": tags("task"),
            },
        },
        "Service": {
            "Type": "AWS::ECS::Service",
            # The tasks read the database's password with the task role from their first request.
            "DependsOn": ["HttpsListener", "DatabaseSecretPolicy"],
            "Properties": {
                "Cluster": ref("Cluster"),
                "TaskDefinition": ref("TaskDefinition"),
                "LaunchType": "FARGATE",
                "DesiredCount": ref("DesiredCount"),
                # A rolling release: new tasks start and pass /healthz before old ones are
                # deregistered and drained; a release whose tasks never turn healthy is
                # rolled back by itself.
                "DeploymentConfiguration": {
                    "MinimumHealthyPercent": 100,
                    "MaximumPercent": 200,
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                },
                "HealthCheckGracePeriodSeconds": 30,
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "AssignPublicIp": "DISABLED",
                        "Subnets": [ref(name) for name in PRIVATE_SUBNETS],
                        "SecurityGroups": [ref("AppSecurityGroup")],
                    }
                },
                "LoadBalancers": [
                    {"ContainerName": CONTAINER_NAME, "ContainerPort": APP_PORT, "TargetGroupArn": ref("TargetGroup")}
                ],
                "PropagateTags": "SERVICE",
                "Tags": tags("service"),
            },
        },
        "ScalableTarget": {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": sub("service/${Cluster}/${Service.Name}"),
                "MinCapacity": ref("MinTasks"),
                "MaxCapacity": ref("MaxTasks"),
            },
        },
        "CpuScaling": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": sub("${AWS::StackName}-cpu"),
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": ref("ScalableTarget"),
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": ref("CpuTargetPercent"),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
                    "ScaleOutCooldown": 60,
                    # Scaling in drains sockets onto the other tasks: slowly.
                    "ScaleInCooldown": 600,
                },
            },
        },
        "SocketScaling": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": sub("${AWS::StackName}-sockets"),
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": ref("ScalableTarget"),
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": ref("SocketsPerTaskTarget"),
                    # The app's gauge of open sockets (chat/metrics.py, written as EMF), one
                    # process per task: its average over the tasks is sockets per task.
                    "CustomizedMetricSpecification": {
                        "Namespace": ref("MetricsNamespace"),
                        "MetricName": "ConnectionsOpen",
                        "Dimensions": [{"Name": "Service", "Value": ref("ServiceName")}],
                        "Statistic": "Average",
                    },
                    "ScaleOutCooldown": 60,
                    "ScaleInCooldown": 600,
                },
            },
        },
    }


def _trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def outputs() -> dict[str, Any]:
    return {
        "LoadBalancerDnsName": {
            "Description": "Point DomainName here (an alias record)",
            "Value": getatt("LoadBalancer", "DNSName"),
        },
        "RepositoryUri": {
            "Description": "docker push here (tag = ImageTag)",
            "Value": getatt("Repository", "RepositoryUri"),
        },
        "ClusterName": {"Description": "aws ecs ... --cluster", "Value": ref("Cluster")},
        "ServiceName": {"Description": "aws ecs update-service --service", "Value": getatt("Service", "Name")},
        "TaskDefinitionArn": {"Description": "aws ecs run-task (migrations)", "Value": ref("TaskDefinition")},
        "PrivateSubnetIds": {
            "Description": "run-task --network-configuration subnets",
            "Value": {"Fn::Join": [",", [ref(name) for name in PRIVATE_SUBNETS]]},
        },
        "AppSecurityGroupId": {"Description": "run-task security group", "Value": ref("AppSecurityGroup")},
        "DatabaseEndpoint": {
            "Description": "PostgreSQL host (private)",
            "Value": getatt("Database", "Endpoint.Address"),
        },
        "RedisEndpoint": {
            "Description": "Redis primary (private, TLS)",
            "Value": getatt("Redis", "PrimaryEndPoint.Address"),
        },
        "TargetGroupArn": {"Description": "The tasks' target group", "Value": ref("TargetGroup")},
    }


def _swap_refs(node: Any, replacements: dict[str, Any]) -> Any:
    """The load balancer's resources with their VPC parameters replaced by this stack's own."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in replacements:
            return replacements[node["Ref"]]
        return {key: _swap_refs(value, replacements) for key, value in node.items()}
    if isinstance(node, list):
        return [_swap_refs(value, replacements) for value in node]
    return node


def build_fleet_template(load_balancer: dict[str, Any]) -> dict[str, Any]:
    """The fleet stack; `load_balancer` is deploy.stack's load balancer resources."""
    balancer = _swap_refs(
        load_balancer,
        {
            "VpcId": ref("Vpc"),
            "PublicSubnetIds": [ref(name) for name in PUBLIC_SUBNETS],
            "TargetType": "ip",
            "AlarmTopicArn": imported("AlarmTopicArn"),
        },
    )
    resources: dict[str, Any] = {}
    for part in (network_resources(), data_resources(), ecs_resources(), balancer):
        overlap = resources.keys() & part.keys()
        assert not overlap, f"duplicate resources {overlap}"
        resources.update(part)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Chatsite on ECS Fargate: VPC, PostgreSQL, Redis, secrets, the service and its load balancer.",
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources,
        "Outputs": outputs(),
    }
