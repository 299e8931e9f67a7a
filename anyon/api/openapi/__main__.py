"""``python -m anyon.api.openapi > schemas/openapi.json``: print the document of a freshly built app.

The app is built in a throw-away directory, without the process environment. Kept out of
:mod:`anyon.api.openapi.document` because building the app imports the routes, whose
``/api/openapi.json`` resource imports the document.
"""

from __future__ import annotations

import json
import sys

from anyon.api.openapi.document import build_document


def main() -> int:
    import tempfile

    from anyon.api.app import create_app
    from anyon.config import load_config
    from anyon.deployment.factory import build_deployment

    with tempfile.TemporaryDirectory() as tmp:
        environ = {"HOME": tmp, "XDG_DATA_HOME": tmp, "ANYON_BASE_DIR": tmp, "ANYON_TEMP_DIR": f"{tmp}/tmp"}
        config = load_config(settings_file=None, environ=environ)
        app = create_app(build_deployment(config))
        json.dump(build_document(app), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
