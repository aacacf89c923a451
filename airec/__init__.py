"""airec: a self-hosted neural recommender service.

The web app is built by `airec.app.create_app`; importing this package (or the ML core,
`airec.recsys`) loads neither Flask nor peewee.
"""

__version__ = "0.1.0"
