"""Extension objects, created here and bound to the app in create_app()."""

from flask_smorest import Api

from airec.errors import json_http_error


class AirecApi(Api):
    """flask-smorest's Api with error bodies that say which field was wrong."""

    def handle_http_exception(self, error):
        return json_http_error(error)


api = AirecApi()
