"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

``ansible-test sanity`` (even with ``--local``) builds small virtual environments and seeds
each with pip by running a ``get-pip.py`` it downloads from ci-files.testing.ansible.com,
a host this network cannot reach. It first looks for a cached copy at
``~/.ansible/test/cache/get_pip_<pip version with underscores>.py`` (``get_pip_24_2.py``
for ansible-core 2.19). Copy this file there and the bootstrap works offline:

    install -D -m 0644 scripts/ansible-test-offline-get-pip.py \\
        ~/.ansible/test/cache/get_pip_24_2.py

It seeds pip from the interpreter's own ``ensurepip`` (no download), then pip-installs the
arguments ansible-test passes (``pip==24.2`` ...) through pip's ordinary configuration
(index, find-links, certificates), minus the get-pip-only ``--no-setuptools`` and
``--no-wheel`` flags that pip install does not accept.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main(argv: list[str]) -> int:
    args = [a for a in argv if a not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    if any(not a.startswith("-") for a in args):
        subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
