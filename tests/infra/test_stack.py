"""Synthesis tests: what the stack creates, and the properties that make it safe."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from agent.domain.settings import ReloadingSettings
from functions.janitor.names import DLQ_SUFFIX
from infra.cdk.constants import EVENTBRIDGE_DETAIL_TYPES, JANITOR_HANDLER, ROOT, S3_EVENTS, Outputs
from tests.infra.synthesis import Template, synth

DEPLOYMENT_DOCS = ROOT / "docs" / "deployment.md"

# The variants a user can choose; each synthesises once per test run.
DEFAULT: dict[str, str] = {"fixedQueues": "2"}
EVENTBRIDGE = {"eventRoute": "eventbridge"}
EXISTING = {"bucketName": "their-models", "replicaRoleService": "ec2.amazonaws.com"}
EXISTING_EVENTBRIDGE = {"bucketName": "their-models", "eventRoute": "eventbridge"}
LOCALSTACK = {"functions": "false", "bucketVersioning": "true"}
VARIANTS = [
    pytest.param(DEFAULT, id="default"),
    pytest.param(EVENTBRIDGE, id="eventbridge"),
    pytest.param(EXISTING, id="existing-bucket"),
    pytest.param(LOCALSTACK, id="no-functions"),
]


def resources(template: Template, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def only(template: Template, kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.values()))


def statements(template: Template) -> list[dict[str, Any]]:
    """Every statement of every IAM, topic, queue and bucket policy in the template."""
    found = []
    for kind in (
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::S3::BucketPolicy",
    ):
        for resource in resources(template, kind).values():
            found.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    for role in resources(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", ()):
            found.extend(policy["PolicyDocument"]["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("context", VARIANTS)
def test_no_policy_allows_a_wildcard_action_or_resource(context: dict[str, str]) -> None:
    # GIVEN the synthesised stack (cdk-nag passed, or synth would have raised)
    template = synth(**context)
    # WHEN looking at every Allow statement
    allows = [statement for statement in statements(template) if statement["Effect"] == "Allow"]
    # THEN none allows `*` actions, `service:*`, or the bare `*` resource
    assert allows
    for statement in allows:
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), statement
        assert "*" not in as_list(statement.get("Resource", [])), statement


def test_created_bucket_is_encrypted_private_tls_only_and_notifies_the_topic_natively() -> None:
    template = synth(**DEFAULT)
    bucket = only(template, "AWS::S3::Bucket")
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert "VersioningConfiguration" not in properties
    denies = [s for s in statements(template) if s["Effect"] == "Deny" and "s3:*" in as_list(s["Action"])]
    assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # the notification filters: both event families, under the models prefix, to the topic
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    configurations = properties["NotificationConfiguration"]["TopicConfigurations"]
    assert [c["Event"] for c in configurations] == list(S3_EVENTS)
    for configuration in configurations:
        assert configuration["Topic"] == {"Ref": topic_id}
        assert configuration["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "models/"}]
    # natively, not through CDK's Lambda-backed custom resource, and after the topic policy
    assert not resources(template, "Custom::S3BucketNotifications")
    assert bucket["DependsOn"] == list(resources(template, "AWS::SNS::TopicPolicy"))


def test_import_mode_is_the_kept_bucket_alone_under_its_usual_logical_id() -> None:
    # GIVEN the usual stack, and the one `cdk import` is run with after `cdk destroy` kept the bucket
    usual = synth(**DEFAULT)
    importing = synth(**DEFAULT, importBucket="true")
    [(bucket_id, bucket)] = resources(importing, "AWS::S3::Bucket").items()
    # THEN the bucket has the logical id the next `cdk deploy` expects, and is kept on deletion
    assert bucket_id in resources(usual, "AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Retain"
    # AND the template refers to nothing but the bucket itself (CloudFormation imports it alone)
    text = json.dumps(importing.to_json()["Resources"])
    referenced = set(re.findall(r'"Ref": "([A-Za-z0-9]+)"', text)) | set(
        re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)"', text)
    )
    assert referenced <= {bucket_id}
    assert "DependsOn" not in bucket and "NotificationConfiguration" not in bucket["Properties"]
    assert set(importing.to_json()["Resources"]) <= {bucket_id, *resources(importing, "AWS::S3::BucketPolicy")}
    # AND the recovery documentation names that logical id
    assert bucket_id in DEPLOYMENT_DOCS.read_text()


KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({"bucketKmsKeyArn": KMS_KEY}, id="created-bucket"),
        pytest.param({**EXISTING, "bucketKmsKeyArn": KMS_KEY}, id="existing-bucket"),
    ],
)
def test_a_kms_key_lets_replicas_decrypt_through_s3_only(context: dict[str, str]) -> None:
    template = synth(**context)
    document = only(template, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    [decrypt] = [s for s in document["Statement"] if s.get("Sid") == "DecryptModels"]
    assert (decrypt["Effect"], decrypt["Action"], decrypt["Resource"]) == ("Allow", "kms:Decrypt", KMS_KEY)
    assert flat(decrypt["Condition"]["StringEquals"]["kms:ViaService"]) == "s3.<AWS::Region>.amazonaws.com"
    if "bucketName" not in context:
        encryption = only(template, "AWS::S3::Bucket")["Properties"]["BucketEncryption"]
        [rule] = encryption["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY}
        assert rule["BucketKeyEnabled"] is True
    # AND without a key, no KMS permission at all
    assert "kms:" not in json.dumps(only(synth(**DEFAULT), "AWS::IAM::ManagedPolicy"))


def test_versioning_is_optional() -> None:
    template = synth(**LOCALSTACK)
    assert only(template, "AWS::S3::Bucket")["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


@pytest.mark.parametrize(
    ("context", "noncurrent_days"),
    [
        pytest.param(DEFAULT, None, id="unversioned"),
        pytest.param(LOCALSTACK, 30, id="versioned-default"),
        pytest.param({**LOCALSTACK, "noncurrentVersionDays": "90"}, 90, id="versioned-90-days"),
    ],
)
def test_created_bucket_cleans_up_incomplete_uploads_and_old_versions(
    context: dict[str, str], noncurrent_days: int | None
) -> None:
    rules = {
        r["Id"]: r for r in only(synth(**context), "AWS::S3::Bucket")["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["AbortIncompleteUploads"]["Status"] == "Enabled"
    if noncurrent_days is None:
        assert set(rules) == {"AbortIncompleteUploads"}
    else:
        assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": noncurrent_days}


def test_created_bucket_refuses_tls_older_than_1_2() -> None:
    template = synth(**DEFAULT)
    denies = [s for s in statements(template) if s["Effect"] == "Deny" and "s3:*" in as_list(s["Action"])]
    assert any(s.get("Condition") == {"NumericLessThan": {"s3:TlsVersion": 1.2}} for s in denies), denies


def flat(value: Any) -> str:
    """A CloudFormation string as text: joins flattened, `{"Ref": X}` as `<X>`."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    separator, parts = value["Fn::Join"]
    return str(separator).join(flat(part) for part in parts)


