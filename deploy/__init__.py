"""Deployment tools for Chatsite on AWS: the static push and the CloudFormation template.

See deploy/README.md.
"""
