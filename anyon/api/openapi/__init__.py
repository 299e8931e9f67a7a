"""The OpenAPI 3.1 document of the REST API: built from the route table and the validators.

:mod:`~anyon.api.openapi.document` derives the document from an app (served at ``/api/openapi.json``);
``python -m anyon.api.openapi > schemas/openapi.json`` (:mod:`~anyon.api.openapi.__main__`) regenerates
``schemas/openapi.json``. A test fails when the committed document and the running app disagree on a path
or a method, so the document cannot silently drift from the server.

May import the API's schemas and validators; only ``__main__`` builds an app (config, deployment, app).
"""
