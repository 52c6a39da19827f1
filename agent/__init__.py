"""model-reloader: keep served models equal to S3, reloaded from S3's own event notifications."""

__version__ = "0.1.0"
