"""A Cortex 0.35 TensorFlow handler, unchanged from what Cortex ran: Celsius in, Fahrenheit out, from TF Serving."""


class Handler:
    def __init__(self, tensorflow_client, config):
        self.client = tensorflow_client
        self.digits = config.get("digits", 1)

    def handle_post(self, payload, query_params):
        model_input = {"celsius": [float(value) for value in payload["celsius"]]}
        prediction = self.client.predict(model_input, model_version=query_params.get("version", "latest"))
        return {"fahrenheit": [round(value, self.digits) for value in prediction["fahrenheit"]]}
