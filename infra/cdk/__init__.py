"""The CDK app that provisions model-reloader's AWS side: bucket, events, queues, access, janitor."""
