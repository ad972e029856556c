"""CloudFormation's intrinsic functions as small builders, shared by the template generators."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def getatt(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def tags(name: str) -> list[dict[str, Any]]:
    """Name (prefixed with the stack's) and app=chatsite: how every Chatsite resource is found."""
    return [{"Key": "Name", "Value": sub(f"${{AWS::StackName}}-{name}")}, {"Key": "app", "Value": "chatsite"}]
