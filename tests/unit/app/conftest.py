"""Unit tests of cachestack_app: pure logic, no servers. The package lives in
roles/web_app/files (deployed by the app role), so that folder goes on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[3] / "roles" / "web_app" / "files"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))