def bucket_arn(template: Template, context: dict[str, str]) -> str:
    """The models bucket's ARN as text: from the context's name, or the created bucket's name."""
    name = context.get("bucketName") or flat(only(template, "AWS::S3::Bucket")["Properties"]["BucketName"])
    return f"arn:<AWS::Partition>:s3:::{name}"


@pytest.mark.parametrize("context", [*VARIANTS, pytest.param(EXISTING_EVENTBRIDGE, id="existing-eventbridge")])
def test_topic_accepts_publications_only_from_the_bucket_in_this_account(context: dict[str, str]) -> None:
    # GIVEN any variant WHEN synthesised
    template = synth(**context)
    # THEN exactly one statement lets anyone publish: this bucket in this account, or this stack's rule
    publishers = [s for s in statements(template) if s["Effect"] == "Allow" and "sns:Publish" in as_list(s["Action"])]
    assert len(publishers) == 1, publishers
    [publisher] = publishers
    if context.get("eventRoute") == "eventbridge":
        [rule_id] = [
            rule_id
            for rule_id, rule in resources(template, "AWS::Events::Rule").items()
            if "EventPattern" in rule["Properties"]
        ]
        assert publisher["Principal"] == {"Service": "events.amazonaws.com"}
        assert publisher["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}
        return
    assert publisher["Principal"] == {"Service": "s3.amazonaws.com"}
    # the ARN is spelt from the bucket's name, not referenced: that is what avoids the cycle; ArnEquals
    # with the account, not ArnLike alone (a same-named bucket in another account must not publish)
    assert set(publisher["Condition"]) == {"ArnEquals", "StringEquals"}
    assert publisher["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert flat(publisher["Condition"]["ArnEquals"]["aws:SourceArn"]) == bucket_arn(template, context)


def test_an_existing_buckets_notifications_wait_for_the_strict_topic_policy() -> None:
    template = synth(**EXISTING)
    [policy_id] = resources(template, "AWS::SNS::TopicPolicy")
    notifications = only(template, "Custom::S3BucketNotifications")
    assert policy_id in notifications["DependsOn"]


def test_eventbridge_route_forwards_the_same_events_and_only_that_rule_may_publish() -> None:
    template = synth(**EVENTBRIDGE)
    bucket = only(template, "AWS::S3::Bucket")["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rules = {
        rule_id: rule
        for rule_id, rule in resources(template, "AWS::Events::Rule").items()
        if "EventPattern" in rule["Properties"]
    }
    assert len(rules) == 1
    [(rule_id, rule)] = rules.items()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == list(EVENTBRIDGE_DETAIL_TYPES)
    assert pattern["detail"]["object"] == {"key": [{"prefix": "models/"}]}
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    [target] = rule["Properties"]["Targets"]
    assert (target["Id"], target["Arn"]) == ("Topic", {"Ref": topic_id})
    [publisher] = [s for s in statements(template) if s["Effect"] == "Allow" and s["Action"] == "sns:Publish"]
    assert publisher["Principal"] == {"Service": "events.amazonaws.com"}
    assert publisher["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}


def test_the_eventbridge_target_retries_then_keeps_what_it_could_not_deliver() -> None:
    # GIVEN the EventBridge route
    template = synth(**EVENTBRIDGE)
    [rule_id] = [i for i, r in resources(template, "AWS::Events::Rule").items() if "EventPattern" in r["Properties"]]
    [target] = resources(template, "AWS::Events::Rule")[rule_id]["Properties"]["Targets"]
    # THEN its target has a retry policy and a dead-letter queue, encrypted and not under the queue prefix
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 3600}
    [dead_letters_id] = resources(template, "AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters_id, "Arn"]}}
    dead_letters = resources(template, "AWS::SQS::Queue")[dead_letters_id]["Properties"]
    assert dead_letters["SqsManagedSseEnabled"] is True and "QueueName" not in dead_letters
    # AND only this rule may send to it
    [send] = [s for s in statements(template) if s["Effect"] == "Allow" and s["Action"] == "sqs:SendMessage"]
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    assert send["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}


@pytest.mark.parametrize(
    "context", [pytest.param(DEFAULT, id="fixed-queues"), pytest.param(EVENTBRIDGE, id="eventbridge")]
)
def test_every_dead_letter_queue_has_an_alarm_on_its_first_message(context: dict[str, str]) -> None:
    # GIVEN the stack's dead-letter queues (the fixed queues' DLQs, the EventBridge target's DLQ)
    template = synth(**context)
    queues = resources(template, "AWS::SQS::Queue")
    redriven = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    dead_letters = redriven | {
        target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        for rule in resources(template, "AWS::Events::Rule").values()
        for target in rule["Properties"].get("Targets", ())
        if "DeadLetterConfig" in target
    }
    assert dead_letters
    # THEN each one has an alarm on ApproximateNumberOfMessagesVisible > 0
    watched = {}
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties.get("MetricName") != "ApproximateNumberOfMessagesVisible":
            continue
        assert (properties["Namespace"], properties["Threshold"]) == ("AWS/SQS", 0)
        assert properties["ComparisonOperator"] == "GreaterThanThreshold"
        assert properties["TreatMissingData"] == "notBreaching"
        [dimension] = properties["Dimensions"]
        watched[dimension["Value"]["Fn::GetAtt"][0]] = properties
    assert set(watched) == dead_letters


def test_fixed_queues_have_encrypted_dead_letter_queues_and_subscriptions() -> None:
    template = synth(**DEFAULT)
    queues = resources(template, "AWS::SQS::Queue")
    by_name = {queue["Properties"]["QueueName"]: (queue_id, queue) for queue_id, queue in queues.items()}
    assert sorted(by_name) == sorted(
        [
            "reloader--fixed-1",
            "reloader--fixed-2",
            f"reloader--fixed-1{DLQ_SUFFIX}",
            f"reloader--fixed-2{DLQ_SUFFIX}",
        ]
    )
    for _, queue in by_name.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    subscribed = {
        s["Properties"]["Endpoint"]["Fn::GetAtt"][0] for s in resources(template, "AWS::SNS::Subscription").values()
    }
    for number in (1, 2):
        queue_id, queue = by_name[f"reloader--fixed-{number}"]
        dead_letters_id, _ = by_name[f"reloader--fixed-{number}{DLQ_SUFFIX}"]
        assert queue["Properties"]["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters_id, "Arn"]},
            "maxReceiveCount": 5,
        }
        assert queue["Properties"]["VisibilityTimeout"] == 300
        assert queue_id in subscribed
        assert dead_letters_id not in subscribed


def queue_ids(template: Template) -> dict[str, str]:
    """Queue name -> logical id of every queue the stack creates."""
    queues = resources(template, "AWS::SQS::Queue")
    return {queue["Properties"]["QueueName"]: queue_id for queue_id, queue in queues.items()}


def test_replica_policy_is_limited_to_the_prefixes_and_the_topic() -> None:
    template = synth(**DEFAULT)
    document = only(template, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    assert set(by_sid) == {
        "ListModels",
        "ReadModels",
        "UseQueues",
        "SubscribeQueues",
        "UnsubscribeQueues",
        "KeepFixedQueues",
    }
    assert by_sid["ListModels"]["Condition"] == {"StringLike": {"s3:prefix": ["models/*"]}}
    assert json.dumps(by_sid["ReadModels"]["Resource"]).endswith('"/models/*"]]}')
    assert json.dumps(by_sid["UseQueues"]["Resource"]).endswith('":reloader-*"]]}')
    assert set(by_sid["UseQueues"]["Action"]) >= {"sqs:CreateQueue", "sqs:TagQueue", "sqs:ReceiveMessage"}
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    assert by_sid["UnsubscribeQueues"]["Action"] == "sns:Unsubscribe"
    assert by_sid["UnsubscribeQueues"]["Resource"] == {"Ref": topic_id}
    assert not resources(template, "AWS::IAM::Role") or all(
        "ec2.amazonaws.com" not in json.dumps(role) for role in resources(template, "AWS::IAM::Role").values()
    )


def test_replicas_may_subscribe_only_their_own_sqs_queues() -> None:
    # GIVEN the replica policy
    template = synth(**DEFAULT)
    document = only(template, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    subscribe = [s for s in document["Statement"] if "sns:Subscribe" in as_list(s["Action"])]
    # THEN the one statement that allows sns:Subscribe is limited to the protocol the agent uses (sqs)
    # and to endpoints that are queues under the prefix, in this account and region
    [statement] = subscribe
    assert as_list(statement["Action"]) == ["sns:Subscribe"]
    assert statement["Condition"]["StringEquals"] == {"sns:Protocol": "sqs"}
    endpoint = statement["Condition"]["StringLike"]["sns:Endpoint"]
    assert flat(endpoint) == "arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:reloader-*"
    # AND the agent's own subscribe call fits it: protocol sqs, its queue's ARN as the endpoint
    import inspect

    from agent.boundaries.sns import Topic

    assert 'Protocol="sqs"' in inspect.getsource(Topic.subscribe_queue)


def test_replicas_may_use_but_not_administer_the_stacks_fixed_queues() -> None:
    # GIVEN a stack with two fixed queues (each with a DLQ), all matching `reloader-*`
    template = synth(**DEFAULT)
    document = only(template, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    ids = queue_ids(template)
    # THEN an explicit Deny covers every admin action the prefix statement allows, on exactly those queues
    [deny] = [s for s in document["Statement"] if s["Effect"] == "Deny"]
    assert set(deny["Action"]) == {"sqs:CreateQueue", "sqs:TagQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue"}
    assert sorted(json.dumps(r) for r in deny["Resource"]) == sorted(
        json.dumps({"Fn::GetAtt": [queue_id, "Arn"]}) for queue_id in ids.values()
    )
    # AND what a queue-mode replica needs on them is not denied
    [use] = [s for s in document["Statement"] if s.get("Sid") == "UseQueues"]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"):
        assert action in use["Action"] and action not in deny["Action"]
    # AND without fixed queues there is nothing to deny
    no_fixed = only(synth(**EVENTBRIDGE), "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]
    assert not [s for s in no_fixed["Statement"] if s["Effect"] == "Deny"]


def test_an_existing_bucket_is_referenced_not_created_and_a_replica_role_is_optional() -> None:
    template = synth(**EXISTING)
    assert not resources(template, "AWS::S3::Bucket")
    notifications = only(template, "Custom::S3BucketNotifications")["Properties"]["NotificationConfiguration"]
    assert [c["Events"] for c in notifications["TopicConfigurations"]] == [
        ["s3:ObjectCreated:*"],
        ["s3:ObjectRemoved:*"],
    ]
    replica_roles = [
        role
        for role in resources(template, "AWS::IAM::Role").values()
        if "ec2.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(replica_roles) == 1
    assert replica_roles[0]["Properties"]["ManagedPolicyArns"] == [
        {"Ref": next(iter(resources(template, "AWS::IAM::ManagedPolicy")))}
    ]


def test_janitor_runs_on_a_schedule_with_its_settings() -> None:
    template = synth(**DEFAULT)
    function_id, function = next(iter(resources(template, "AWS::Lambda::Function").items()))
    properties = function["Properties"]
    assert properties["Handler"] == JANITOR_HANDLER
    variables = properties["Environment"]["Variables"]
    assert variables["QUEUE_PREFIX"] == "reloader"
    assert variables["HEARTBEAT_TTL_SECONDS"] == "3600"
    assert variables["TOPIC_ARN"] == {"Ref": next(iter(resources(template, "AWS::SNS::Topic")))}
    assert properties["Layers"][0].startswith("{{resolve:ssm:/aws/service/powertools/python/x86_64/")
    [schedule] = resources(template, "AWS::Events::Rule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    assert schedule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    janitor_statements = {s.get("Sid"): s for s in statements(template)}
    assert janitor_statements["RemoveStaleQueues"]["Action"] == [
        "sqs:ListQueueTags",
        "sqs:GetQueueAttributes",
        "sqs:DeleteQueue",
    ]
    assert json.dumps(janitor_statements["RemoveStaleQueues"]["Resource"]).endswith('":reloader-*"]]}')


def test_the_janitor_cannot_delete_the_stacks_fixed_queues() -> None:
    # GIVEN the janitor's role in a stack with fixed queues
    template = synth(**DEFAULT)
    janitor_statements = {s.get("Sid"): s for s in statements(template)}
    keep = janitor_statements["SpareFixedQueues"]
    # THEN DeleteQueue, allowed on `reloader-*`, is denied on the fixed queues and their DLQs
    assert keep["Effect"] == "Deny"
    assert keep["Action"] == "sqs:DeleteQueue"
    assert sorted(json.dumps(r) for r in keep["Resource"]) == sorted(
        json.dumps({"Fn::GetAtt": [queue_id, "Arn"]}) for queue_id in queue_ids(template).values()
    )


def test_janitor_runs_alone_without_retries_and_its_failures_raise_an_alarm() -> None:
    template = synth(**DEFAULT)
    function_id, function = next(iter(resources(template, "AWS::Lambda::Function").items()))
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1
    invoke_config = only(template, "AWS::Lambda::EventInvokeConfig")["Properties"]
    assert invoke_config["MaximumRetryAttempts"] == 0
    [errors] = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "Errors"
    ]
    assert errors["Namespace"] == "AWS/Lambda"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_functions_can_be_left_out_for_localstack() -> None:
    template = synth(**LOCALSTACK)
    assert not resources(template, "AWS::Lambda::Function")
    assert not resources(template, "AWS::Events::Rule")


def test_janitor_layer_is_the_powertools_major_version_the_tests_run_with() -> None:
    from aws_lambda_powertools.shared.version import VERSION

    # GIVEN the default layer version WHEN synthesised THEN it is the same major version as the tested library
    template = synth(**DEFAULT)
    [function] = resources(template, "AWS::Lambda::Function").values()
    layer_version = function["Properties"]["Layers"][0].rstrip("}").rsplit("/", 1)[-1]
    assert layer_version.split(".")[0] == VERSION.split(".")[0]
    assert f"/{function['Properties']['Runtime']}/" in function["Properties"]["Layers"][0]


def test_outputs_give_what_a_replica_needs_and_a_reloading_block_that_parses() -> None:
    template = synth(**DEFAULT)
    outputs = template.to_json()["Outputs"]
    expected = {
        Outputs.BUCKET_NAME,
        Outputs.MODELS_PREFIX,
        Outputs.TOPIC_ARN,
        Outputs.QUEUE_PREFIX,
        Outputs.REPLICA_POLICY_ARN,
        Outputs.RELOADING_TOPIC_MODE,
        Outputs.JANITOR_FUNCTION,
        Outputs.queue_url(1),
        Outputs.queue_url(2),
        Outputs.reloading_queue_mode(1),
        Outputs.reloading_queue_mode(2),
    }
    assert set(outputs) == expected
    # GIVEN the topic-mode block with CloudFormation's substitution done
    joined = outputs[Outputs.RELOADING_TOPIC_MODE]["Value"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "arn:aws:sns:us-east-1:123456789012:topic" for part in joined)
    # WHEN a user pastes it into a spec THEN it is the agent's `reloading:` block
    block = yaml.safe_load(text)
    assert block == {
        "reloading": {
            "topic_arn": "arn:aws:sns:us-east-1:123456789012:topic",
            "queue_prefix": "reloader",
            "ready_marker": "_READY",
            "visibility_timeout": 300,
        }
    }
    # AND the agent accepts every field of it
    settings = ReloadingSettings(**block["reloading"])
    assert settings.topic_arn == "arn:aws:sns:us-east-1:123456789012:topic"
