"""The infra tests need the infra extra (the CDK libraries): without it, this whole folder is skipped."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

pytest.importorskip("aws_cdk", reason="the infra extra is not installed")
