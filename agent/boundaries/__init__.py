"""One module per external system (S3, SQS, SNS, the file system, TF Serving).

Each translates its library's errors into ours (`agent.domain.errors`), so nothing above
this layer catches botocore or grpc exceptions.
"""
