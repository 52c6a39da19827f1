"""A Cortex 0.35 TensorFlow handler served over gRPC (`protobuf_path: scaler.proto`): its RPCs call TF Serving."""


class Handler:
    def __init__(self, tensorflow_client, module_proto_pb2):  # the name Cortex's docs gave the module
        self.client = tensorflow_client
        self.pb2 = module_proto_pb2

    def Scale(self, payload):
        prediction = self.client.predict({"x": [list(payload.x)]}, None, payload.version or "latest")
        return self.pb2.Output(y=prediction["y"])

    def ScaleEach(self, payload):
        for item in payload.inputs:
            yield self.Scale(item)
